import ClusterModel
import PeerNode
import Raft

/// One simulated `peer` process: what dies with it. Its loops, port, clock and provider
/// handle check `alive`, so a dead process has no effect from the instant it dies: its
/// suspended tasks resume into errors and wind down.
final class SimProcess: @unchecked Sendable {
    let node: NodeID
    var alive = true
    var task: Task<Void, Never>?

    init(node: NodeID) {
        self.node = node
    }
}

struct PendingProposal {
    var term: Term
    var deadlineMs: Int64
    var resume: (Result<ApplyResult, ProposeError>) -> Void
}

struct PendingRead {
    var index: LogIndex?
    var deadlineMs: Int64
    var serve: (ClusterState) -> Void
    var fail: (ReadError) -> Void
}

/// One simulated instance: its disk survives crashes; its Raft node, state, process and data
/// plane do not.
final class WorldNode {
    let id: NodeID
    let disk: MemoryStorage
    var raft: RaftNode?
    var state = ClusterState()
    var process: SimProcess?
    var incarnations = 0
    /// The provider destroyed it: it never starts again.
    var destroyed = false
    /// While down: when its supervisor (or its boot) starts it; 0 = not scheduled.
    var startAtMs: Int64 = 0
    /// Its clock's offset from the world's.
    var skewMs: Int64
    /// When its tick falls within each 100 ms.
    var tickPhaseMs: Int64
    var proposals: [LogIndex: PendingProposal] = [:]
    var reads: [UInt64: PendingRead] = [:]
    var nextRead: UInt64 = 1
    var leader: NodeID = noNode
    var upSinceMs: Int64 = 0
    /// Its components: from when each tenant placed here is served (the component's start).
    var servesFromMs: [String: Int64] = [:]
    /// Its router: the applied index whose routing NGINX runs, where it sends each tenant, and
    /// when the reload in progress finishes (0: none).
    var routerIndex: UInt64 = 0
    var routes: [String: String] = [:]
    var routerDueMs: Int64 = 0
    var dataPlaneIndex: UInt64 = 0

    var isUp: Bool { raft != nil }

    /// Reads or changes the running node in place: reading the optional property copies the
    /// whole node (retaining every buffer it holds). Only while up.
    func withRaft<T>(_ body: (inout RaftNode) -> T) -> T { body(&raft!) }

    var hasReady: Bool { isUp && withRaft { $0.hasReady } }

    init(id: NodeID, disk: MemoryStorage, skewMs: Int64, tickPhaseMs: Int64) {
        self.id = id
        self.disk = disk
        self.skewMs = skewMs
        self.tickPhaseMs = tickPhaseMs
    }
}
