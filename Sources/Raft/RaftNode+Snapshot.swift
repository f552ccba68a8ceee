// Snapshot transfer in bounded chunks (Raft paper §7, thesis §5.3): the leader sends a follower
// whose next entry it has compacted its current snapshot, at most `snapshotChunkBytes` per
// message and `snapshotChunksInflightMax` messages unacknowledged; the follower stages the chunks
// through its driver and installs the snapshot once the last one is staged.
//
// Neither side ever holds a whole snapshot: the leader reads one chunk at a time from its
// storage, the follower hands each chunk to its driver in the next `Ready`.

/// The follower's side of a transfer: which snapshot it is staging, from whom, and how far.
/// Volatile: a restart forgets it, and the leader starts again at offset 0.
struct SnapshotStaging: Sendable, Hashable {
    var metadata: SnapshotMetadata
    var totalBytes: UInt64
    /// Chunks are accepted only from the leader and term that started the staging: two leaders'
    /// snapshots at the same index need not have the same bytes (e.g. across an upgrade that
    /// changed the encoding), so bytes from one never continue bytes from the other.
    var leader: NodeID
    var term: Term
    /// Bytes accepted so far (handed to the driver in this or an earlier `Ready`).
    var stagedBytes: UInt64 = 0

    func continues(_ c: SnapshotChunk, from peer: NodeID, term t: Term) -> Bool {
        metadata == c.metadata && totalBytes == c.totalBytes && leader == peer && term == t
    }
}

extension RaftNode {
    // MARK: - Leader

    /// Starts sending the current snapshot to `peer`, whose next entry is compacted.
    /// Returns whether a message went out.
    mutating func sendSnapshot(to peer: NodeID) -> Bool {
        // The first chunk names the snapshot (one read instead of metadata, then data).
        guard let first = log.snapshotChunk(offset: 0, maxBytes: config.snapshotChunkBytes) else { return false }
        counters.snapshotTransfersStarted += 1
        progress[peer]!.becomeSnapshot(SnapshotTransfer(metadata: first.metadata, totalBytes: first.totalBytes))
        return sendSnapshotChunks(to: peer) > 0
    }

    /// Fills `peer`'s window of snapshot chunks. Returns how many were sent.
    @discardableResult
    mutating func sendSnapshotChunks(to peer: NodeID) -> Int {
        guard var t = progress[peer]?.transfer, !t.paused else { return 0 }
        var sent = 0
        while t.inflightEnds.count < config.snapshotChunksInflightMax && !t.lastChunkSent {
            guard let c = log.snapshotChunk(offset: t.nextOffset, maxBytes: config.snapshotChunkBytes) else { break }
            if c.metadata != t.metadata || c.totalBytes != t.totalBytes {
                // A newer local snapshot replaced the one being sent (the storage serves only
                // its current one): start over with it at offset 0.
                precondition(c.metadata.index > t.metadata.index, "the leader's snapshot went back from \(t.metadata.index) to \(c.metadata.index)")
                counters.snapshotTransfersStarted += 1
                t = SnapshotTransfer(metadata: c.metadata, totalBytes: c.totalBytes)
                progress[peer]!.becomeSnapshot(t)
                continue
            }
            send(Message(kind: .snapshot, from: id, to: peer, term: term, snapshot: c))
            counters.snapshotChunksSent += 1
            sent += 1
            t.nextOffset = c.offset + UInt64(c.data.count)
            t.inflightEnds.append(t.nextOffset)
            if c.done { t.lastChunkSent = true }
        }
        progress[peer]!.transfer = t
        return sent
    }

    /// The follower's answer to a chunk.
    mutating func handleSnapshotResponse(_ m: Message) -> StepResult {
        let peer = m.from
        progress[peer]!.recentActive = true
        guard var t = progress[peer]!.transfer, m.index == t.metadata.index, m.logTerm == t.metadata.term else {
            // About a transfer that is over, or a snapshot we no longer send.
            return .ignored(.staleResponse)
        }
        let offset = m.snapshotOffset
        guard offset <= t.totalBytes else {
            return .ignored(.malformed("snapshot offset \(offset) beyond the snapshot's \(t.totalBytes) bytes"))
        }
        if m.reject {
            // The chunk did not continue what the follower staged (it restarted, or chunks were
            // lost or reordered): continue from where it is.
            t.ackedOffset = offset
            t.rewind()
            t.retries += 1
            t.paused = false
            counters.snapshotRetries += 1
        } else if offset == t.totalBytes {
            completeSnapshotTransfer(to: peer)
            return .accepted
        } else if !t.acknowledge(offset) {
            return .ignored(.staleResponse)
        }
        progress[peer]!.transfer = t
        sendSnapshotChunks(to: peer)
        return .accepted
    }

    /// The follower installed the snapshot (or did not need it): it holds the log up to the
    /// snapshot's index. Replicate from there, starting with a probe.
    mutating func completeSnapshotTransfer(to peer: NodeID) {
        let index = progress[peer]!.transfer!.metadata.index
        counters.snapshotTransfersCompleted += 1
        _ = progress[peer]!.maybeUpdate(index)
        progress[peer]!.becomeProbe()
        if maybeCommit() {
            broadcastAppend(sendIfEmpty: true)
            releaseReadsWaitingForTermCommit()
        } else {
            sendAppend(to: peer, sendIfEmpty: true)
        }
    }

