/// The outcome of `RaftNode.step`.
public enum StepResult: Sendable, Hashable {
    case accepted
    case ignored(IgnoreReason)
}

/// Why a message was not acted upon. Every one of these is expected in a healthy cluster
/// except `malformed`, which means a peer (or the network) sent something impossible.
public enum IgnoreReason: Sendable, Hashable {
    case wrongRecipient
    case unknownSender
    case staleTerm
    /// A vote request arrived while this node hears from a live leader (thesis §4.2.3).
    case leaderLease
    case irrelevantForRole
    case staleResponse
    /// A chunk of a snapshot older than the one this follower is staging from the same leader.
    case staleSnapshot
    /// A snapshot chunk arrived while the install of another snapshot waits for the driver.
    case snapshotInstallPending
    case malformed(String)
    case halted(String)
}

extension RaftNode {
    /// Term bookkeeping common to all roles (paper §5.1), then the role's handler.
    mutating func stepChecked(_ m: Message) -> StepResult {
        if m.to != id { return .ignored(.wrongRecipient) }
        if m.from == id || m.from == noNode { return .ignored(.unknownSender) }
        // A node learns its leader whatever its configuration says (a new node starts knowing no
        // configuration; thesis §4.1), but it does not let a non-member make it vote or raise its
        // term: a removed server must not disrupt the cluster (thesis §4.2.3). A node that knows
        // no configuration yet cannot tell members from others, and answers: a vote is safe to
        // grant to anyone (the candidate counts only its voters), and a new voter that has not
        // applied its configuration yet (it restarted before its commit index reached it) must
        // not deadlock the voters that need its vote.
        if (m.kind == .vote || m.kind == .preVote) && !conf.contains(m.from) && !conf.isUnknown {
            return .ignored(.unknownSender)
        }
        if let why = Self.malformation(of: m) { return .ignored(.malformed(why)) }

        if m.term > term {
            if m.kind == .vote || m.kind == .preVote {
                // A follower that hears from a leader ignores disruptive candidates (check-quorum
                // lease, thesis §4.2.3). The leader itself answers nothing either.
                // A transfer the leader asked for (thesis §3.10) overrides the lease.
                let forced = m.kind == .vote && m.context == Message.leadershipTransferContext
                let inLease = config.checkQuorum && leader != noNode && electionElapsed < config.electionTimeoutTicks
                if inLease && !forced { return .ignored(.leaderLease) }
            }
            switch m.kind {
            case .preVote:
                break  // Never change term for a pre-vote request.
            case .preVoteResponse where !m.reject:
                break  // A granted pre-vote carries the future term; ours stays.
            case .append, .heartbeat, .snapshot:
                becomeFollower(term: m.term, leader: m.from)
            default:
                becomeFollower(term: m.term, leader: noNode)
            }
        } else if m.term < term {
            if (config.checkQuorum || config.preVote) && (m.kind == .append || m.kind == .heartbeat) {
                // A stale leader (perhaps cut off, its term outdated while ours rose through
                // pre-votes that never became an election) learns the newer term from this
                // reply and steps down; otherwise it could keep followers from campaigning.
                send(Message(kind: .appendResponse, from: id, to: m.from, term: term))
            } else if m.kind == .preVote {
                send(Message(kind: .preVoteResponse, from: id, to: m.from, term: term, reject: true))
            }
            return .ignored(.staleTerm)
        }

        switch m.kind {
        case .vote, .preVote:
            return handleVoteRequest(m)
        default:
            switch role {
            case .leader: return stepLeader(m)
            case .candidate, .preCandidate: return stepCandidate(m)
            case .follower: return stepFollower(m)
            }
        }
    }

