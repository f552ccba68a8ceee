import ClusterModel
import Raft

/// The state only the node's thread touches, and the loop itself.
final class NodeLoop {
    let options: PeerNodeOptions
    let store: any LogStore
    let send: MessageSender
    let mailbox: Mailbox<Message, Request>
    var raft: RaftNode
    var state: ClusterState
    var snapshotIndex: LogIndex
    /// Bytes of the last snapshot taken or installed, and of the entries applied since it:
    /// what `SnapshotPolicy` weighs.
    var lastSnapshotBytes: UInt64 = 0
    var logBytesSinceSnapshot: UInt64 = 0
    /// The index of the snapshot being encoded on the snapshot thread; at most one at a time.
    var snapshotEncoding: LogIndex?
    /// An encoded snapshot being written to the store, one piece per loop turn.
    struct Compaction {
        var metadata: SnapshotMetadata
        var data: [UInt8]
        var written = 0
    }
    var compaction: Compaction?
    /// The last applied entry that changed the cluster version (`NodeStatus.versionChangeIndex`).
    var versionChangeIndex: LogIndex = 0
    var haltReason: String?
    var stopping = false

    struct PendingProposal {
        var term: Term
        var deadline: UInt64
        var cont: CheckedContinuation<Result<ApplyResult, ProposeError>, Never>
        var afterApply: AfterApply?
    }
    /// Proposals appended to the log, by index, waiting for that index to apply.
    var proposals: [LogIndex: PendingProposal] = [:]

    struct PendingRead {
        var waiter: ReadWaiter
        var deadline: UInt64
        /// Known once the ReadIndex round confirmed it.
        var index: LogIndex?
    }
    var reads: [UInt64: PendingRead] = [:]
    var nextReadContext: UInt64 = 1

    /// Monotonic nanos of the last message from each peer.
    var lastContact: [NodeID: UInt64] = [:]
    /// What each member of the configuration has shown this node of its durable state
    /// (`Witnessed`): a member that restarts on an older copy of its data is told by it.
    var witnessed: [NodeID: Witnessed] = [:]
    var softState: SoftState
    var publish: (@Sendable (PeerNode.Published) -> Void)?
    var onExit: (@Sendable () -> Void)?
    /// Configuration changes the core applied (ADR 0005): the transport's peers follow them.
    var membershipChanged: (@Sendable (MembershipUpdate) -> Void)?
    /// Told about every turn of the loop slower than `options.slowTurnMillis`.
    var slowTurn: (@Sendable (SlowTurn) -> Void)?
    /// Told when this node's role, term or known leader changed (after the turn that changed it).
    var leadershipChanged: (@Sendable (Leadership) -> Void)?
    var lastLeadership: Leadership?
    /// Time spent in the current turn's phases (nanoseconds), for `SlowTurn`.
    var turnPersistNanos: UInt64 = 0
    var turnApplyNanos: UInt64 = 0
    var turnAppliedEntries = 0

    init(options: PeerNodeOptions, store: any LogStore, send: @escaping MessageSender, mailbox: Mailbox<Message, Request>) throws(PeerNodeError) {
        self.options = options
        self.store = store
        self.send = send
        self.mailbox = mailbox
        // The state is the snapshot's, and the core re-delivers every committed entry after it.
        let snap: SnapshotMetadata
        let data: [UInt8]
        do {
            snap = try store.snapshotMetadata()
            data = try store.currentSnapshotData()
        } catch {
            throw .storage("\(error)")
        }
        if snap.index > 0 {
            do {
                state = try ClusterState(snapshot: data)
            } catch {
                throw .snapshot("snapshot at index \(snap.index): \(error)")
            }
        } else {
            state = ClusterState()
        }
        state.applierProtocolMax = options.protocolVersionMax
        let clusterVersion = max(1, state.minProtocolVersion)
        guard (options.protocolVersionMin...options.protocolVersionMax).contains(clusterVersion) else {
            let which = clusterVersion > options.protocolVersionMax ? "too old" : "too new"
            throw .config("the cluster version in this peer's data is \(clusterVersion), but this build runs protocol versions \(options.protocolVersionMin)...\(options.protocolVersionMax): it is \(which) for this cluster (docs/operations.md §Upgrades)")
        }
        snapshotIndex = snap.index
        lastSnapshotBytes = snap.index > 0 ? UInt64(data.count) : 0
        var raftConfig = options.raft
        raftConfig.applied = snap.index
        do {
            raft = try RaftNode(config: raftConfig, storage: store, seed: UInt64(truncatingIfNeeded: MonotonicTime.nanos()) ^ options.raft.id)
        } catch {
            throw .storage("\(error)")
        }
        softState = raft.softState
    }

