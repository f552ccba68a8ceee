import Controller
import Logging
import PeerNode
import Raft
import Synchronization

/// The leader's view of the data plane (ARCHITECTURE §10): while this peer leads, it asks every
/// member for its data plane every `intervalMillis`, and turns the answers into what the move
/// driver needs: which placements their instance serves (readiness) and since when every live
/// router runs a config of a given index (router acks).
///
/// Soft state only: a new leader starts with no acks and waits for its own first polls, which
/// can only delay a move's last step, never hurry it. A member that does not answer a poll is
/// not live: it neither blocks a move nor counts as having confirmed anything.
public final class DataPlaneWatch: Sendable {
    public struct Member: Sendable {
        /// The member runs components (its config has a `components` address).
        public var supervised: Bool
        /// The member runs a router (its config has a `router` address).
        public var routed: Bool

        public init(supervised: Bool, routed: Bool) {
            self.supervised = supervised
            self.routed = routed
        }
    }

    /// What one member's data plane answered: the part of its report the leader decides with.
    public struct MemberReport: Sendable, Hashable {
        /// Tenants every needed component of that instance serves (health-probed).
        public var servingTenants: [String]
        /// The highest applied index whose routing its NGINX is confirmed to run; nil if none yet.
        public var routerConfirmedIndex: UInt64?
        /// The routing index whose placements `servingTenants` reflects (its agent acted on it);
        /// nil from a peer that does not say.
        public var servingAsOfIndex: UInt64?

        /// What its router saw over its statistics window (nil: it runs no router, or its
        /// statistics are not running).
        public var load: RouterLoad?
        /// Its components' CPU summed, permille of a core (nil: it supervises none, or no
        /// sample yet).
        public var componentsCpuPermille: Double?

        public init(
            servingTenants: [String], routerConfirmedIndex: UInt64?, servingAsOfIndex: UInt64? = nil, load: RouterLoad? = nil,
            componentsCpuPermille: Double? = nil
        ) {
            self.servingTenants = servingTenants
            self.servingAsOfIndex = servingAsOfIndex
            self.routerConfirmedIndex = routerConfirmedIndex
            self.load = load
            self.componentsCpuPermille = componentsCpuPermille
        }
    }

    /// One router's requests over its window, by the instance it sent them to and by tenant.
    public struct RouterLoad: Sendable, Hashable {
        public var instances: [String: LoadObservation.InstanceLoad]
        public var tenants: [String: Double]

        public init(instances: [String: LoadObservation.InstanceLoad], tenants: [String: Double]) {
            self.instances = instances
            self.tenants = tenants
        }
    }

    /// What a member said to a poll: its data-plane report (nil: it answered, but runs no data
    /// plane; alive all the same) and the version it runs, if it said.
    public struct PollAnswer: Sendable, Hashable {
        public var report: MemberReport?
        public var version: MemberVersion?

        public init(report: MemberReport?, version: MemberVersion? = nil) {
            self.report = report
            self.version = version
        }

        public static func report(_ r: MemberReport) -> PollAnswer { PollAnswer(report: r) }
        public static let answeredWithoutReport = PollAnswer(report: nil)
    }

    /// The build and the cluster-model protocol versions a member runs.
    public struct MemberVersion: Sendable, Hashable {
        public var build: String
        public var protocolMin: UInt32
        public var protocolMax: UInt32

        public init(build: String, protocolMin: UInt32, protocolMax: UInt32) {
            self.build = build
            self.protocolMin = protocolMin
            self.protocolMax = protocolMax
        }
    }

    /// Asks one member for its report within `timeoutMillis`; nil when it does not answer (the
    /// `peer` executable asks its admin API, `GET /v1/dataplane`).
    public typealias Poll = @Sendable (_ member: NodeID, _ timeoutMillis: Int) async -> PollAnswer?

    struct State {
        var term: Term = 0
        /// When this peer first polled in this term: a member not heard from yet counts from here.
        var termStartMs: Int64 = 0
        var reports: [NodeID: MemberReport] = [:]
        /// The leader time of each member's last answer in this term.
        var lastHeardMs: [NodeID: Int64] = [:]
        /// When this term's polls first included each member: one added during the term gets
        /// the full threshold from then, not from the term's start.
        var firstPolledMs: [NodeID: Int64] = [:]
        /// Ascending by index: (the smallest confirmed index over live routers, first seen at).
        var confirmations: [RouterAcks.Confirmation] = []
        /// Each member's last report and when it arrived (the balancer's input: a member that
        /// misses one poll keeps its last report until it is `reportMaxAgeMs` old).
        var lastReports: [NodeID: (report: MemberReport, atMs: Int64)] = [:]
        /// The version each member last said it runs (this term).
        var versions: [NodeID: MemberVersion] = [:]
    }

