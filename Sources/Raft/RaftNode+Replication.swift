// Log replication (Raft paper §5.3) on both sides, and the leader's commit rule (§5.4.2).

extension RaftNode {
    // MARK: - Leader

    mutating func stepLeader(_ m: Message) -> StepResult {
        guard progress[m.from] != nil else { return .ignored(.unknownSender) }
        switch m.kind {
        case .appendResponse:
            return handleAppendResponse(m)
        case .heartbeatResponse:
            if config.plantedBugs.contains(.readConfirmedByAnyHeartbeat), let newest = reads.confirming.last {
                readConfirmed(round: newest.round, by: m.from)
            } else if m.context != 0 {
                readConfirmed(round: m.context, by: m.from)
            }
            progress[m.from]!.markHeard()
            progress[m.from]!.probeSent = false
            if progress[m.from]!.state == .replicate && progress[m.from]!.inflights.isFull {
                // The window may be stuck on lost appends; make room for one more.
                progress[m.from]!.inflights.freeFirst()
            }
            if progress[m.from]!.match < log.lastIndex || progress[m.from]!.state == .probe {
                sendAppend(to: m.from, sendIfEmpty: true)
            }
            resumeSnapshotTransferIfPaused(m.from)
            return .accepted
        case .snapshotResponse:
            return handleSnapshotResponse(m)
        case .readIndex:
            return handleReadIndexRequest(context: m.context, from: m.from)
        case .append, .heartbeat, .snapshot:
            // Another leader in our own term would violate election safety (§5.2).
            return .ignored(.malformed("\(m.kind) from \(m.from) claims leadership of term \(m.term), which this node leads"))
        default:
            return .ignored(.irrelevantForRole)
        }
    }

    mutating func handleAppendResponse(_ m: Message) -> StepResult {
        let peer = m.from
        progress[peer]!.markHeard()
        if m.reject {
            // A follower receiving a snapshot gets no appends; a rejection is from before.
            if case .snapshot = progress[peer]!.state { return .ignored(.staleResponse) }
            // Fast backtracking: jump over the follower's whole conflicting term at once.
            var hint = m.rejectHint
            if m.logTerm > 0 {
                hint = log.findConflictByTerm(index: min(m.rejectHint, log.lastIndex), term: m.logTerm).0
            }
            guard progress[peer]!.maybeDecrease(rejected: m.index, hint: hint) else { return .ignored(.staleResponse) }
            if progress[peer]!.state == .replicate { progress[peer]!.becomeProbe() }
            sendAppend(to: peer, sendIfEmpty: true)
            return .accepted
        }
        guard m.index <= log.lastIndex else {
            return .ignored(.malformed("acknowledges index \(m.index) beyond leader's last index \(log.lastIndex)"))
        }
        let wasPaused = progress[peer]!.isPaused
        // An answer to a probe at the known match point is news too: it ends the probe (after a
        // snapshot transfer, `match` is already the snapshot index when the first probe returns).
        let answersProbe = progress[peer]!.state == .probe && progress[peer]!.match == m.index
        guard progress[peer]!.maybeUpdate(m.index) || answersProbe else { return .ignored(.staleResponse) }
        switch progress[peer]!.state {
        case .probe:
            progress[peer]!.becomeReplicate()
        case .snapshot(let pending):
            if progress[peer]!.match >= pending { progress[peer]!.becomeProbe() }
        case .replicate:
            progress[peer]!.inflights.free(upTo: m.index)
        }
        if maybeCommit() {
            // Tell every follower the new commit index now rather than at the next heartbeat.
            broadcastAppend(sendIfEmpty: true)
            releaseReadsWaitingForTermCommit()
        } else if wasPaused {
            sendAppend(to: peer, sendIfEmpty: true)
        }
        // Pipelining: keep the window full while there is something to send.
        while sendAppend(to: peer, sendIfEmpty: false) {}
        if peer == leadTransferee && progress[peer]!.match == log.lastIndex {
            // The transferee caught up: hand over now.
            send(Message(kind: .timeoutNow, from: id, to: peer, term: term))
        }
        return .accepted
    }

    /// Appends the leader's own entries and counts itself as a replica.
    mutating func appendAsLeader(_ entries: [Entry]) {
        let last = log.append(entries)
        _ = progress[id]?.maybeUpdate(last)
        if maybeCommit() { releaseReadsWaitingForTermCommit() }
    }

    /// Commits the highest index stored on a quorum of voters, if it is of the current term.
    mutating func maybeCommit() -> Bool {
        // No voters, no quorum (a node that knows no configuration never leads; defensive).
        guard !conf.voters.isEmpty else { return false }
        var matches: [LogIndex] = []
        matches.reserveCapacity(conf.voters.count)
        for v in conf.voters { matches.append(progress[v]?.match ?? 0) }
        matches.sort(by: >)
        let quorumIndex = matches[quorumSize - 1]
        if config.plantedBugs.contains(.commitByCountingOldTerms), quorumIndex > log.committed {
            log.commit(to: quorumIndex)
            return true
        }
        // Figure 8: counting replicas commits only entries of the leader's own term.
        return log.maybeCommit(index: quorumIndex, term: term)
    }

