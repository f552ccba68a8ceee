import Controller
import Foundation
import Logging
import PeerNode
import Raft
import Synchronization

/// The leader's view of the data plane (ARCHITECTURE §10): while this peer leads, it asks every
/// member for its `DataPlaneReport` every `intervalMillis`, and turns the answers into what the
/// move driver needs: which placements their instance serves (readiness) and since when every
/// live router runs a config of a given index (router acks).
///
/// Soft state only: a new leader starts with no acks and waits for its own first polls, which
/// can only delay a move's last step, never hurry it. A member that does not answer a poll is
/// not live: it neither blocks a move nor counts as having confirmed anything.
public final class DataPlaneWatch: Sendable {
    public struct Member: Sendable {
        public var addresses: MemberAddresses
        /// The member runs components (its config has a `components` address).
        public var supervised: Bool
        /// The member runs a router (its config has a `router` address).
        public var routed: Bool

        public init(addresses: MemberAddresses, supervised: Bool, routed: Bool) {
            self.addresses = addresses
            self.supervised = supervised
            self.routed = routed
        }
    }

    struct State {
        var term: Term = 0
        var reports: [NodeID: DataPlaneReport] = [:]
        /// Ascending by index: (the smallest confirmed index over live routers, first seen at).
        var confirmations: [RouterAcks.Confirmation] = []
    }

    let members: [NodeID: Member]
    let client: AdminClient
    let intervalMillis: Int
    let timeoutMillis: Int
    let logger: Logger
    let state = Mutex(State())
    /// Confirmations kept: the driver asks only about recent flips; older ones are implied by
    /// any later (larger) confirmed index.
    static let confirmationsMax = 1024

    public init(members: [NodeID: Member], client: AdminClient, intervalMillis: Int = 200, timeoutMillis: Int = 1_000, logger: Logger) {
        self.members = members
        self.client = client
        self.intervalMillis = intervalMillis
        self.timeoutMillis = timeoutMillis
        self.logger = logger
    }

    /// Polls while `node` leads, until the task is cancelled.
    public func run(node: PeerNode) async {
        while !Task.isCancelled {
            let hint = node.leaderHint
            if hint.role == .leader {
                await poll(term: hint.term)
            } else {
                state.withLock { $0 = State() }
            }
            try? await Task.sleep(for: .milliseconds(intervalMillis))
        }
    }

    func poll(term: Term) async {
        let client = self.client
        let timeout = timeoutMillis
        let answers = await withTaskGroup(of: (NodeID, DataPlaneReport?).self) { group in
            for (id, m) in members {
                group.addTask {
                    do {
                        let a = try await client.request(
                            host: m.addresses.apiHost, port: m.addresses.apiPort, method: .GET, path: "/v1/dataplane", timeoutMillis: timeout)
                        guard a.status == 200 else { return (id, nil) }
                        return (id, try? JSONDecoder().decode(DataPlaneReport.self, from: Data(a.body)))
                    } catch {
                        return (id, nil)
                    }
                }
            }
            var all: [NodeID: DataPlaneReport] = [:]
            for await (id, report) in group { if let report { all[id] = report } }
            return all
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let routedLive = members.filter { $0.value.routed && answers[$0.key] != nil }.map(\.key)
        let minConfirmed: UInt64? = routedLive.isEmpty ? nil : routedLive.map { answers[$0]?.routerConfirmedIndex ?? 0 }.min()
        state.withLock { s in
            if s.term != term { s = State(term: term) }
            s.reports = answers
            if let m = minConfirmed, m > (s.confirmations.last?.index ?? 0) {
                s.confirmations.append(RouterAcks.Confirmation(index: m, sinceMs: now))
                if s.confirmations.count > Self.confirmationsMax { s.confirmations.removeFirst(s.confirmations.count - Self.confirmationsMax) }
            }
        }
    }

    /// Placements on supervised instances are ready once that instance reports the tenant served.
    public func readiness() -> PlacementReadiness {
        let supervised = Set(members.filter { $0.value.supervised }.map { "\($0.key)" })
        guard !supervised.isEmpty else { return .immediate }
        let reports = state.withLock { $0.reports }
        var ready: Set<PlacementKey> = []
        for (id, report) in reports {
            for tenant in report.servingTenants { ready.insert(PlacementKey(tenant: tenant, instance: "\(id)")) }
        }
        return .supervised(ready: ready, supervised: supervised)
    }

    /// Since when every live router runs each confirmed index; `.none` when no member routes.
    public func routerAcks() -> RouterAcks {
        guard members.values.contains(where: \.routed) else { return .none }
        return RouterAcks(confirmations: state.withLock { $0.confirmations })
    }
}
