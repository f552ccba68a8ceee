// Membership changes one server at a time (docs/adr/0005-membership-changes.md): a change takes
// effect on every node when that node applies its entry (as in etcd-io/raft), and a leader
// proposes one only when the previous one is applied and it committed an entry of its term.

extension RaftNode {
    /// Proposes one membership change. Leader only; at most one change is in flight (proposed
    /// and not yet applied). Returns where the change's entry landed; it takes effect on each
    /// node when that node applies the entry (`Ready.confChanges` reports it).
    @discardableResult
    public mutating func proposeConfChange(_ change: ConfChange) throws(ProposalError) -> ProposalTicket {
        precondition(!awaitingAdvance, "proposeConfChange() between ready() and advance()")
        if let why = haltReason { throw .halted(why) }
        guard role == .leader, !isHandingOver else { throw .notLeader(leader: role == .leader ? noNode : leader) }
        if leadTransferee != noNode { throw .transferInProgress(to: leadTransferee) }
        if log.term(log.committed) != term { throw .confChangeRefused(.noCommitInTerm(term: term)) }
        if pendingConfIndex > log.applied && !config.plantedBugs.contains(.confChangeWhilePending) {
            throw .confChangeRefused(.changePending(index: pendingConfIndex))
        }
        let newConf: ConfState
        do {
            newConf = try change.applied(to: conf)
        } catch {
            throw .confChangeRefused(error)
        }
        if case .promote(let n) = change, let why = promotionRefusal(n) {
            throw .confChangeRefused(why)
        }
        let data = ConfChangeEntry(change: change, conf: newConf).encode()
        let index = log.lastIndex + 1
        uncommittedBytes += data.count
        appendAsLeader([Entry(term: term, index: index, kind: .confChange, data: data)])
        pendingConfIndex = index
        proposalsPending = true
        return ProposalTicket(index: index, term: term)
    }

    /// A learner may become a voter once it is caught up: it holds the entry of the latest
    /// configuration change (or everything up to this leader's election), its log is within
    /// `learnerCatchUpEntriesMax` entries of ours, and it answered within an election timeout.
    /// A voter that lags would otherwise stall commits (it may be needed for a quorum at once);
    /// one that holds nothing yet (the simulator found this) could leave a two-voter cluster
    /// needing a node that does not know it is a member.
    func promotionRefusal(_ n: NodeID) -> ConfChangeRefusal? {
        guard let pr = progress[n] else { return .unknownNode(n) }
        let last = log.lastIndex
        let behind = last - min(pr.match, last)
        if pr.match < pendingConfIndex || behind > LogIndex(config.learnerCatchUpEntriesMax)
            || pr.ticksSinceHeard >= config.electionTimeoutTicks {
            return .learnerNotCaughtUp(n, match: pr.match, lastIndex: last, ticksSinceHeard: pr.ticksSinceHeard)
        }
        return nil
    }

    /// The application applied `entries` (in `advance`): the configuration changes among them
    /// take effect now, in order.
    mutating func applyConfChanges(in entries: [Entry]) {
        for e in entries where e.kind == .confChange {
            do {
                let decoded = try ConfChangeEntry.decode(e.data)
                switchConf(to: decoded.conf)
                counters.confChangesApplied += 1
                confResults.append(ConfChangeResult(index: e.index, change: decoded.change, error: nil, conf: conf))
            } catch {
                // A committed entry cannot be taken back: it changes nothing, and is reported.
                counters.confChangesMalformed += 1
                confResults.append(ConfChangeResult(index: e.index, change: nil, error: error, conf: conf))
            }
        }
    }

    /// Makes `newConf` the configuration in force. On the leader, progress follows (new members
    /// are probed at once; the commit index is recomputed for the new quorum), and a leader that
    /// is no longer a voter starts handing over (`handOver`).
    mutating func switchConf(to newConf: ConfState) {
        conf = newConf
        let last = log.lastIndex
        for peer in Array(progress.keys) where !newConf.contains(peer) {
            progress[peer] = nil
        }
        var added: [NodeID] = []
        for peer in newConf.all.sorted() {
            if progress[peer] == nil {
                var pr = Progress(next: last + 1, inflightMax: config.inflightMessagesMax, isLearner: false)
                if peer == id { pr.match = last }
                progress[peer] = pr
                added.append(peer)
            }
            progress[peer]!.isLearner = newConf.learners.contains(peer)
        }
        switch role {
        case .leader:
            if maybeCommit() {
                broadcastAppend(sendIfEmpty: true)
                releaseReadsWaitingForTermCommit()
            }
            for peer in added where peer != id { sendAppend(to: peer, sendIfEmpty: true) }
            if !newConf.voters.contains(id) {
                // Removed (the change committed). Stepping down at once could strand the others:
                // a voter that has not learned that the change committed still counts votes
                // with the old configuration, which needs this node, and this node's log may be
                // ahead of theirs. So it stops serving clients, keeps replicating (never counting
                // itself) so the voters learn the commit, and hands over; it steps down when the
                // successor's term reaches it (thesis §4.2.2: the leader manages the cluster
                // without itself until it can go).
                reads.dropAll()
                handOver()
            }
        case .candidate, .preCandidate:
            if !isPromotable { becomeFollower(term: term, leader: noNode) }
        case .follower:
            break
        }
    }

    /// A leader outside its voters: asks the most caught-up voter of the configuration to
    /// campaign at once (`timeoutNow`, which overrides the voters' lease). Repeated every
    /// heartbeat until that voter's higher term deposes this node; a voter that has not yet
    /// applied the change ignores it and is asked again.
    mutating func handOver() {
        let last = log.lastIndex
        let caughtUp = conf.voters.sorted().filter { $0 != id && progress[$0]?.match == last }
        if let successor = caughtUp.first {
            send(Message(kind: .timeoutNow, from: id, to: successor, term: term))
        }
    }

    /// True when a committed entry not yet applied is a configuration change: until it is
    /// applied this node may count votes with an outdated configuration, so it does not
    /// campaign (etcd-io/raft `hasUnappliedConfChanges`). Reads `(applied, committed]`, which
    /// is short unless the application lags; a failed read answers true (do not campaign).
    var hasUnappliedConfChanges: Bool {
        var lo = log.applied + 1
        let hi = log.committed + 1
        while lo < hi {
            guard let batch = log.slice(lo, hi, maxBytes: config.appendBytesMax), let lastEntry = batch.last else { return true }
            if batch.contains(where: { $0.kind == .confChange }) { return true }
            lo = lastEntry.index + 1
        }
        return false
    }

    /// At start with `config.applied` beyond the snapshot: the configuration changes between the
    /// snapshot and the applied index will not be handed out again, so they are read here.
    mutating func restoreAppliedConf() {
        var lo = log.firstIndex
        let hi = log.applied + 1
        while lo < hi {
            guard let batch = log.slice(lo, hi, maxBytes: config.appendBytesMax), let lastEntry = batch.last else { return }
            for e in batch where e.kind == .confChange {
                if let decoded = try? ConfChangeEntry.decode(e.data) { conf = decoded.conf }
            }
            lo = lastEntry.index + 1
        }
    }
}
