/// Tunables of one Raft node. Limits carry their unit last in the name.
public struct RaftConfig: Sendable {
    public var id: NodeID
    /// A follower that hears nothing from a leader for this many ticks (plus a random extra of
    /// up to the same amount) starts an election. A leader with check-quorum steps down if it has
    /// not heard from a quorum within this many ticks.
    public var electionTimeoutTicks: Int = 10
    /// A leader sends heartbeats every this many ticks. Must be below `electionTimeoutTicks`.
    public var heartbeatTimeoutTicks: Int = 1
    /// Upper bound on the entry bytes of one append message (at least one entry is always sent).
    public var appendBytesMax: Int = 1 << 20
    /// Append messages in flight to one follower before the leader waits for an answer.
    public var inflightMessagesMax: Int = 256
    /// Bytes of entry payload the leader may hold uncommitted; proposals beyond it are refused
    /// with `ProposalError.uncommittedLogFull`. 0 means no limit.
    public var uncommittedBytesMax: Int = 64 << 20
    /// Upper bound on the entry bytes handed to the application in one `Ready`.
    public var applyBytesMaxPerReady: Int = 64 << 20
    /// Linearizable reads (ReadIndex) the leader holds unconfirmed at once; more are refused.
    public var readRequestsMax: Int = 4096
    /// Upper bound on the snapshot bytes of one `.snapshot` message. The leader never reads more
    /// than this from its storage at once, so sending a snapshot costs memory in proportion to
    /// `snapshotChunkBytes × snapshotChunksInflightMax`, not to the snapshot's size.
    public var snapshotChunkBytes: Int = 1 << 20
    /// Snapshot chunks sent to one follower and not yet acknowledged; then the leader waits.
    public var snapshotChunksInflightMax: Int = 4
    /// A learner is promoted only when its match index is at most this many entries behind the
    /// leader's last index (and it answered within an election timeout), so that the new voter
    /// does not stall commits while it catches up.
    public var learnerCatchUpEntriesMax: Int = 1000
    /// Thesis §9.6: ask "would you vote for me?" before incrementing the term.
    public var preVote = true
    /// Thesis §6.2: a leader steps down when it has not heard from a quorum for an election
    /// timeout, and followers ignore vote requests while they hear from a leader.
    public var checkQuorum = true
    /// The highest index the application already applied (a durable state machine); 0 otherwise.
    public var applied: LogIndex = 0
    /// Classic bugs that the simulator can plant to prove it catches them. Empty in production.
    public var plantedBugs: Set<PlantedBug> = []

    public init(id: NodeID) {
        self.id = id
    }

    /// Checks the settings; returns what is wrong, or nil.
    public func validationError() -> String? {
        if id == noNode { return "id must not be 0" }
        if heartbeatTimeoutTicks <= 0 { return "heartbeatTimeoutTicks must be positive, got \(heartbeatTimeoutTicks)" }
        if electionTimeoutTicks <= heartbeatTimeoutTicks {
            return "electionTimeoutTicks (\(electionTimeoutTicks)) must be greater than heartbeatTimeoutTicks (\(heartbeatTimeoutTicks))"
        }
        if appendBytesMax <= 0 { return "appendBytesMax must be positive, got \(appendBytesMax)" }
        if inflightMessagesMax <= 0 { return "inflightMessagesMax must be positive, got \(inflightMessagesMax)" }
        if uncommittedBytesMax < 0 { return "uncommittedBytesMax must not be negative, got \(uncommittedBytesMax)" }
        if readRequestsMax <= 0 { return "readRequestsMax must be positive, got \(readRequestsMax)" }
        if applyBytesMaxPerReady <= 0 { return "applyBytesMaxPerReady must be positive, got \(applyBytesMaxPerReady)" }
        if snapshotChunkBytes <= 0 { return "snapshotChunkBytes must be positive, got \(snapshotChunkBytes)" }
        if snapshotChunksInflightMax <= 0 { return "snapshotChunksInflightMax must be positive, got \(snapshotChunksInflightMax)" }
        if learnerCatchUpEntriesMax < 0 { return "learnerCatchUpEntriesMax must not be negative, got \(learnerCatchUpEntriesMax)" }
        return nil
    }
}