    /// The members now (instances come and go while a leader leads).
    let members: @Sendable () -> [NodeID: Member]
    let pollMember: Poll
    let intervalMillis: Int
    let timeoutMillis: Int
    /// The failure detector's one threshold (`timing.instanceLostAfterMs`).
    let instanceLostAfterMs: Int64
    /// The leader's clock, Unix ms (tests give their own).
    let clock: any LeaderClock
    let logger: Logger
    let state = Mutex(State())
    /// Confirmations kept: the driver asks only about recent flips; older ones are implied by
    /// any later (larger) confirmed index.
    static let confirmationsMax = 1024

    public init(
        members: @escaping @Sendable () -> [NodeID: Member], poll: @escaping Poll, intervalMillis: Int = 200, timeoutMillis: Int = 1_000,
        instanceLostAfterMs: Int64 = 5_000, logger: Logger,
        clock: any LeaderClock = SystemClock()
    ) {
        self.clock = clock
        self.members = members
        pollMember = poll
        self.intervalMillis = intervalMillis
        // A round waits for its slowest member; a quarter of the threshold keeps a live member's
        // answers (stamped as they arrive) well inside it while another member is silent.
        self.timeoutMillis = max(1, min(timeoutMillis, Int(instanceLostAfterMs / 4)))
        self.instanceLostAfterMs = instanceLostAfterMs
        self.logger = logger
    }

    /// Polls while `node` leads, until the task is cancelled.
    public func run(node: any LeaderNode) async {
        while !Task.isCancelled {
            let hint = node.leaderHint
            if hint.role == .leader {
                await poll(term: hint.term)
            } else {
                state.withLock { $0 = State() }
            }
            await clock.sleep(millis: intervalMillis)
        }
    }

    func poll(term: Term) async {
        let pollMember = self.pollMember
        let timeout = timeoutMillis
        let started = clock.nowMs()
        state.withLock { s in
            if s.term != term { s = State(term: term, termStartMs: started) }
        }
        let clock = self.clock
        let members = self.members()
        state.withLock { s in
            for id in members.keys where s.firstPolledMs[id] == nil { s.firstPolledMs[id] = started }
        }
        let (answered, heard) = await withTaskGroup(of: (NodeID, PollAnswer?, Int64).self) { group in
            for id in members.keys.sorted() {
                // Stamped when its answer arrives, not when the round's slowest one does.
                group.addTask { let answer = await pollMember(id, timeout); return (id, answer, clock.nowMs()) }
            }
            var reports: [NodeID: MemberReport] = [:]
            var heard: [NodeID: Int64] = [:]
            var versions: [NodeID: MemberVersion] = [:]
            for await (id, answer, at) in group {
                guard let answer else { continue }
                heard[id] = at
                if let report = answer.report { reports[id] = report }
                if let version = answer.version { versions[id] = version }
            }
            return ((reports, versions), heard)
        }
        let (answers, versions) = answered
        let now = clock.nowMs()
        let routedLive = members.filter { $0.value.routed && answers[$0.key] != nil }.map(\.key)
        let minConfirmed: UInt64? = routedLive.isEmpty ? nil : routedLive.map { answers[$0]?.routerConfirmedIndex ?? 0 }.min()
        state.withLock { s in
            if s.term != term { s = State(term: term, termStartMs: started) }
            s.reports = answers
            s.versions.merge(versions) { _, new in new }
            for (id, at) in heard { s.lastHeardMs[id] = at }
            for (id, report) in answers { s.lastReports[id] = (report, heard[id] ?? now) }
            if let m = minConfirmed, m > (s.confirmations.last?.index ?? 0) {
                s.confirmations.append(RouterAcks.Confirmation(index: m, sinceMs: now))
                if s.confirmations.count > Self.confirmationsMax { s.confirmations.removeFirst(s.confirmations.count - Self.confirmationsMax) }
            }
        }
    }

    /// Placements on supervised instances are ready once that instance reports the tenant served.
    public func readiness() -> PlacementReadiness {
        let supervised = Set(members().filter { $0.value.supervised }.map { "\($0.key)" })
        guard !supervised.isEmpty else { return .immediate }
        let reports = state.withLock { $0.reports }
        var ready: Set<PlacementKey> = []
        var asOf: [String: UInt64] = [:]
        for (id, report) in reports {
            for tenant in report.servingTenants { ready.insert(PlacementKey(tenant: tenant, instance: "\(id)")) }
            if let index = report.servingAsOfIndex { asOf["\(id)"] = index }
        }
        return .supervised(ready: ready, supervised: supervised, servingAsOf: asOf)
    }