    // MARK: - The loop

    func run() {
        let tickNanos = UInt64(options.tickMillis) * 1_000_000
        var nextTick = MonotonicTime.nanos() + tickNanos
        membershipChanged?(MembershipUpdate(conf: raft.conf, changes: [], state: state))
        while !stopping {
            let (messages, requests) = mailbox.take(waitingUntil: nextTick)
            let now = MonotonicTime.nanos()
            if haltReason == nil {
                for m in messages {
                    lastContact[m.from] = now
                    witness(m)
                    raft.step(m)
                }
            }
            var batch: [Proposal] = []
            for r in requests {
                switch r {
                case .propose(let bytes, let afterApply, let cont):
                    if batch.count < options.proposalBatchMax {
                        batch.append(Proposal(bytes: bytes, afterApply: afterApply, cont: cont))
                    } else {
                        cont.resume(returning: .failure(.notApplied(reason: "more than \(options.proposalBatchMax) proposals arrived at once")))
                    }
                case .read(let linearizable, let waiter):
                    startRead(linearizable: linearizable, waiter, now: now)
                case .status(let cont):
                    cont.resume(returning: .success(currentStatus(now: now)))
                case .transfer(let target, let cont):
                    cont.resume(returning: startTransfer(to: target))
                case .confChange(let change, let cont):
                    proposeConfChange(change, cont, now: now)
                case .unreachable(let peer):
                    guard haltReason == nil else { break }
                    raft.reportUnreachable(peer)
                    // Our leader's connection is gone: pre-vote now instead of after an election
                    // timeout. Safe: voters still hearing from a live leader refuse the pre-vote.
                    if raft.role == .follower && raft.leader == peer { raft.leaderConnectionLost() }
                case .snapshotEncoded(let encoded):
                    compact(encoded)
                case .stop:
                    stopping = true
                }
            }
            if !batch.isEmpty { proposeBatch(batch, now: now) }
            if now >= nextTick {
                if haltReason == nil { raft.tick() }
                expire(now: now)
                nextTick += tickNanos
                if nextTick <= now { nextTick = now + tickNanos }  // fell behind: no burst of ticks
            }
            turnPersistNanos = 0
            turnApplyNanos = 0
            turnAppliedEntries = 0
            let readyStart = MonotonicTime.nanos()
            handleReady()
            let compactionStart = MonotonicTime.nanos()
            continueCompaction()
            maybeSnapshot()
            publishNow()
            let end = MonotonicTime.nanos()
            if let slowTurn, end - now >= UInt64(options.slowTurnMillis) * 1_000_000 {
                slowTurn(SlowTurn(
                    totalMillis: Self.millis(end - now), stepMillis: Self.millis(readyStart - now),
                    persistMillis: Self.millis(turnPersistNanos), applyMillis: Self.millis(turnApplyNanos),
                    compactionMillis: Self.millis(end - compactionStart),
                    messages: messages.count, requests: requests.count, appliedEntries: turnAppliedEntries))
            }
        }
        failEverything()
        onExit?()
    }

    static func millis(_ nanos: UInt64) -> Double { Double(nanos) / 1_000_000 }

    func publishNow() {
        publish?(PeerNode.Published(leader: raft.leader, role: raft.role, term: raft.term, appliedIndex: raft.appliedIndex, haltReason: haltReason))
        let now = Leadership(role: raft.role, term: raft.term, leader: raft.leader)
        if now != lastLeadership {
            lastLeadership = now
            leadershipChanged?(now)
        }
    }

    // MARK: - Ready: persist, then send, then apply, then advance