/// Deliberate protocol bugs, for proving that the simulator finds them. Never set in production:
/// `peer-sim --plant-bug NAME` is the only user.
public enum PlantedBug: String, Sendable, Hashable, CaseIterable {
    /// Vote handling: grant a vote without checking that the candidate's log is up to date.
    case voteIgnoresLog = "vote-ignores-log"
    /// Vote handling: grant a vote to any candidate, even after voting for another in this term.
    case voteTwicePerTerm = "vote-twice-per-term"
    /// Commit rule: commit entries of earlier terms by counting replicas (Figure 8).
    case commitByCountingOldTerms = "commit-old-terms"
    /// Persistence: the vote is not reported in `Ready.hardState`, so it is lost on a crash.
    case voteNotPersisted = "vote-not-persisted"
    /// Log truncation: on every append, drop the follower's entries after the appended ones,
    /// even ones the leader already counted (stale, reordered appends erase acknowledged entries).
    case truncateOnStaleAppend = "truncate-on-stale-append"
    /// Reads: the leader answers a ReadIndex request with its commit index at once, without
    /// confirming with a quorum that it still leads (a deposed leader serves stale reads).
    case readWithoutQuorumCheck = "read-without-quorum-check"
    /// Persistence order (a driver bug, planted in the simulator's driver): messages are sent
    /// before the Ready's state is persisted.
    case sendBeforePersist = "send-before-persist"
    /// Membership: a candidate asks learners too and counts their votes as if they were voters,
    /// so it can win without a quorum of its configuration's voters.
    case countLearnerVotes = "count-learner-votes"
    /// Leadership transfer: a vote request the leader's transfer caused is granted without the
    /// up-to-date check (a late `timeoutNow` then elects a target that lacks committed entries).
    case transferVoteIgnoresLog = "transfer-vote-ignores-log"
    /// Membership: the leader proposes a change while the previous one is not yet applied, both
    /// computed from the same configuration, so consecutive configurations differ by two voters.
    case confChangeWhilePending = "conf-change-while-pending"
    /// Follower commit: a follower commits up to the leader's commit index bounded by its own
    /// last index, not by the last entry the append proved matches the leader's log.
    case commitBeyondAppend = "commit-beyond-append"
    /// Reads: any heartbeat answer confirms the newest pending read, even an answer to a
    /// heartbeat sent before the read arrived (a deposed leader's stale ack confirms it).
    case readConfirmedByAnyHeartbeat = "read-confirmed-by-any-heartbeat"
}

/// Why a proposal was not accepted. The caller knows for certain the entry was not appended.
public enum ProposalError: Error, Sendable, Hashable {
    /// Only the leader accepts proposals; `leader` is the known leader (or `noNode`).
    /// Followers do not forward proposals: the caller (the API layer) forwards the request to
    /// the leader, which can then tell it the entry's index and term (docs/adr/0002).
    case notLeader(leader: NodeID)
    /// The leader holds `uncommittedBytes` of uncommitted entries; adding `proposedBytes` would
    /// pass `limitBytes`. Retry after the backlog commits.
    case uncommittedLogFull(uncommittedBytes: Int, proposedBytes: Int, limitBytes: Int)
    /// A leadership transfer is in progress; proposals wait until it ends.
    case transferInProgress(to: NodeID)
    /// `proposeConfChange` only: the change is refused, and says why.
    case confChangeRefused(ConfChangeRefusal)
    /// The node halted after a storage failure.
    case halted(String)
}

/// Where a successful proposal landed. It is committed iff the entry applied at `index` has `term`.
public struct ProposalTicket: Sendable, Hashable {
    public var index: LogIndex
    public var term: Term
}