    mutating func broadcastAppend(sendIfEmpty: Bool) {
        for peer in conf.all.sorted() where peer != id {
            // Fill the pipeline: in replicate state several appends may be in flight at once.
            if sendAppend(to: peer, sendIfEmpty: sendIfEmpty) {
                while sendAppend(to: peer, sendIfEmpty: false) {}
            }
        }
    }

    /// Sends the next entries to `peer` if its progress allows. Returns whether a message went out.
    @discardableResult
    mutating func sendAppend(to peer: NodeID, sendIfEmpty: Bool) -> Bool {
        guard var pr = progress[peer], !pr.isPaused else { return false }
        let prevIndex = pr.next - 1
        guard let prevTerm = log.term(prevIndex),
              let entries = log.slice(pr.next, log.lastIndex + 1, maxBytes: config.appendBytesMax)
        else {
            // The entries the follower needs were compacted: it needs a snapshot (paper §7).
            return sendSnapshot(to: peer)
        }
        if entries.isEmpty && !sendIfEmpty { return false }
        send(Message(kind: .append, from: id, to: peer, term: term, logTerm: prevTerm, index: prevIndex,
                     entries: entries, commit: log.committed))
        switch pr.state {
        case .replicate:
            if let last = entries.last {
                pr.next = last.index + 1
                pr.inflights.add(last.index)
            }
        case .probe:
            pr.probeSent = true
        case .snapshot:
            preconditionFailure("append to \(peer) while it receives a snapshot")
        }
        progress[peer] = pr
        return true
    }

    /// `context` tags the round for a ReadIndex confirmation (0: a plain heartbeat).
    mutating func broadcastHeartbeat(context: UInt64 = 0) {
        for peer in conf.all.sorted() where peer != id {
            // Never tell a follower a commit index beyond what it is known to store.
            let commit = min(progress[peer]?.match ?? 0, log.committed)
            send(Message(kind: .heartbeat, from: id, to: peer, term: term, commit: commit, context: context))
        }
    }

    // MARK: - Follower

    mutating func stepFollower(_ m: Message) -> StepResult {
        switch m.kind {
        case .append:
            electionElapsed = 0
            leader = m.from
            return handleAppend(m)
        case .heartbeat:
            guard m.commit <= log.lastIndex else {
                return .ignored(.malformed("heartbeat commit \(m.commit) beyond follower's last index \(log.lastIndex)"))
            }
            electionElapsed = 0
            leader = m.from
            log.commit(to: m.commit)
            send(Message(kind: .heartbeatResponse, from: id, to: m.from, term: term, context: m.context))
            return .accepted
        case .snapshot:
            electionElapsed = 0
            leader = m.from
            return handleSnapshotChunk(m)
        case .timeoutNow:
            return handleTimeoutNow(m)
        case .readIndexResponse:
            readStates.append(ReadState(index: m.index, context: m.context))
            counters.readsConfirmed += 1
            return .accepted
        default:
            return .ignored(.irrelevantForRole)
        }
    }

    mutating func handleAppend(_ m: Message) -> StepResult {
        if m.index < log.committed {
            // Everything up to our commit index is settled; tell the leader where we are.
            send(Message(kind: .appendResponse, from: id, to: m.from, term: term, index: log.committed))
            return .accepted
        }
        if config.plantedBugs.contains(.truncateOnStaleAppend), log.matchTerm(m.index, m.logTerm) {
            return handleAppendTruncatingStale(m)
        }
        if let lastNew = log.maybeAppend(index: m.index, logTerm: m.logTerm, committed: m.commit, entries: m.entries) {
            if config.plantedBugs.contains(.commitBeyondAppend) { log.commit(to: min(m.commit, log.lastIndex)) }
            send(Message(kind: .appendResponse, from: id, to: m.from, term: term, index: lastNew))
            return .accepted
        }
        // Reject with a hint for fast backtracking: the last index at or before the rejected one
        // whose term is no greater than the leader's previous term.
        let hintIndex = min(m.index, log.lastIndex)
        let (index, hintTerm) = log.findConflictByTerm(index: hintIndex, term: m.logTerm)
        send(Message(kind: .appendResponse, from: id, to: m.from, term: term, logTerm: hintTerm, index: m.index,
                     reject: true, rejectHint: index))
        return .accepted
    }

    /// Planted bug `truncateOnStaleAppend`: after appending, drops everything after the message's
    /// entries, even entries acknowledged earlier (a reordered, stale append erases them). It
    /// spares committed entries so the core's own assertions stay quiet and the simulator must
    /// find the bug by its consequences.
    private mutating func handleAppendTruncatingStale(_ m: Message) -> StepResult {
        let lastNew = log.maybeAppend(index: m.index, logTerm: m.logTerm, committed: m.commit, entries: m.entries)!
        let cut = max(lastNew, log.committed + 1)
        if cut < log.lastIndex, let kept = log.slice(cut, cut + 1, maxBytes: Int.max), !kept.isEmpty {
            log.append(kept)  // Re-appending entry `cut` truncates everything after it.
        }
        send(Message(kind: .appendResponse, from: id, to: m.from, term: term, index: lastNew))
        return .accepted
    }
}
