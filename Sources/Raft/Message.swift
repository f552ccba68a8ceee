/// The kinds of message Raft peers exchange. Raw values are wire tags: append-only, never reused.
public enum MessageKind: UInt8, Sendable, Hashable, CaseIterable {
    /// AppendEntries (paper §5.3): `index`/`logTerm` name the entry preceding `entries`.
    case append = 1
    /// Reply to `append`. Accept: `index` is the follower's last matching index.
    /// Reject: `index` echoes the request's `index`; `rejectHint`/`logTerm` name where the
    /// follower's log may match the leader's (fast backtracking, thesis §5.3 / etcd-io/raft).
    case appendResponse = 2
    /// Leader heartbeat carrying `commit` (never beyond what the follower is known to store).
    case heartbeat = 3
    case heartbeatResponse = 4
    /// RequestVote (paper §5.2) for term `term`, candidate's last entry `index`/`logTerm`.
    case vote = 5
    case voteResponse = 6
    /// Pre-vote (thesis §9.6): the same question for `term` = candidate's term + 1, asked
    /// without anyone changing their term.
    case preVote = 7
    case preVoteResponse = 8
    /// One chunk of the leader's snapshot (`snapshot` field), for a follower whose next entry
    /// the leader has compacted (paper §7, sent in bounded chunks).
    case snapshot = 9
    /// Reply to `snapshot`. `index`/`logTerm` name the snapshot; `snapshotOffset` (carried in
    /// `commit`) is the byte offset the follower expects next: every byte before it is durably
    /// staged, and an offset equal to the snapshot's `totalBytes` means it is installed (or not
    /// needed: the follower already holds what it contains). `reject`: the chunk did not
    /// continue what is staged; the leader sends from `snapshotOffset` instead.
    case snapshotResponse = 10
    /// Leadership transfer: the target starts an election at once (thesis §3.10).
    case timeoutNow = 11
    /// A follower asks the leader for a read index (thesis §6.4); `context` is the request id.
    case readIndex = 12
    case readIndexResponse = 13
}

/// One chunk of a snapshot in flight. `offset` and `data` cover `totalBytes` in order;
/// `done` marks the last chunk.
public struct SnapshotChunk: Sendable, Hashable {
    public var metadata: SnapshotMetadata
    public var offset: UInt64
    public var totalBytes: UInt64
    public var data: [UInt8]
    public var done: Bool

    public init(metadata: SnapshotMetadata, offset: UInt64, totalBytes: UInt64, data: [UInt8], done: Bool) {
        self.metadata = metadata
        self.offset = offset
        self.totalBytes = totalBytes
        self.data = data
        self.done = done
    }
}

/// A message between two Raft peers. The same shape serves every kind; fields a kind does not
/// use are zero. Messages from outside are untrusted: `Raft.step` validates every field it uses.
public struct Message: Sendable, Hashable {
    public var kind: MessageKind
    public var from: NodeID
    public var to: NodeID
    public var term: Term
    public var logTerm: Term
    public var index: LogIndex
    public var entries: [Entry]
    public var commit: LogIndex
    public var reject: Bool
    public var rejectHint: LogIndex
    /// Opaque request id for `readIndex` round trips; zero otherwise.
    public var context: UInt64
    public var snapshot: SnapshotChunk?

    public init(
        kind: MessageKind, from: NodeID, to: NodeID, term: Term,
        logTerm: Term = 0, index: LogIndex = 0, entries: [Entry] = [], commit: LogIndex = 0,
        reject: Bool = false, rejectHint: LogIndex = 0, context: UInt64 = 0, snapshot: SnapshotChunk? = nil
    ) {
        self.kind = kind
        self.from = from
        self.to = to
        self.term = term
        self.logTerm = logTerm
        self.index = index
        self.entries = entries
        self.commit = commit
        self.reject = reject
        self.rejectHint = rejectHint
        self.context = context
        self.snapshot = snapshot
    }

    /// `context` of a vote request sent because the leader transferred leadership: voters
    /// grant it even while they hear from that leader (thesis §3.10).
    public static let leadershipTransferContext: UInt64 = 0x7472_616E_7366_6572  // "transfer"

    /// `snapshotResponse` only: the next byte offset the follower expects (wire field `commit`).
    public var snapshotOffset: UInt64 {
        get { commit }
        set { commit = newValue }
    }

    /// True for the messages that ask for or answer a (pre-)vote.
    public var isVoteKind: Bool {
        switch kind {
        case .vote, .voteResponse, .preVote, .preVoteResponse: return true
        default: return false
        }
    }
}

extension Message: CustomStringConvertible {
    public var description: String {
        var s = "\(kind) \(from)->\(to) t\(term)"
        switch kind {
        case .append:
            s += " prev=\(index)/t\(logTerm) n=\(entries.count) commit=\(commit)"
        case .appendResponse:
            s += reject ? " reject idx=\(index) hint=\(rejectHint)/t\(logTerm)" : " ok idx=\(index)"
        case .heartbeat:
            s += " commit=\(commit)" + (context != 0 ? " ctx=\(context)" : "")
        case .vote, .preVote:
            s += " last=\(index)/t\(logTerm)"
        case .voteResponse, .preVoteResponse:
            s += reject ? " reject" : " grant"
        case .snapshot:
            if let c = snapshot { s += " snap=\(c.metadata.index)/t\(c.metadata.term) off=\(c.offset) len=\(c.data.count) done=\(c.done)" }
        case .snapshotResponse:
            s += " snap=\(index)/t\(logTerm)" + (reject ? " reject want=\(snapshotOffset)" : " ok off=\(snapshotOffset)")
        case .heartbeatResponse where context != 0:
            s += " ctx=\(context)"
        case .heartbeatResponse, .timeoutNow:
            break
        case .readIndex, .readIndexResponse:
            s += " ctx=\(context) idx=\(index)"
        }
        return s
    }
}