    func handleReady() {
        while haltReason == nil && raft.hasReady {
            let rd = raft.ready()
            if let why = rd.haltReason {
                halt(why)
                return
            }
            // A leader's appends go out first: its fsync overlaps its followers' (thesis
            // §10.2.1). Acknowledgements are stepped only in a later turn, after this persist.
            let early = rd.sendableBeforePersist
            if early > 0 {
                assertSendableBeforePersist(rd)
                for m in rd.messages[..<early] { send(m) }
            }
            let persistStart = MonotonicTime.nanos()
            do {
                try store.persist(rd)
            } catch {
                halt("persisting the log failed: \(error)")
                return
            }
            turnPersistNanos += MonotonicTime.nanos() - persistStart
            assertPersisted(rd)
            for m in rd.messages[early...] { send(m) }
            if let snap = rd.snapshot {
                restoreState(from: snap)
                if haltReason != nil { return }
            }
            let applyStart = MonotonicTime.nanos()
            for entry in rd.committedEntries {
                apply(entry)
                if haltReason != nil { return }
            }
            turnApplyNanos += MonotonicTime.nanos() - applyStart
            turnAppliedEntries += rd.committedEntries.count
            if !rd.confChanges.isEmpty || rd.snapshot != nil {
                // A removed member may come back later as a new one, with an empty data dir.
                let members = raft.conf.voters.union(raft.conf.learners)
                witnessed = witnessed.filter { members.contains($0.key) }
                membershipChanged?(MembershipUpdate(conf: raft.conf, changes: rd.confChanges, state: state))
            }
            if let ss = rd.softState { softStateChanged(to: ss) }
            if rd.hardState != nil || rd.softState != nil { failProposalsOfOtherTerms() }
            for rs in rd.readStates {
                if var r = reads[rs.context] {
                    r.index = rs.index
                    reads[rs.context] = r
                }
            }
            raft.advance(rd)
            serveReads()
        }
    }

    /// What goes out before the persist depends only on what the store already shows: the
    /// message's term (with its vote) is durable, and the commit index it announces covers
    /// only stored entries.
    func assertSendableBeforePersist(_ rd: Ready) {
        let stored = try? store.initialState().0
        let storedLast = (try? store.lastIndex()) ?? 0
        for m in rd.messages[..<rd.sendableBeforePersist] {
            precondition((m.kind == .append || m.kind == .heartbeat) && stored?.term == m.term && m.commit <= storedLast,
                         "Ready contract: \(m.kind) to \(m.to) (term \(m.term), commit \(m.commit)) may not go out before persisting (stored term \(String(describing: stored?.term)), last index \(storedLast))")
        }
    }

    /// The Ready contract is asserted, not assumed: nothing else is sent before the store shows it.
    func assertPersisted(_ rd: Ready) {
        if let last = rd.entries.last {
            let storedLast = (try? store.lastIndex()) ?? 0
            let storedTerm = try? store.term(last.index)
            precondition(storedLast >= last.index && storedTerm == last.term,
                         "Ready contract: entry \(last.index) (term \(last.term)) not in the store after persist (last \(storedLast), term \(String(describing: storedTerm)))")
        }
        if let hs = rd.hardState {
            let stored = try? store.initialState().0
            precondition(stored == hs, "Ready contract: hard state \(hs) not in the store after persist (\(String(describing: stored)))")
        }
    }

    func apply(_ entry: Entry) {
        logBytesSinceSnapshot += UInt64(entry.data.count)
        var result: ApplyResult?
        if entry.kind == .confChange {
            result = .applied  // the core applied it; Ready.confChanges says how
        } else if entry.kind == .normal && !entry.data.isEmpty {
            let versionBefore = state.minProtocolVersion
            defer { if state.minProtocolVersion != versionBefore { versionChangeIndex = entry.index } }
            do {
                result = try state.apply(entry.data, at: entry.index)
            } catch {
                halt("entry \(entry.index) cannot be applied by this version: \(error)")
                return
            }
            if max(1, state.minProtocolVersion) < options.protocolVersionMin {
                halt("entry \(entry.index) lowers the cluster version to \(state.minProtocolVersion), but this build runs protocol versions from \(options.protocolVersionMin): it is too new for this cluster; run an older build on the same data")
                return
            }
        }
        guard let pending = proposals.removeValue(forKey: entry.index) else { return }
        if pending.term != entry.term {
            pending.cont.resume(returning: .failure(.notApplied(reason: "entry \(entry.index) was replaced by a leader of term \(entry.term)")))
        } else if let result {
            pending.afterApply?(state)
            pending.cont.resume(returning: .success(result))
        } else {
            pending.cont.resume(returning: .failure(.notApplied(reason: "entry \(entry.index) is not a command")))
        }
    }

