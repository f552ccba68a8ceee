import Raft

// The checks take the node `inout` only to read it in place: a copy of a `RaftNode` retains
// every buffer it holds, and the simulator checks after every message.

/// What a node looked like just before a message was stepped into it.
struct StepObservation {
    var commit: LogIndex
    var role: Role
    var queued: Int
    var lastIndex: LogIndex
    var lastTerm: Term

    init(_ raft: inout RaftNode) {
        commit = raft.commitIndex
        role = raft.role
        queued = raft.queuedMessages.count
        lastIndex = raft.lastIndex
        lastTerm = raft.term(at: raft.lastIndex) ?? 0
    }
}

/// The rules checked at the moment they are broken, not through their rare downstream effects
/// (docs/simulator.md, "Direct checks"):
/// - vote-up-to-date: every granted vote or pre-vote, real or for a transfer, went to a
///   candidate whose log was at least as up to date as the voter's when it voted (§5.4.1);
/// - follower-commit-bounded: a follower's commit index never passes the last entry of the
///   append that moved it (nor a heartbeat's commit);
/// - read-quorum-confirmed: a leader answers a linearizable read only after a quorum of its
///   voters answered a heartbeat sent after the read reached it (thesis §6.4);
/// - durable-before-send: a granted vote or an append acknowledgement leaves a node only once
///   what it promises is on the node's disk;
/// - commit-own-term and one-voter-per-change live beside the checks they refine
///   (`checkCommitQuorum`, `applied`).
extension Checker {
    /// A read reached the leader `leader` of `term` (asked there, or forwarded to it).
    /// A duplicated request arriving again keeps its first arrival: the read began then.
    mutating func readArrived(context: UInt64, at leader: NodeID, term: Term) {
        if let a = readArrival[context], a.leader == leader, a.term == term { return }
        readArrivals += 1
        readArrival[context] = ReadArrival(leader: leader, term: term, seq: readArrivals)
    }

    /// After `m` was stepped into `raft`, which looked like `before` just before.
    mutating func stepped(_ m: Message, node raft: inout RaftNode, before: StepObservation) -> Violation? {
        observeRounds(&raft, since: before.queued)
        switch m.kind {
        case .vote, .preVote:
            for r in raft.queuedMessages.dropFirst(before.queued)
            where (r.kind == .voteResponse || r.kind == .preVoteResponse) && !r.reject && r.to == m.from {
                let upToDate = m.logTerm > before.lastTerm || (m.logTerm == before.lastTerm && m.index >= before.lastIndex)
                if !upToDate {
                    let why = m.context == Message.leadershipTransferContext ? " (a transfer's vote)" : ""
                    return Violation(invariant: "vote-up-to-date",
                                     detail: "node \(raft.id) grants \(r.kind) of term \(r.term) to \(m.from)\(why), whose last entry \(m.index)/t\(m.logTerm) is behind its own \(before.lastIndex)/t\(before.lastTerm)")
                }
            }
        case .append, .heartbeat:
            guard raft.role != .leader, raft.commitIndex > before.commit else { return nil }
            let bound = m.kind == .append ? m.index + LogIndex(m.entries.count) : m.commit
            if raft.commitIndex > bound {
                return Violation(invariant: "follower-commit-bounded",
                                 detail: "node \(raft.id) commits \(raft.commitIndex) (from \(before.commit)) on \(m), which proves its log matches the leader's only through \(bound)")
            }
        case .heartbeatResponse where m.context != 0:
            // A voter answered a heartbeat round: it confirms every read that had reached the
            // leader when the round went out, in that term.
            let key = NodeKey(node: m.to, term: m.term)
            if let covered = roundsSent[RoundKey(leader: m.to, term: m.term, round: m.context)] {
                readConfirmations[key, default: [:]][m.from] = max(readConfirmations[key]?[m.from] ?? 0, covered)
            }
        default:
            break
        }
        return nil
    }

    /// Notes the heartbeat rounds a leader queued since `queued` messages were waiting: each
    /// round covers the reads that had arrived by then (the simulator names rounds by what it
    /// saw go out, not by what the core says they are for). Called after every call into a
    /// node that can queue a round: step, propose, readIndex, advance.
    mutating func observeRounds(_ raft: inout RaftNode, since queued: Int) {
        guard raft.role == .leader else { return }
        for h in raft.queuedMessages.dropFirst(queued) where h.kind == .heartbeat && h.context != 0 {
            let key = RoundKey(leader: raft.id, term: h.term, round: h.context)
            if roundsSent[key] == nil { roundsSent[key] = readArrivals }
        }
    }

    /// A message about to leave a node: a granted vote, or an acknowledgement of appended
    /// entries, promises something the node must still know after a crash, so it goes out only
    /// once that is on the node's disk (a leader's own appends may go out first: thesis §10.2.1).
    func sending(_ m: Message, disk: MemoryStorage) -> Violation? {
        switch m.kind {
        case .voteResponse where !m.reject:
            let hs = disk.hardState
            if hs.term < m.term || (hs.term == m.term && hs.vote != m.to) {
                return Violation(invariant: "durable-before-send",
                                 detail: "node \(m.from) grants its vote of term \(m.term) to \(m.to) while its disk holds term \(hs.term) vote \(hs.vote)")
            }
        case .appendResponse where !m.reject:
            let last = (try? disk.lastIndex()) ?? 0
            if m.index > last {
                return Violation(invariant: "durable-before-send",
                                 detail: "node \(m.from) acknowledges entries through \(m.index) to \(m.to) while its disk holds entries through \(last)")
            }
        default:
            break
        }
        return nil
    }

    /// A Ready about to be handled: every read the node answers as leader (to itself, or to the
    /// follower that forwarded it) must have been confirmed by a quorum of its voters.
    func answered(_ rd: Ready, node raft: inout RaftNode) -> Violation? {
        var answers: [UInt64] = rd.messages.compactMap { $0.kind == .readIndexResponse ? $0.context : nil }
        for rs in rd.readStates where readArrival[rs.context]?.leader == raft.id { answers.append(rs.context) }
        for context in answers {
            guard let a = readArrival[context], a.leader == raft.id else { continue }
            let confirmations = readConfirmations[NodeKey(node: raft.id, term: a.term)] ?? [:]
            let voters = raft.conf.voters
            let confirmed = voters.filter { $0 == raft.id || (confirmations[$0] ?? 0) >= a.seq }
            if confirmed.count < voters.count / 2 + 1 {
                return Violation(invariant: "read-quorum-confirmed",
                                 detail: "leader \(raft.id) of term \(a.term) answers read \(context) confirmed after its arrival only by \(confirmed.sorted()) of voters \(voters.sorted())")
            }
        }
        return nil
    }
}
