import ClusterModel
import Controller
import Logging
import PeerNode
import Raft

/// While this peer leads, makes sure every configured member is an instance in the replicated
/// state (AddInstance, then active from joining), so `peer status` and placement see them. Each leadership
/// term is its own client session (`registrar-<self>-<term>`), so a retried proposal applies once.
public struct Registrar: Sendable {
    /// A member of the cluster configuration: its Raft id and its addresses (host:port; the
    /// router's and the components' empty when it runs none).
    public struct Member: Sendable {
        public var id: NodeID
        public var peerAddress: String
        public var apiAddress: String
        public var routerAddress: String
        public var componentsAddress: String

        public init(id: NodeID, peerAddress: String, apiAddress: String, routerAddress: String = "", componentsAddress: String = "") {
            self.id = id
            self.peerAddress = peerAddress
            self.apiAddress = apiAddress
            self.routerAddress = routerAddress
            self.componentsAddress = componentsAddress
        }
    }

    let node: any LeaderNode
    let clock: any LeaderClock
    let selfID: NodeID
    let members: [Member]
    /// This build's version and the highest cluster-model protocol version it applies, recorded
    /// with each instance it adds.
    let version: String
    let protocolVersion: UInt32
    let intervalMillis: Int
    /// What each member says it runs (the data-plane watch's answers), in a term.
    let versions: @Sendable (_ term: Term) -> [String: ClusterVersion.Reported]
    let logger: Logger

    public init(
        node: any LeaderNode, selfID: NodeID, members: [Member], version: String, protocolVersion: UInt32, intervalMillis: Int = 500,
        versions: @escaping @Sendable (_ term: Term) -> [String: ClusterVersion.Reported] = { _ in [:] },
        clock: any LeaderClock = SystemClock(), logger: Logger
    ) {
        self.versions = versions
        self.node = node
        self.clock = clock
        self.selfID = selfID
        self.members = members
        self.version = version
        self.protocolVersion = protocolVersion
        self.intervalMillis = intervalMillis
        self.logger = logger
    }

    /// Runs until the task is cancelled; acts only while this peer leads.
    public func run() async {
        var sequence: UInt64 = 0
        var clientTerm: Term = 0
        while !Task.isCancelled {
            let hint = node.leaderHint
            if hint.role == .leader {
                if hint.term != clientTerm {
                    clientTerm = hint.term
                    sequence = 0
                }
                let members = self.members
                let missing = (try? await node.read(linearizable: false) { state in
                    // New ones, and ones that joined but are not active yet. Never one the operator
                    // drains or drained: that state is the operator's (peer instances activate).
                    members.filter { m in state.instance("\(m.id)").map { $0.state == .joining } ?? true }
                        .map { m in (m, state.instance("\(m.id)") != nil) }
                }) ?? []
                for (m, exists) in missing {
                    let client = "registrar-\(selfID)-\(clientTerm)"
                    if !exists {
                        var add = PBAddInstance()
                        add.id = "\(m.id)"
                        add.address = m.peerAddress
                        add.apiAddress = m.apiAddress
                        add.routerAddress = m.routerAddress
                        add.componentsAddress = m.componentsAddress
                        add.role = .voter
                        add.version = version
                        add.protocolVersion = protocolVersion
                        sequence += 1
                        await propose(Command(clientId: client, sequence: sequence, leaderTimeMs: nowMs(), .addInstance(add)))
                    }
                    var active = PBSetInstanceState()
                    active.id = "\(m.id)"
                    active.state = .active
                    sequence += 1
                    await propose(Command(clientId: client, sequence: sequence, leaderTimeMs: nowMs(), .setInstanceState(active)))
                }
                // Each member's build and protocol version as it reports them now (an upgrade
                // or a downgrade of its binary); this leader's own from what it runs.
                var polled = versions(hint.term)
                polled["\(selfID)"] = ClusterVersion.Reported(build: version, protocolMax: protocolVersion)
                let reported = polled
                let records = (try? await node.read(linearizable: false) { ClusterVersion.reports(state: $0, reported: reported) }) ?? []
                for r in records {
                    sequence += 1
                    await propose(Command(clientId: "registrar-\(selfID)-\(clientTerm)", sequence: sequence, leaderTimeMs: nowMs(), .reportInstanceVersion(r)))
                    logger.notice("instance \(r.id) runs \(r.version) (protocol version \(r.protocolVersion)): recorded")
                }
            }
            await clock.sleep(millis: intervalMillis)
        }
    }

    func propose(_ c: Command) async {
        do {
            let r = try await node.propose(c.entryBytes())
            if case .rejected(let why) = r { logger.debug("registrar: \(why)") }
        } catch {
            logger.debug("registrar: \(error)")
        }
    }

    func nowMs() -> Int64 { clock.nowMs() }
}
