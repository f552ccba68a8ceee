import ClusterModel
import Raft

/// How one node runs. Timing comes from the cluster configuration file.
public struct PeerNodeOptions: Sendable {
    /// The Raft core's configuration (id, ticks, limits).
    public var raft: RaftConfig
    /// Wall time of one Raft tick.
    public var tickMillis: Int = 100
    /// Take a snapshot and compact the log once this many entries were applied since the last...
    public var snapshotEveryEntries: UInt64 = 100_000
    /// ...and they hold at least this many times the last snapshot's bytes (`SnapshotPolicy`).
    /// 0 snapshots by entry count alone.
    public var snapshotLogBytesRatio: Double = 1
    /// A snapshot is written to the store in pieces of at most this many bytes, one per loop
    /// turn, so that writing a large state never stalls the loop for long.
    public var compactionPieceBytes = 512 << 10
    /// A turn of the loop (step, persist, send, apply, compaction) that takes at least this long
    /// is reported to `PeerNode.onSlowTurn` (etcd warns of slow applies the same way).
    public var slowTurnMillis = 100
    /// Bound of the peer-message lane (Raft retries what is dropped).
    public var messageQueueMax = 16_384
    /// Bound of the request lane (proposals, reads, status): beyond it requests fail at once.
    public var requestQueueMax = 8_192
    /// How long a proposal may wait for its entry to apply before it fails "outcome unknown".
    public var proposalTimeoutMillis: Int = 10_000
    /// How long a linearizable read may wait for confirmation.
    public var readTimeoutMillis: Int = 5_000
    /// Proposals appended per loop iteration (one durable write): the group-commit batch.
    public var proposalBatchMax = 4_096
    /// The highest cluster-model protocol version this peer applies (`ClusterState.applierProtocolMax`).
    public var protocolVersionMax: UInt32 = ClusterState.protocolVersionMax
    /// The lowest cluster version this peer runs in: a cluster below it is too old for it.
    public var protocolVersionMin: UInt32 = 1

    public init(raft: RaftConfig) {
        self.raft = raft
    }

    public func validationError() -> String? {
        if let e = raft.validationError() { return e }
        if tickMillis < 1 || tickMillis > 10_000 { return "tickMillis \(tickMillis) must be 1...10000" }
        if snapshotEveryEntries < 1 { return "snapshotEveryEntries must be >= 1" }
        if !(snapshotLogBytesRatio >= 0 && snapshotLogBytesRatio <= 1_000) { return "snapshotLogBytesRatio must be 0...1000" }
        if compactionPieceBytes < 1 { return "compactionPieceBytes must be >= 1" }
        if slowTurnMillis < 1 { return "slowTurnMillis must be >= 1" }
        if messageQueueMax < 1 || requestQueueMax < 1 || proposalBatchMax < 1 { return "queue bounds must be >= 1" }
        if proposalTimeoutMillis < 1 || readTimeoutMillis < 1 { return "timeouts must be >= 1 ms" }
        return nil
    }
}

/// One node's view of itself, for `peer status`. Taken on the node's thread, so every field is
/// from the same instant.
public struct NodeStatus: Sendable, Hashable {
    public var id: NodeID
    public var role: Role
    public var term: Term
    /// The leader this node knows, or 0.
    public var leader: NodeID
    public var commitIndex: LogIndex
    public var appliedIndex: LogIndex
    public var firstIndex: LogIndex
    public var lastIndex: LogIndex
    public var snapshotIndex: LogIndex
    public var voters: [NodeID]
    public var learners: [NodeID]
    /// SHA-256 of the applied cluster state (hex).
    public var stateDigest: String
    /// Only on the leader: how each follower replicates, and when it was last heard from.
    public var progress: [PeerProgressView]
    /// Milliseconds since a message from each peer arrived here (absent: never).
    public var lastContactMillis: [NodeID: Int]
    /// Set when the node halted; it then serves status only.
    public var haltReason: String?
    public var droppedMessages: Int
    /// Snapshots received from a leader and installed since this process started.
    public var snapshotsInstalled: Int
    /// The index of the last applied entry that changed the cluster version (0: none since the
    /// snapshot this node started or installed from). The node takes a snapshot at once after
    /// one, so a binary of the previous release restarted on this data never replays it.
    public var versionChangeIndex: LogIndex = 0
    public var tenantCount: Int
    public var instanceCount: Int
    /// What each member of the configuration has shown this node of its durable state since
    /// this process started (`Witnessed`).
    public var witnessed: [NodeID: Witnessed] = [:]

