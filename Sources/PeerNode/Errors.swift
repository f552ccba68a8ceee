import Raft

/// Why a proposal did not produce a result. Every case says whether the command may have been
/// applied, so a caller never mistakes a lost write for a failed one: retry "unknown" outcomes
/// with the SAME request id (client sessions make the retry apply at most once).
public enum ProposeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// This peer does not lead; nothing was appended. `leader` is the known leader, or 0.
    case notLeader(leader: NodeID)
    /// Refused before it reached the log (queue full, uncommitted backlog full, leadership
    /// transfer in progress). Nothing was appended; retry later.
    case notApplied(reason: String)
    /// The Raft core refused a membership change (another is pending, the learner is not caught
    /// up, ...): nothing was appended, and the same change is refused again until the cluster
    /// changes. Not worth a blind retry.
    case refused(reason: String)
    /// The entry reached the log but its fate is not known here (leadership or term changed
    /// before it committed, or the wait timed out). It may still apply.
    case outcomeUnknown(reason: String)
    /// The node is stopping; the command was not appended, or its outcome is unknown if it was.
    case stopped
    /// The node halted (storage failure or an entry this version cannot apply).
    case halted(reason: String)

    public var description: String {
        switch self {
        case .notLeader(let leader): return leader == noNode ? "not the leader (no leader known)" : "not the leader (leader is peer \(leader))"
        case .notApplied(let reason): return "not applied: \(reason)"
        case .refused(let reason): return "refused: \(reason)"
        case .outcomeUnknown(let reason): return "outcome unknown: \(reason)"
        case .stopped: return "the peer is stopping"
        case .halted(let reason): return "the peer halted: \(reason)"
        }
    }

    /// What the Raft core's refusal of a proposal means to its proposer: nothing was appended.
    public init(_ error: ProposalError) {
        switch error {
        case .notLeader(let leader): self = .notLeader(leader: leader)
        case .halted(let why): self = .halted(reason: why)
        case .transferInProgress(let to): self = .notApplied(reason: "leadership is being transferred to peer \(to)")
        case .uncommittedLogFull(let u, let p, let l): self = .notApplied(reason: "uncommitted log full (\(u) + \(p) bytes > \(l))")
        case .confChangeRefused(let why): self = .refused(reason: "\(why)")
        }
    }

    /// True if the command certainly did not apply.
    public var certainlyNotApplied: Bool {
        switch self {
        case .notLeader, .notApplied, .refused: return true
        case .outcomeUnknown, .stopped, .halted: return false
        }
    }
}

/// Why a read was not served. All are retryable; none changed anything.
public enum ReadError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A linearizable read needs a leader, and none is known.
    case noLeader
    /// Leadership changed before the read was confirmed.
    case leadershipChanged
    /// Too many reads are waiting.
    case overloaded
    case timedOut
    case stopped
    case halted(reason: String)

    public var description: String {
        switch self {
        case .noLeader: return "no leader is known to confirm a linearizable read"
        case .leadershipChanged: return "leadership changed before the read was confirmed"
        case .overloaded: return "too many requests are waiting"
        case .timedOut: return "the read was not confirmed in time"
        case .stopped: return "the peer is stopping"
        case .halted(let reason): return "the peer halted: \(reason)"
        }
    }
}

/// Why a node could not start.
public enum PeerNodeError: Error, Sendable, CustomStringConvertible {
    case storage(String)
    case snapshot(String)
    case config(String)

    public var description: String {
        switch self {
        case .storage(let s): return "cannot read the log: \(s)"
        case .snapshot(let s): return "cannot restore the snapshot: \(s)"
        case .config(let s): return "invalid node configuration: \(s)"
        }
    }
}
