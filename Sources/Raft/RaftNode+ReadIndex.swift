// Linearizable reads with ReadIndex (Raft thesis §6.4) and leadership transfer (thesis §3.10).

/// A read confirmed linearizable: serve it from the state machine once the applied index
/// reaches `index`. `context` is the request id the driver chose.
public struct ReadState: Sendable, Hashable {
    public var index: LogIndex
    public var context: UInt64

    public init(index: LogIndex, context: UInt64) {
        self.index = index
        self.context = context
    }
}

/// Why a read request was not accepted. Accepted requests either produce a `ReadState` or are
/// dropped when this node's role changes (the driver then fails them: outcome "retry").
public enum ReadIndexError: Error, Sendable, Hashable {
    /// No leader is known to ask.
    case noLeader
    /// `readRequestsMax` requests are already waiting.
    case tooManyPending(limit: Int)
    /// Request ids must be non-zero (0 means "no request" on the wire).
    case invalidContext
    case halted(String)
}

/// Why a leadership transfer was not started.
public enum TransferError: Error, Sendable, Hashable {
    case notLeader(leader: NodeID)
    /// Only a voter can lead.
    case notAVoter(NodeID)
    case halted(String)
}

/// The leader's reads in flight. Requests are confirmed in order: a quorum answering the
/// heartbeat round of one request confirms every earlier one too. A round is named by a number
/// the leader draws, not by the request's id: a duplicated or repeated id (a follower's retry,
/// a duplicated message) must not let an answer to a round sent before a read arrived confirm it.
/// Invariant: `confirming` is ordered by arrival; every entry's `acks` holds voters only (the
/// leader too while it is one).
struct ReadIndexQueue {
    struct Request {
        var context: UInt64
        var index: LogIndex
        var requester: NodeID
        var acks: Set<NodeID>
        /// The heartbeat round that confirms it (the heartbeats' `context`).
        var round: UInt64
    }

    /// The next round's number: rounds of one leader in one term are numbered 1, 2, 3...; the
    /// answers carry the term, so rounds of different terms never mix.
    var nextRound: UInt64 = 1

    var confirming: [Request] = []
    /// Requests that arrived before the leader committed an entry of its term: until then it
    /// cannot know the commit index is current (thesis §6.4 step 1).
    var waitingForTermCommit: [(context: UInt64, requester: NodeID)] = []

    var count: Int { confirming.count + waitingForTermCommit.count }

    /// Drops every pending read (the driver fails them). Round numbers keep counting: a late
    /// answer to a dropped round must not confirm a later read.
    mutating func dropAll() {
        confirming = []
        waitingForTermCommit = []
    }
}

extension RaftNode {
    /// Asks for a linearizable read. On the leader it is confirmed with a heartbeat round; on a
    /// follower it is forwarded to the leader. Either way the answer comes as a `ReadState` in a
    /// later `Ready`.
    public mutating func readIndex(context: UInt64) throws(ReadIndexError) {
        precondition(!awaitingAdvance, "readIndex() between ready() and advance()")
        if let why = haltReason { throw .halted(why) }
        guard context != 0 else { throw .invalidContext }
        switch role {
        case .leader:
            if isHandingOver { throw .noLeader }
            guard acceptRead(context: context, from: id) else { throw .tooManyPending(limit: config.readRequestsMax) }
        case .follower where leader != noNode:
            send(Message(kind: .readIndex, from: id, to: leader, term: term, context: context))
        default:
            throw .noLeader
        }
    }

    /// A follower's read request reached the leader. A leader handing over serves no reads.
    mutating func handleReadIndexRequest(context: UInt64, from peer: NodeID) -> StepResult {
        if isHandingOver { return .ignored(.irrelevantForRole) }
        return acceptRead(context: context, from: peer) ? .accepted : .ignored(.irrelevantForRole)
    }

    /// Queues a read on the leader. Returns false when the queue is full.
    mutating func acceptRead(context: UInt64, from requester: NodeID) -> Bool {
        guard reads.count < config.readRequestsMax else { return false }
        if config.plantedBugs.contains(.readWithoutQuorumCheck) {
            deliverRead(context: context, index: log.committed, to: requester)
            return true
        }
        guard log.term(log.committed) == term else {
            reads.waitingForTermCommit.append((context, requester))
            return true
        }
        confirmRead(context: context, from: requester)
        return true
    }

    private mutating func confirmRead(context: UInt64, from requester: NodeID) {
        if conf.voters == [id] {
            deliverRead(context: context, index: log.committed, to: requester)
            return
        }
        // The leader counts itself only while it is a voter: a leader that removed itself and is
        // handing over (ADR 0005) needs a quorum of the voters without it.
        let acks: Set<NodeID> = conf.voters.contains(id) ? [id] : []
        let round = reads.nextRound
        reads.nextRound += 1
        reads.confirming.append(.init(context: context, index: log.committed, requester: requester, acks: acks, round: round))
        broadcastHeartbeat(context: round)
    }

    /// The leader committed an entry of its term: the reads waiting for that can proceed.
    mutating func releaseReadsWaitingForTermCommit() {
        guard !reads.waitingForTermCommit.isEmpty, log.term(log.committed) == term else { return }
        let waiting = reads.waitingForTermCommit
        reads.waitingForTermCommit = []
        for r in waiting { confirmRead(context: r.context, from: r.requester) }
    }

    /// A voter answered heartbeat round `round`.
    mutating func readConfirmed(round: UInt64, by peer: NodeID) {
        guard conf.voters.contains(peer),
              let k = reads.confirming.firstIndex(where: { $0.round == round }) else { return }
        reads.confirming[k].acks.insert(peer)
        // Only the voters of the configuration in force count (it may have changed since).
        guard reads.confirming[k].acks.count(where: conf.voters.contains) >= quorumSize else { return }
        let done = reads.confirming[...k]
        reads.confirming.removeFirst(k + 1)
        for r in done { deliverRead(context: r.context, index: r.index, to: r.requester) }
    }

    private mutating func deliverRead(context: UInt64, index: LogIndex, to requester: NodeID) {
        if requester == id {
            readStates.append(ReadState(index: index, context: context))
            counters.readsConfirmed += 1
        } else {
            send(Message(kind: .readIndexResponse, from: id, to: requester, term: term, index: index, context: context))
        }
    }

    // MARK: - Leadership transfer

    /// Hands leadership to `target` (thesis §3.10): the leader stops accepting proposals,
    /// brings the target up to date, then tells it to campaign at once. Abandoned if it has not
    /// happened within an election timeout. Transferring to itself does nothing.
    public mutating func transferLeadership(to target: NodeID) throws(TransferError) {
        precondition(!awaitingAdvance, "transferLeadership() between ready() and advance()")
        if let why = haltReason { throw .halted(why) }
        guard role == .leader, !isHandingOver else { throw .notLeader(leader: role == .leader ? noNode : leader) }
        guard conf.voters.contains(target) else { throw .notAVoter(target) }
        guard target != id, target != leadTransferee else { return }
        leadTransferee = target
        electionElapsed = 0  // The transfer has one election timeout to finish.
        counters.transfersStarted += 1
        if progress[target]!.match == log.lastIndex {
            send(Message(kind: .timeoutNow, from: id, to: target, term: term))
        } else {
            sendAppend(to: target, sendIfEmpty: true)
        }
    }
}