    /// Field checks that need no state. A message failing them is dropped whole.
    static func malformation(of m: Message) -> String? {
        switch m.kind {
        case .append, .heartbeat, .vote, .preVote, .snapshot, .timeoutNow:
            if m.term == 0 { return "\(m.kind) with term 0" }
        default:
            break
        }
        switch m.kind {
        case .append:
            if m.logTerm > m.term { return "previous entry term \(m.logTerm) above message term \(m.term)" }
            var expected = m.index
            var prevTerm = m.logTerm
            for e in m.entries {
                if expected == LogIndex.max { return "entry index overflow" }
                expected += 1
                if e.index != expected { return "entry index \(e.index), expected \(expected)" }
                if e.term > m.term { return "entry \(e.index) term \(e.term) above message term \(m.term)" }
                if e.term < prevTerm { return "entry \(e.index) term \(e.term) below preceding term \(prevTerm)" }
                prevTerm = e.term
            }
        case .appendResponse:
            if m.reject && m.rejectHint > m.index { return "reject hint \(m.rejectHint) beyond rejected index \(m.index)" }
        case .readIndex, .readIndexResponse:
            if m.context == 0 { return "\(m.kind) without a request id (context 0)" }
        case .vote, .preVote:
            if m.logTerm > m.term { return "candidate's last term \(m.logTerm) above its term \(m.term)" }
        case .snapshot:
            if let why = chunkMalformation(m) { return why }
        default:
            break
        }
        if m.kind != .append && !m.entries.isEmpty { return "\(m.kind) carries entries" }
        if m.kind != .snapshot && m.snapshot != nil { return "\(m.kind) carries a snapshot chunk" }
        return nil
    }

    // MARK: - Votes

    mutating func handleVoteRequest(_ m: Message) -> StepResult {
        let responseKind: MessageKind = m.kind == .vote ? .voteResponse : .preVoteResponse
        let bugs = config.plantedBugs
        // Paper §5.2: at most one vote per term, first come first served. A pre-vote for a
        // future term commits to nothing, so it can always be granted.
        var canVote = vote == m.from
            || (vote == noNode && leader == noNode)
            || (m.kind == .preVote && m.term > term)
        if bugs.contains(.voteTwicePerTerm) { canVote = true }
        // Paper §5.4.1: only a candidate whose log is at least as up to date as ours.
        let upToDate = bugs.contains(.voteIgnoresLog)
            || (bugs.contains(.transferVoteIgnoresLog) && m.context == Message.leadershipTransferContext)
            || log.isUpToDate(lastIndex: m.index, lastTerm: m.logTerm)
        if canVote && upToDate {
            // Answer with the request's term: a pre-candidate counts only grants for its future term.
            send(Message(kind: responseKind, from: id, to: m.from, term: m.term))
            if m.kind == .vote {
                electionElapsed = 0
                vote = m.from
            } else if role == .preCandidate && yieldsPreCampaign(to: m) {
                // Two nodes that lost the leader at once (leaderConnectionLost) would both win
                // their pre-votes and split the real vote: the one with the older log, or the
                // same log and the higher id, steps back (always safe: it only campaigns less).
                becomeFollower(term: term, leader: noNode)
            }
        } else {
            send(Message(kind: responseKind, from: id, to: m.from, term: term, reject: true))
        }
        return .accepted
    }

    mutating func tickElection() {
        electionElapsed += 1
        if isPromotable && electionElapsed >= randomizedElectionTimeout {
            electionElapsed = 0
            hup()
        }
    }

    mutating func tickLeader() {
        heartbeatElapsed += 1
        electionElapsed += 1
        for peer in conf.all where peer != id { progress[peer]?.ticksSinceHeard += 1 }
        if electionElapsed >= config.electionTimeoutTicks {
            electionElapsed = 0
            if leadTransferee != noNode {
                // Thesis §3.10: a transfer that did not finish within an election timeout is
                // abandoned, and the leader accepts proposals again.
                leadTransferee = noNode
            }
            if config.checkQuorum {
                // Thesis §6.2: a leader that has not heard from a quorum for an election timeout
                // steps down, so a partitioned leader stops believing it leads.
                if !quorumRecentlyActive() {
                    becomeFollower(term: term, leader: noNode)
                    return
                }
            }
        }
        tickSnapshotTransfers()
        if heartbeatElapsed >= config.heartbeatTimeoutTicks {
            heartbeatElapsed = 0
            broadcastHeartbeat()
            if isHandingOver { handOver() }
        }
    }

