import ClusterModel
import PeerNode
import Raft

/// Messages in flight: delivered at their time, in a random order among those due.
struct Network {
    private var inFlight: [(at: Int64, m: Message)] = []
    /// Nodes cut off from every other node.
    private(set) var isolated: Set<NodeID> = []

    mutating func send(_ m: Message, at: Int64) { inFlight.append((at, m)) }

    mutating func takeDue(_ now: Int64) -> [Message] {
        var due: [Message] = []
        inFlight.removeAll { if $0.at <= now { due.append($0.m); return true }; return false }
        return due
    }

    func cutOff(_ a: NodeID, _ b: NodeID) -> Bool { a != b && (isolated.contains(a) || isolated.contains(b)) }
    mutating func isolate(_ n: NodeID) { isolated.insert(n) }
    mutating func heal(_ n: NodeID) { isolated.remove(n) }
    mutating func healAll() { isolated.removeAll() }
}

/// The simulated clock's sleepers, by id (ids give a fixed order among timers due together).
struct Timers {
    private var byID: [UInt64: (at: Int64, process: SimProcess, resume: () -> Void)] = [:]
    private var next: UInt64 = 1

    mutating func allocate() -> UInt64 {
        defer { next += 1 }
        return next
    }

    mutating func insert(_ id: UInt64, at: Int64, process: SimProcess, resume: @escaping () -> Void) { byID[id] = (at, process, resume) }

    mutating func remove(_ id: UInt64) -> (() -> Void)? { byID.removeValue(forKey: id)?.resume }

    /// Removes the timers that match, in id order, and returns their resumptions.
    mutating func take(where matches: (_ at: Int64, _ process: SimProcess) -> Bool) -> [() -> Void] {
        let ids = byID.filter { matches($0.value.at, $0.value.process) }.keys.sorted()
        return ids.map { byID.removeValue(forKey: $0)!.resume }
    }
}

extension ClusterWorld {
    // MARK: - Processes

    func start(_ id: NodeID) {
        let n = nodes[id]!
        n.incarnations += 1
        n.startAtMs = 0
        n.upSinceMs = nowMs
        n.state = ClusterState()
        n.servesFromMs = [:]
        n.routes = [:]
        n.routerIndex = 0
        n.routerDueMs = 0
        n.dataPlaneIndex = 0
        n.leader = noNode
        do {
            n.raft = try RaftNode(config: RaftConfig(id: id), storage: n.disk, seed: seed ^ (id << 20) ^ UInt64(n.incarnations))
        } catch {
            preconditionFailure("memory storage cannot fail: \(error)")
        }
        let process = SimProcess(node: id)
        n.process = process
        startLoops(process)
        note("start \(id) (incarnation \(n.incarnations))")
    }

    /// The process ends: its loops see errors from now on and wind down.
    func stop(_ n: WorldNode) {
        guard let p = n.process else { return }
        p.alive = false
        n.process = nil
        n.raft = nil
        p.task?.cancel()
        let proposals = n.proposals, reads = n.reads
        n.proposals = [:]
        n.reads = [:]
        for (_, pending) in proposals.sorted(by: { $0.key < $1.key }) { pending.resume(.failure(.stopped)) }
        for (_, r) in reads.sorted(by: { $0.key < $1.key }) { r.fail(.stopped) }
        for resume in timers.take(where: { $1 === p }) { resume() }
    }

    func crash(_ id: NodeID, why: String) {
        let n = nodes[id]!
        guard n.isUp else { return }
        stop(n)
        counters.crashes += 1
        // Its supervisor restarts it (at once while the world settles); a destroyed one stays down.
        if !n.destroyed { n.startAtMs = nowMs + (faults ? random(300...5_000) : 100) }
        note("crash \(id): \(why)")
    }

    // MARK: - The Ready loop (as PeerNode's NodeLoop)

    func handleReady(_ n: WorldNode) {
        var guardRounds = 0
        while n.hasReady, guardRounds < 64 {
            guardRounds += 1
            let rd = n.raft!.ready()
            if let why = rd.haltReason { return fail("raft-halted", "node \(n.id): \(why)") }
            n.disk.persist(rd)
            for m in rd.messages { send(m) }
            if rd.snapshot != nil { return fail("unexpected-snapshot", "node \(n.id) got a snapshot, but no log is compacted here") }
            for e in rd.committedEntries {
                apply(n, e)
                if violation != nil { return }
            }
            if let ss = rd.softState { softStateChanged(n, ss) }
            if rd.hardState != nil || rd.softState != nil { failProposalsOfOtherTerms(n) }
            for rs in rd.readStates { n.reads[rs.context]?.index = rs.index }
            n.raft!.advance(rd)
            serveReads(n)
        }
    }

    func apply(_ n: WorldNode, _ e: Entry) {
        var result: ApplyResult?
        if e.kind == .confChange {
            result = .applied
        } else if e.kind == .normal && !e.data.isEmpty {
            do {
                result = try n.state.apply(e.data, at: e.index)
            } catch {
                return fail("apply-halted", "node \(n.id) cannot apply entry \(e.index): \(error)")
            }
        }
        observeCommitted(n, e, result)
        guard let pending = n.proposals.removeValue(forKey: e.index) else { return }
        if pending.term != e.term {
            pending.resume(.failure(.notApplied(reason: "entry \(e.index) was replaced by a leader of term \(e.term)")))
        } else if let result {
            pending.resume(.success(result))
        } else {
            pending.resume(.failure(.notApplied(reason: "entry \(e.index) is not a command")))
        }
    }