    func restoreState(from metadata: SnapshotMetadata) {
        do {
            let data = try store.currentSnapshotData()
            state = try ClusterState(snapshot: data)
            state.applierProtocolMax = options.protocolVersionMax
            let version = max(1, state.minProtocolVersion)
            if !(options.protocolVersionMin...options.protocolVersionMax).contains(version) {
                let which = version > options.protocolVersionMax ? "too old" : "too new"
                halt("the snapshot at \(metadata.index) is of a cluster at version \(version), but this peer runs protocol versions \(options.protocolVersionMin)...\(options.protocolVersionMax): it is \(which) for this cluster; run a build of that version on the same data")
                return
            }
            snapshotIndex = metadata.index
            lastSnapshotBytes = UInt64(data.count)
            logBytesSinceSnapshot = 0
        } catch {
            halt("installing the snapshot at \(metadata.index) failed: \(error)")
            return
        }
        // Proposals at or below the snapshot can no longer learn their result here.
        for index in proposals.keys where index <= metadata.index {
            proposals.removeValue(forKey: index)?.cont.resume(returning: .failure(.outcomeUnknown(reason: "a snapshot replaced the log up to \(metadata.index)")))
        }
    }

    /// Entries this peer appended as leader of a term it no longer leads may or may not commit
    /// under the next leader: their proposers learn "outcome unknown" now. Entries known
    /// committed will apply here, so those keep waiting (and learn their real result).
    func failProposalsOfOtherTerms() {
        let leading = raft.role == .leader
        let commit = raft.commitIndex
        for (index, p) in proposals where index > commit && (!leading || p.term != raft.term) {
            proposals.removeValue(forKey: index)
            p.cont.resume(returning: .failure(.outcomeUnknown(reason: "leadership of term \(p.term) lost before entry \(index) committed")))
        }
    }

    func softStateChanged(to ss: SoftState) {
        let was = softState
        softState = ss
        if was.leader != ss.leader {
            // The core dropped every unconfirmed read when the leader changed.
            for (ctx, r) in reads where r.index == nil {
                reads.removeValue(forKey: ctx)
                r.waiter.fail(.leadershipChanged)
            }
        }
    }

    // MARK: - Proposals and reads

    struct Proposal {
        var bytes: [UInt8]
        var afterApply: AfterApply?
        var cont: CheckedContinuation<Result<ApplyResult, ProposeError>, Never>
    }

    func proposeBatch(_ batch: [Proposal], now: UInt64) {
        if let why = haltReason {
            for p in batch { p.cont.resume(returning: .failure(.halted(reason: why))) }
            return
        }
        do {
            let range = try raft.propose(batch: batch.map(\.bytes))
            let deadline = now + UInt64(options.proposalTimeoutMillis) * 1_000_000
            var index = range.lowerBound
            for p in batch {
                proposals[index] = PendingProposal(term: raft.term, deadline: deadline, cont: p.cont, afterApply: p.afterApply)
                index += 1
            }
        } catch {
            let e = ProposeError(error)
            for p in batch { p.cont.resume(returning: .failure(e)) }
        }
    }

    func proposeConfChange(_ change: ConfChange, _ cont: CheckedContinuation<Result<ApplyResult, ProposeError>, Never>, now: UInt64) {
        if let why = haltReason { return cont.resume(returning: .failure(.halted(reason: why))) }
        do {
            let ticket = try raft.proposeConfChange(change)
            let deadline = now + UInt64(options.proposalTimeoutMillis) * 1_000_000
            proposals[ticket.index] = PendingProposal(term: ticket.term, deadline: deadline, cont: cont, afterApply: nil)
        } catch {
            cont.resume(returning: .failure(ProposeError(error)))
        }
    }

    func startRead(linearizable: Bool, _ waiter: ReadWaiter, now: UInt64) {
        if let why = haltReason {
            waiter.fail(.halted(reason: why))
            return
        }
        guard linearizable else {
            waiter.serve(state)
            return
        }
        let ctx = nextReadContext
        nextReadContext += 1
        do {
            try raft.readIndex(context: ctx)
        } catch {
            switch error {
            case .noLeader: waiter.fail(.noLeader)
            case .tooManyPending: waiter.fail(.overloaded)
            case .halted(let why): waiter.fail(.halted(reason: why))
            case .invalidContext: preconditionFailure("read context 0")
            }
            return
        }
        reads[ctx] = PendingRead(waiter: waiter, deadline: now + UInt64(options.readTimeoutMillis) * 1_000_000, index: nil)
    }