    /// Once per tick: a transfer without progress for an election timeout resends from the last
    /// acknowledged offset (the chunks or their answers were lost; the follower may have
    /// restarted). A transfer paused as unreachable resumes the same way.
    mutating func tickSnapshotTransfers() {
        for peer in conf.all.sorted() where peer != id {
            guard var t = progress[peer]?.transfer else { continue }
            t.ticksWithoutProgress += 1
            if t.ticksWithoutProgress >= config.electionTimeoutTicks {
                t.rewind()
                t.retries += 1
                t.paused = false
                counters.snapshotRetries += 1
                progress[peer]!.transfer = t
                sendSnapshotChunks(to: peer)
            } else {
                progress[peer]!.transfer = t
            }
        }
    }

    /// `peer` answered something else (a heartbeat): a paused transfer resumes.
    mutating func resumeSnapshotTransferIfPaused(_ peer: NodeID) {
        guard var t = progress[peer]?.transfer, t.paused else { return }
        t.paused = false
        t.rewind()
        progress[peer]!.transfer = t
        sendSnapshotChunks(to: peer)
    }

    // MARK: - Follower

    /// A chunk from the leader (term already checked, `leader` already set).
    mutating func handleSnapshotChunk(_ m: Message) -> StepResult {
        let c = m.snapshot!
        let meta = c.metadata
        if meta.index <= log.committed {
            // Everything the snapshot holds is committed here already: nothing to install.
            dropStaging(of: meta)
            replySnapshot(to: m.from, meta, offset: c.totalBytes)
            return .accepted
        }
        if log.matchTerm(meta.index, meta.term) {
            // Our log holds the snapshot's last entry, so (log matching) the whole prefix it
            // covers: keep the log and commit up to it instead of installing (etcd raft.restore).
            log.commit(to: meta.index)
            dropStaging(of: meta)
            replySnapshot(to: m.from, meta, offset: c.totalBytes)
            return .accepted
        }
        if log.unstableSnapshot != nil {
            // The install of another snapshot waits for the driver; a chunk staged now would
            // land after that install in the same Ready. The leader resends after its timeout.
            return .ignored(.snapshotInstallPending)
        }
        if staging?.continues(c, from: m.from, term: m.term) != true {
            if let s = staging, s.leader == m.from, s.term == m.term, meta.index < s.metadata.index {
                // A delayed chunk of a snapshot this leader has since replaced.
                return .ignored(.staleSnapshot)
            }
            guard c.offset == 0 else {
                // A snapshot we are not staging: only its beginning is useful.
                replySnapshot(to: m.from, meta, offset: 0, reject: true)
                return .accepted
            }
            staging = SnapshotStaging(metadata: meta, totalBytes: c.totalBytes, leader: m.from, term: m.term)
        }
        let staged = staging!.stagedBytes
        if c.offset != staged {
            // A duplicate (re-acknowledge) or a gap (ask for what comes next).
            replySnapshot(to: m.from, meta, offset: staged, reject: c.offset > staged)
            return .accepted
        }
        chunksToStage.append(c)
        staging!.stagedBytes += UInt64(c.data.count)
        if c.done {
            staging = nil
            log.restore(meta)
            conf = meta.conf
            counters.snapshotsInstalled += 1
        }
        // Sent with the Ready that stages the chunk: only after it is durable.
        replySnapshot(to: m.from, meta, offset: c.offset + UInt64(c.data.count))
        return .accepted
    }

    private mutating func dropStaging(of meta: SnapshotMetadata) {
        if staging?.metadata == meta { staging = nil }
    }

    private mutating func replySnapshot(to peer: NodeID, _ meta: SnapshotMetadata, offset: UInt64, reject: Bool = false) {
        var r = Message(kind: .snapshotResponse, from: id, to: peer, term: term, logTerm: meta.term, index: meta.index, reject: reject)
        r.snapshotOffset = offset
        send(r)
    }

    /// Field checks of a snapshot chunk that need no state (`malformation(of:)`).
    static func chunkMalformation(_ m: Message) -> String? {
        guard let c = m.snapshot else { return "snapshot message without a chunk" }
        let (end, overflow) = c.offset.addingReportingOverflow(UInt64(c.data.count))
        if overflow || end > c.totalBytes { return "snapshot chunk [\(c.offset), +\(c.data.count)) beyond its \(c.totalBytes) bytes" }
        if c.done != (end == c.totalBytes) { return "snapshot chunk ends at \(end) of \(c.totalBytes) but done is \(c.done)" }
        if c.metadata.index == 0 || c.metadata.term == 0 { return "snapshot at index \(c.metadata.index) term \(c.metadata.term)" }
        if c.metadata.term > m.term { return "snapshot term \(c.metadata.term) above message term \(m.term)" }
        if c.metadata.conf.voters.isEmpty { return "snapshot configuration without voters" }
        return nil
    }
}