    func softStateChanged(_ n: WorldNode, _ ss: SoftState) {
        if ss.leader != n.leader {
            n.leader = ss.leader
            for (ctx, r) in n.reads.sorted(by: { $0.key < $1.key }) where r.index == nil {
                n.reads.removeValue(forKey: ctx)
                r.fail(.leadershipChanged)
            }
        }
        if ss.role == .leader {
            counters.leaderChanges += 1
            note("leader \(n.id) term \(n.raft!.term)")
        }
    }

    func failProposalsOfOtherTerms(_ n: WorldNode) {
        let leading = n.raft!.role == .leader, commit = n.raft!.commitIndex, term = n.raft!.term
        for (index, p) in n.proposals.sorted(by: { $0.key < $1.key }) where index > commit && (!leading || p.term != term) {
            n.proposals.removeValue(forKey: index)
            p.resume(.failure(.outcomeUnknown(reason: "leadership of term \(p.term) lost before entry \(index) committed")))
        }
    }

    func serveReads(_ n: WorldNode) {
        guard let applied = n.raft?.appliedIndex else { return }
        for (ctx, r) in n.reads.sorted(by: { $0.key < $1.key }) {
            if let index = r.index, index <= applied {
                n.reads.removeValue(forKey: ctx)
                r.serve(n.state)
            }
        }
    }

    func expire(_ n: WorldNode) {
        for (index, p) in n.proposals.sorted(by: { $0.key < $1.key }) where p.deadlineMs <= nowMs {
            n.proposals.removeValue(forKey: index)
            p.resume(.failure(.outcomeUnknown(reason: "entry \(index) did not apply within 10 s")))
        }
        for (ctx, r) in n.reads.sorted(by: { $0.key < $1.key }) where r.deadlineMs <= nowMs {
            n.reads.removeValue(forKey: ctx)
            r.fail(.timedOut)
        }
    }

    // MARK: - The network

    func send(_ m: Message) {
        if faults && chance(perMille: 10) { return }
        if network.cutOff(m.from, m.to) { return }
        let delay = faults && chance(perMille: 20) ? random(100...600) : random(1...15)
        network.send(m, at: nowMs + delay)
    }

    func deliver() {
        var due = network.takeDue(nowMs)
        guard !due.isEmpty else { return }
        // A random order among the messages due (a seeded shuffle).
        for i in stride(from: due.count - 1, to: 0, by: -1) { due.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        for m in due {
            guard let n = nodes[m.to], n.isUp, !network.cutOff(m.from, m.to) else { continue }
            _ = n.raft!.step(m)
        }
    }

    // MARK: - The node port's requests

    func hint(_ p: SimProcess) -> (leader: NodeID, role: Role, term: Term) {
        guard p.alive, let n = nodes[p.node], n.isUp else { return (noNode, .follower, 0) }
        return n.withRaft { ($0.leader, $0.role, $0.term) }
    }

    /// A proposal (a command, or with `change` a membership change) at the process's node; its
    /// result comes when its entry applies there, or an error when it cannot.
    func propose(_ p: SimProcess, _ bytes: [UInt8], change: ConfChange? = nil, _ resume: @escaping (Result<ApplyResult, ProposeError>) -> Void) {
        guard p.alive, let n = nodes[p.node], n.isUp else { return resume(.failure(.stopped)) }
        do throws(ProposalError) {
            let ticket = if let change { try n.raft!.proposeConfChange(change) } else { try n.raft!.propose(bytes) }
            n.proposals[ticket.index] = PendingProposal(term: ticket.term, deadlineMs: nowMs + 10_000, resume: resume)
        } catch {
            resume(.failure(ProposeError(error)))
        }
    }

    func read(_ p: SimProcess, linearizable: Bool, serve: @escaping (ClusterState) -> Void, fail: @escaping (ReadError) -> Void) {
        guard p.alive, let n = nodes[p.node], n.isUp else { return fail(.stopped) }
        guard linearizable else { return serve(n.state) }
        let ctx = n.nextRead
        n.nextRead += 1
        do {
            try n.raft!.readIndex(context: ctx)
        } catch {
            switch error {
            case .noLeader: return fail(.noLeader)
            case .tooManyPending: return fail(.overloaded)
            case .halted(let why): return fail(.halted(reason: why))
            case .invalidContext: preconditionFailure("read context 0")
            }
        }
        n.reads[ctx] = PendingRead(index: nil, deadlineMs: nowMs + 5_000, serve: serve, fail: fail)
    }

    func status(_ p: SimProcess) -> Result<NodeStatus, ReadError> {
        guard p.alive, let n = nodes[p.node], n.isUp else { return .failure(.stopped) }
        return .success(NodeStatus(
            id: n.id, role: n.raft!.role, term: n.raft!.term, leader: n.raft!.leader, commitIndex: n.raft!.commitIndex,
            appliedIndex: n.raft!.appliedIndex, firstIndex: n.raft!.firstIndex, lastIndex: n.raft!.lastIndex, snapshotIndex: 0,
            voters: n.raft!.conf.voters.sorted(), learners: n.raft!.conf.learners.sorted(), stateDigest: "", progress: n.raft!.progressView, lastContactMillis: [:], haltReason: nil,
            droppedMessages: 0, snapshotsInstalled: 0, tenantCount: n.state.tenantCount, instanceCount: n.state.allInstances.count))
    }

    /// Sleeps on the simulated clock; a dead process's sleeps return at once.
    func sleep(_ p: SimProcess, millis: Int) async {
        let id = timers.allocate()
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                if !p.alive || Task.isCancelled { return c.resume() }
                timers.insert(id, at: nowMs + Int64(max(1, millis)), process: p, resume: { c.resume() })
            }
        } onCancel: {
            self.timers.remove(id)?()
        }
    }
}