    func serveReads() {
        let applied = raft.appliedIndex
        for (ctx, r) in reads {
            if let index = r.index, index <= applied {
                reads.removeValue(forKey: ctx)
                r.waiter.serve(state)
            }
        }
    }

    func startTransfer(to target: NodeID) -> Result<Void, ProposeError> {
        if let why = haltReason { return .failure(.halted(reason: why)) }
        do {
            try raft.transferLeadership(to: target)
            return .success(())
        } catch {
            switch error {
            case .notLeader(let leader): return .failure(.notLeader(leader: leader))
            case .notAVoter(let id): return .failure(.notApplied(reason: "peer \(id) is not a voter"))
            case .halted(let why): return .failure(.halted(reason: why))
            }
        }
    }

    func expire(now: UInt64) {
        for (index, p) in proposals where p.deadline <= now {
            proposals.removeValue(forKey: index)
            p.cont.resume(returning: .failure(.outcomeUnknown(reason: "entry \(index) did not apply within \(options.proposalTimeoutMillis) ms")))
        }
        for (ctx, r) in reads where r.deadline <= now {
            reads.removeValue(forKey: ctx)
            r.waiter.fail(.timedOut)
        }
    }

    // MARK: - Snapshots

    /// When `SnapshotPolicy` says so (every `snapshotEveryEntries` applied entries, once they
    /// also outweigh the last snapshot), encodes the state on the snapshot thread
    /// and then writes it to the store a piece per loop turn (`continueCompaction`). The loop
    /// keeps persisting, sending and applying meanwhile: it hands over a copy of the state,
    /// which is a value type, so the copy costs nothing until the loop's next apply copies each
    /// collection it touches (once, far cheaper than encoding). One snapshot at a time, from
    /// encoding to the end of its write: memory is one copy and one encoding.
    func maybeSnapshot() {
        guard haltReason == nil, snapshotEncoding == nil, compaction == nil else { return }
        let applied = raft.appliedIndex
        let policy = SnapshotPolicy(everyEntries: options.snapshotEveryEntries, logBytesRatio: options.snapshotLogBytesRatio)
        // A cluster version change is snapshotted at once: a peer of the previous release,
        // restarted on this data after a downgrade, starts from the snapshot and never replays
        // the entries of the newer version.
        let versionChanged = versionChangeIndex > snapshotIndex
        guard applied > snapshotIndex,
              versionChanged || policy.isDue(entries: applied - snapshotIndex, logBytes: logBytesSinceSnapshot, lastSnapshotBytes: lastSnapshotBytes)
        else { return }
        logBytesSinceSnapshot = 0
        precondition(state.appliedIndex <= applied, "state applied \(state.appliedIndex) beyond the core's \(applied)")
        snapshotEncoding = applied
        let copy = state
        let conf = raft.conf
        let mailbox = self.mailbox
        spawnThread(name: "peer-snapshot", background: true) {
            let encoded = EncodedSnapshot(index: applied, conf: conf, data: copy.encodeSnapshot())
            // Refused only when the node stopped: the copy is dropped with the thread.
            _ = mailbox.post(request: .snapshotEncoded(encoded), force: true)
        }
    }

    /// The snapshot thread finished: write it, unless a snapshot from the leader was installed
    /// meanwhile at or past its index.
    func compact(_ encoded: EncodedSnapshot) {
        snapshotEncoding = nil
        guard haltReason == nil, encoded.index > snapshotIndex else { return }
        let term: Term
        do {
            term = try store.term(encoded.index)
        } catch {
            halt("compacting the log at \(encoded.index): its term is unreadable: \(error)")
            return
        }
        lastSnapshotBytes = UInt64(encoded.data.count)
        compaction = Compaction(metadata: SnapshotMetadata(index: encoded.index, term: term, conf: encoded.conf), data: encoded.data)
        continueCompaction()
    }