    /// The failure detector: the members this leader has heard nothing from (neither a report
    /// nor any answer) for `instanceLostAfterMs`, counting from its own first poll of the term
    /// for a member not heard yet, so a new leader gives every member the full threshold.
    /// `term`: the caller's leadership term; what the watch saw in another term counts for nothing.
    public func liveness(nowMs: Int64, term: Term) -> InstanceLiveness {
        let (watchedTerm, start, heard, firstPolled) = state.withLock { ($0.term, $0.termStartMs, $0.lastHeardMs, $0.firstPolledMs) }
        guard start > 0, watchedTerm == term else { return .allLive }
        var lost: [String: String] = [:]
        for id in members().keys {
            // Not polled yet in this term (it just joined): not judged yet.
            guard let since = heard[id] ?? firstPolled[id] else { continue }
            let silentMs = nowMs - since
            if silentMs >= instanceLostAfterMs {
                lost["\(id)"] = "no report or answer from it for \(silentMs) ms (timing.instanceLostAfterMs \(instanceLostAfterMs))"
            }
        }
        return InstanceLiveness(lost: lost)
    }

    /// The version each member said it runs, in `term` (empty in another term).
    public func versions(term: Term) -> [NodeID: MemberVersion] {
        state.withLock { $0.term == term ? $0.versions : [:] }
    }

    /// The members that answered a poll of `term` within the last `instanceLostAfterMs`.
    public func answering(term: Term) -> Set<NodeID> {
        let now = clock.nowMs()
        return state.withLock { s in
            guard s.term == term else { return [] }
            return Set(s.lastHeardMs.filter { now - $0.value < instanceLostAfterMs }.keys)
        }
    }

    /// The balancer's input: every member's load, summed over the routers. Incomplete (and
    /// never acted on) when a live member that routes has no report younger than
    /// `reportMaxAgeMs`, or runs no statistics: its requests would be missing from every sum.
    /// Lost members are left out (their routers are down with them).
    public func observation(nowMs: Int64, term: Term, reportMaxAgeMs: Int64) -> LoadObservation {
        let (watchedTerm, start, reports) = state.withLock { ($0.term, $0.termStartMs, $0.lastReports) }
        guard start > 0, watchedTerm == term else {
            return LoadObservation(nowMs: nowMs, incomplete: "this leader has not polled the members in term \(term) yet", instances: [:], tenants: [:])
        }
        let lost = liveness(nowMs: nowMs, term: term)
        var instances: [String: LoadObservation.InstanceLoad] = [:]
        var tenants: [String: Double] = [:]
        for (id, member) in members().sorted(by: { $0.key < $1.key }) where !lost.isLost("\(id)") {
            let fresh = reports[id].flatMap { nowMs - $0.atMs <= reportMaxAgeMs ? $0.report : nil }
            if let cpu = fresh?.componentsCpuPermille { instances["\(id)", default: .init(requestsPerSecond: 0)].cpuPermille = cpu }
            guard member.routed else { continue }
            guard let fresh else {
                return LoadObservation(nowMs: nowMs, incomplete: "member \(id)'s router has not reported within \(reportMaxAgeMs) ms", instances: [:], tenants: [:])
            }
            guard let load = fresh.load else {
                return LoadObservation(nowMs: nowMs, incomplete: "member \(id)'s router reports no statistics", instances: [:], tenants: [:])
            }
            for (instance, l) in load.instances {
                var sum = instances[instance, default: .init(requestsPerSecond: 0)]
                sum.requestsPerSecond += l.requestsPerSecond
                sum.errorsPerSecond += l.errorsPerSecond
                if let p99 = l.p99Ms { sum.p99Ms = max(sum.p99Ms ?? 0, p99) }
                instances[instance] = sum
            }
            for (tenant, rps) in load.tenants { tenants[tenant, default: 0] += rps }
        }
        return LoadObservation(nowMs: nowMs, instances: instances, tenants: tenants)
    }

    /// Since when every live router runs each confirmed index; `.none` when no member routes.
    public func routerAcks() -> RouterAcks {
        guard members().values.contains(where: \.routed) else { return .none }
        return RouterAcks(confirmations: state.withLock { $0.confirmations })
    }
}