    public init(
        id: NodeID, role: Role, term: Term, leader: NodeID, commitIndex: LogIndex, appliedIndex: LogIndex, firstIndex: LogIndex,
        lastIndex: LogIndex, snapshotIndex: LogIndex, voters: [NodeID], learners: [NodeID], stateDigest: String, progress: [PeerProgressView],
        lastContactMillis: [NodeID: Int], haltReason: String?, droppedMessages: Int, snapshotsInstalled: Int, tenantCount: Int, instanceCount: Int
    ) {
        self.id = id
        self.role = role
        self.term = term
        self.leader = leader
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.firstIndex = firstIndex
        self.lastIndex = lastIndex
        self.snapshotIndex = snapshotIndex
        self.voters = voters
        self.learners = learners
        self.stateDigest = stateDigest
        self.progress = progress
        self.lastContactMillis = lastContactMillis
        self.haltReason = haltReason
        self.droppedMessages = droppedMessages
        self.snapshotsInstalled = snapshotsInstalled
        self.tenantCount = tenantCount
        self.instanceCount = instanceCount
    }
}

/// One turn of the node loop that took at least `PeerNodeOptions.slowTurnMillis`, by phase: what
/// an operator needs to tell a slow disk (persist) from a slow state machine (apply) from a
/// snapshot write (compaction). While a turn runs, no message is sent and no request answered.
public struct SlowTurn: Sendable, Hashable {
    public var totalMillis: Double
    /// Stepping the peer messages and requests taken this turn (and proposing).
    public var stepMillis: Double
    /// `LogStore.persist` of every Ready of the turn (the durable write, fsync).
    public var persistMillis: Double
    /// Applying committed entries to the cluster state.
    public var applyMillis: Double
    /// Writing a piece of a snapshot, and finishing it.
    public var compactionMillis: Double
    public var messages: Int
    public var requests: Int
    /// Committed entries applied in the turn.
    public var appliedEntries: Int = 0
}

/// What one member's messages proved to this node about that member's durable state: the
/// highest term it sent (it persisted that term, and any vote in it, first), and the last
/// append it acknowledged (`ackIndex`, stored by it while its term was `ackTerm`). A member
/// whose data dir holds less was restored from an older copy or wiped (docs/operations.md
/// §A data dir older than the cluster remembers).
public struct Witnessed: Sendable, Hashable {
    public var term: Term = 0
    public var ackTerm: Term = 0
    public var ackIndex: LogIndex = 0

    public init(term: Term = 0, ackTerm: Term = 0, ackIndex: LogIndex = 0) {
        self.term = term
        self.ackTerm = ackTerm
        self.ackIndex = ackIndex
    }

    /// Why a member whose data dir holds `term` and `lastIndex` must not start on it, or nil:
    /// its term is below one it sent, or, still in the term of an acknowledged append, its log
    /// ends before what it acknowledged. (A later term may have truncated entries it
    /// acknowledged to an earlier leader; those were not committed by its acknowledgement.)
    public func staleness(term: Term, lastIndex: LogIndex) -> String? {
        if term < self.term { return "term \(self.term) was sent from it, its data dir holds term \(term)" }
        if term == ackTerm && lastIndex < ackIndex {
            return "it acknowledged log index \(ackIndex) in term \(ackTerm), its data dir's log ends at \(lastIndex) in that term"
        }
        return nil
    }
}

/// This node's place in the election: its role, its term and the leader it knows of
/// (`noNode` while none), reported to `PeerNode.onLeadership` when one of them changes.
public struct Leadership: Sendable, Hashable {
    public var role: Role
    public var term: Term
    public var leader: NodeID
}

/// When the node snapshots its state and compacts the log. A pure decision (no clock, no I/O).
///
/// A snapshot encodes and writes the whole state: its cost grows with the state, while what it
/// saves (the log it replaces) grows with the entries since the last one. Counting entries alone
/// makes the cost per entry grow with the state (a cluster of 50,000 tenants snapshotting every
/// 10,000 entries spends most of a core on it). So a snapshot also waits until the log since the
/// last one holds `logBytesRatio` times that snapshot's bytes: the snapshot work per applied byte
/// is then at most 1/ratio whatever the state's size, and the log kept on disk between snapshots
/// is bounded by about ratio times the state. (etcd counts entries only, 100,000 by default.)
public struct SnapshotPolicy: Sendable, Hashable {
    public var everyEntries: UInt64
    public var logBytesRatio: Double

    public init(everyEntries: UInt64, logBytesRatio: Double) {
        self.everyEntries = everyEntries
        self.logBytesRatio = logBytesRatio
    }

    /// Whether to snapshot now, `entries` entries holding `logBytes` bytes after a snapshot of
    /// `lastSnapshotBytes` bytes (0 when there is none yet).
    public func isDue(entries: UInt64, logBytes: UInt64, lastSnapshotBytes: UInt64) -> Bool {
        entries >= everyEntries && Double(logBytes) >= Double(lastSnapshotBytes) * logBytesRatio
    }
}