    /// Writes the next piece (at most `compactionPieceBytes`) of the pending snapshot, each in
    /// its own short store transaction, and after the last one makes it current and drops the
    /// log it covers: no turn of the loop writes the whole state at once.
    func continueCompaction() {
        guard haltReason == nil else { return }
        guard var c = compaction else {
            do {
                try store.reclaimSpace()
            } catch {
                halt("freeing a replaced snapshot's space failed: \(error)")
            }
            return
        }
        guard c.metadata.index > snapshotIndex else {
            compaction = nil  // a newer snapshot was installed; the next compaction starts over
            return
        }
        let end = min(c.written + options.compactionPieceBytes, c.data.count)
        do {
            try store.stageCompaction(SnapshotChunk(
                metadata: c.metadata, offset: UInt64(c.written), totalBytes: UInt64(c.data.count),
                data: Array(c.data[c.written..<end]), done: end == c.data.count))
            c.written = end
            if end < c.data.count {
                compaction = c
                return
            }
            compaction = nil
            if try store.finishCompaction(c.metadata) { snapshotIndex = c.metadata.index }
        } catch {
            halt("compacting the log at \(c.metadata.index) failed: \(error)")
        }
    }

    /// Records what `m` proves of its sender's durable state. A node persists its term (and
    /// vote) before it sends a message of that term, and the entries it accepts before it
    /// answers an append (Ready: persist, then send); so the sender's data dir holds at least
    /// this term, and, while still in the answer's term, at least the acknowledged index.
    /// Pre-votes carry a term nobody persisted (thesis §9.6) and prove nothing; members outside
    /// the configuration are not recorded.
    func witness(_ m: Message) {
        guard m.term > 0, m.kind != .preVote, m.kind != .preVoteResponse,
              raft.conf.voters.contains(m.from) || raft.conf.learners.contains(m.from) else { return }
        var w = witnessed[m.from] ?? Witnessed()
        w.term = max(w.term, m.term)
        if m.kind == .appendResponse && !m.reject && (m.term, m.index) > (w.ackTerm, w.ackIndex) {
            w.ackTerm = m.term
            w.ackIndex = m.index
        }
        witnessed[m.from] = w
    }

    // MARK: - Status, halt, stop

    func currentStatus(now: UInt64) -> NodeStatus {
        var status = NodeStatus(
            id: raft.id, role: raft.role, term: raft.term, leader: raft.leader,
            commitIndex: raft.commitIndex, appliedIndex: raft.appliedIndex,
            firstIndex: raft.firstIndex, lastIndex: raft.lastIndex, snapshotIndex: snapshotIndex,
            voters: raft.conf.voters.sorted(), learners: raft.conf.learners.sorted(),
            stateDigest: state.stateDigestHex, progress: raft.progressView,
            lastContactMillis: lastContact.mapValues { Int((now - min($0, now)) / 1_000_000) },
            haltReason: haltReason, droppedMessages: mailbox.droppedMessages,
            snapshotsInstalled: raft.counters.snapshotsInstalled,
            tenantCount: state.tenantCount, instanceCount: state.allInstances.count
        )
        status.versionChangeIndex = versionChangeIndex
        status.witnessed = witnessed
        return status
    }

    func halt(_ why: String) {
        guard haltReason == nil else { return }
        haltReason = why
        for (_, p) in proposals { p.cont.resume(returning: .failure(.halted(reason: why))) }
        proposals = [:]
        for (_, r) in reads { r.waiter.fail(.halted(reason: why)) }
        reads = [:]
    }

    func failEverything() {
        for (_, p) in proposals { p.cont.resume(returning: .failure(.stopped)) }
        proposals = [:]
        for (_, r) in reads { r.waiter.fail(.stopped) }
        reads = [:]
        // Requests that raced with stop; later posts are refused by the closed mailbox.
        let (_, late) = mailbox.close()
        for r in late {
            switch r {
            case .propose(_, _, let c): c.resume(returning: .failure(.stopped))
            case .read(_, let w): w.fail(.stopped)
            case .status(let c): c.resume(returning: .success(currentStatus(now: MonotonicTime.nanos())))
            case .transfer(_, let c): c.resume(returning: .failure(.stopped))
            case .confChange(_, let c): c.resume(returning: .failure(.stopped))
            case .unreachable, .snapshotEncoded, .stop: break
            }
        }
    }
}
