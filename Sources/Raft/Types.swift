// Basic vocabulary of the consensus core. Everything here is a plain value type: the core
// imports only the Swift standard library and does no I/O (ARCHITECTURE.md §4, §6).

/// A peer's identity inside the Raft group. `0` is reserved for "none".
public typealias NodeID = UInt64

/// A Raft term (Raft paper §5.1). Terms only grow.
public typealias Term = UInt64

/// A position in the replicated log. The first real entry has index 1; index 0 is the empty prefix.
public typealias LogIndex = UInt64

/// The "no node" value for `vote` and `leader`.
public let noNode: NodeID = 0

/// What an entry carries.
public enum EntryKind: UInt8, Sendable, Hashable {
    /// Application data (a replicated command), or the empty no-op a new leader appends.
    case normal = 0
    /// A membership change (Raft part 2). Its data is an encoded `ConfChange`.
    case confChange = 1
}

/// One entry of the replicated log.
public struct Entry: Sendable, Hashable {
    public var term: Term
    public var index: LogIndex
    public var kind: EntryKind
    /// Opaque application payload. Empty for the leader's no-op entry.
    public var data: [UInt8]

    public init(term: Term, index: LogIndex, kind: EntryKind = .normal, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.kind = kind
        self.data = data
    }

    /// The bytes this entry counts for in message-size and uncommitted-size limits.
    /// Fixed overhead approximates the framing cost so that empty entries are not free.
    @inlinable public var sizeBytes: Int { data.count + 24 }
}

/// The state Raft requires on stable storage before any message that depends on it is sent
/// (Raft paper Figure 2, "Persistent state on all servers"; `commit` is persisted as a hint so a
/// restart can apply without waiting for the leader).
public struct HardState: Sendable, Hashable {
    public var term: Term
    /// The candidate this node voted for in `term`, or `noNode`.
    public var vote: NodeID
    /// Highest index known committed. Invariant: `commit <= lastIndex` of the persisted log.
    public var commit: LogIndex

    public init(term: Term = 0, vote: NodeID = noNode, commit: LogIndex = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }

    public static let empty = HardState()
}

/// The role a node plays in its current term.
public enum Role: String, Sendable, Hashable {
    case follower
    /// Probing with pre-votes (thesis §9.6) before disturbing the cluster with a real election.
    case preCandidate
    case candidate
    case leader
}

/// Volatile state worth telling the application about (not persisted).
public struct SoftState: Sendable, Hashable {
    public var leader: NodeID
    public var role: Role

    public init(leader: NodeID, role: Role) {
        self.leader = leader
        self.role = role
    }
}

/// The membership configuration: who votes and who only learns.
/// Invariant: `voters` and `learners` are disjoint.
public struct ConfState: Sendable, Hashable {
    public var voters: Set<NodeID>
    public var learners: Set<NodeID>

    public init(voters: Set<NodeID>, learners: Set<NodeID> = []) {
        precondition(voters.isDisjoint(with: learners), "voters \(voters) and learners \(learners) overlap")
        precondition(!voters.contains(noNode) && !learners.contains(noNode), "node id 0 is reserved")
        self.voters = voters
        self.learners = learners
    }

    public func contains(_ id: NodeID) -> Bool { voters.contains(id) || learners.contains(id) }
    public var all: Set<NodeID> { voters.union(learners) }
    /// No voter and no learner: a new node that has not applied a configuration yet.
    public var isUnknown: Bool { voters.isEmpty && learners.isEmpty }
}

/// Describes a snapshot: the state machine after applying every entry up to `index`.
public struct SnapshotMetadata: Sendable, Hashable {
    public var index: LogIndex
    public var term: Term
    public var conf: ConfState

    public init(index: LogIndex, term: Term, conf: ConfState) {
        self.index = index
        self.term = term
        self.conf = conf
    }
}

/// A snapshot: metadata plus the application's encoded state.
public struct Snapshot: Sendable, Hashable {
    public var metadata: SnapshotMetadata
    public var data: [UInt8]

    public init(metadata: SnapshotMetadata, data: [UInt8]) {
        self.metadata = metadata
        self.data = data
    }
}