    /// Whether a quorum of voters (counting the leader) was heard from since the last check;
    /// resets the marks for the next round.
    mutating func quorumRecentlyActive() -> Bool {
        var active = 0
        for peer in conf.voters {
            if peer == id || progress[peer]?.recentActive == true { active += 1 }
        }
        for peer in Array(progress.keys) where peer != id {
            progress[peer]?.recentActive = false
        }
        return active >= quorumSize
    }

    var quorumSize: Int { conf.voters.count / 2 + 1 }

    mutating func hup() {
        guard haltReason == nil, role != .leader, isPromotable, !hasUnappliedConfChanges else { return }
        if config.preVote {
            campaign(preVote: true)
        } else {
            campaign(preVote: false)
        }
    }

    mutating func campaign(preVote: Bool, transfer: Bool = false) {
        let voteTerm: Term
        let kind: MessageKind
        if preVote {
            becomePreCandidate()
            counters.preVotesStarted += 1
            voteTerm = term + 1
            kind = .preVote
        } else {
            becomeCandidate()
            counters.electionsStarted += 1
            voteTerm = term
            kind = .vote
        }
        if recordVote(from: id, granted: true) == .won {
            if preVote {
                campaign(preVote: false)
            } else {
                becomeLeader()
            }
            return
        }
        let last = log.lastIndex
        let lastTerm = log.lastTerm
        let asked = config.plantedBugs.contains(.countLearnerVotes) ? conf.all : conf.voters
        for peer in asked.sorted() where peer != id {
            send(Message(kind: kind, from: id, to: peer, term: voteTerm, logTerm: lastTerm, index: last,
                         context: transfer ? Message.leadershipTransferContext : 0))
        }
    }

    enum VoteTally { case won, lost, pending }

    /// The leader chose this node to succeed it: campaign now, with a real vote (no pre-vote),
    /// and tell voters to ignore their leader lease (thesis §3.10).
    mutating func handleTimeoutNow(_ m: Message) -> StepResult {
        guard isPromotable, !hasUnappliedConfChanges else { return .ignored(.irrelevantForRole) }
        campaign(preVote: false, transfer: true)
        return .accepted
    }

    mutating func recordVote(from peer: NodeID, granted: Bool) -> VoteTally {
        // Only voters of our configuration count (learners and non-members may answer).
        let countsAll = config.plantedBugs.contains(.countLearnerVotes)
        guard (countsAll ? conf.all : conf.voters).contains(peer) else { return .pending }
        if votes[peer] == nil { votes[peer] = granted }
        var yes = 0
        var no = 0
        for v in countsAll ? conf.all : conf.voters {
            switch votes[v] {
            case true?: yes += 1
            case false?: no += 1
            case nil: break
            }
        }
        if yes >= quorumSize { return .won }
        if no > conf.voters.count - quorumSize { return .lost }
        return .pending
    }

    mutating func stepCandidate(_ m: Message) -> StepResult {
        let myResponse: MessageKind = role == .preCandidate ? .preVoteResponse : .voteResponse
        switch m.kind {
        case .append, .heartbeat, .snapshot:
            // A leader exists for our term (or, for a pre-candidate, for the current term).
            becomeFollower(term: m.term, leader: m.from)
            return stepFollower(m)
        case myResponse:
            if role == .preCandidate && !m.reject && m.term != term + 1 { return .ignored(.staleResponse) }
            switch recordVote(from: m.from, granted: !m.reject) {
            case .won:
                if role == .preCandidate {
                    campaign(preVote: false)
                } else {
                    becomeLeader()
                    broadcastAppend(sendIfEmpty: true)
                }
            case .lost:
                becomeFollower(term: term, leader: noNode)
            case .pending:
                break
            }
            return .accepted
        default:
            return .ignored(.irrelevantForRole)
        }
    }
}

extension RaftNode {
    /// A pre-candidate asked for a pre-vote by `m.from` steps back if the asker's log is more up
    /// to date than ours, or as up to date and its id is lower: a deterministic tie-break.
    func yieldsPreCampaign(to m: Message) -> Bool {
        let ourTerm = log.lastTerm, ourIndex = log.lastIndex
        if m.logTerm != ourTerm { return m.logTerm > ourTerm }
        if m.index != ourIndex { return m.index > ourIndex }
        return m.from < id
    }
}
