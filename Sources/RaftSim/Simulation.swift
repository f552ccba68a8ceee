import Raft

/// A whole Raft cluster in one process: N `RaftNode`s over a simulated network and disk, every
/// choice drawn from one seeded generator, so a seed replays byte for byte.
///
/// Phase 1 (safety) injects faults while clients propose; after every event the `Checker`
/// verifies the Raft safety properties. Phase 2 (liveness) heals everything and requires a
/// leader and every acknowledged proposal applied everywhere within a bounded number of ticks.
public final class Simulation {
    let options: SimOptions
    let seed: UInt64
    var rng: SplitMix64
    var nodes: [SimNode] = []
    var network: SimNetwork
    var checker: Checker
    var clients = ClientLedger()
    var counters = SimCounters()
    var trace: [TraceEvent] = []
    var traceStart = 0
    var now: UInt64 = 0
    var violation: Violation?
    var lossy = true
    /// Reads in flight: request id -> the highest acknowledged write index when the read began.
    /// A read must return an index at least that high (linearizability).
    var readFloors: [UInt64: LogIndex] = [:]
    var nextReadID: UInt64 = 1
    var pendingTransfer: NodeID = noNode
    /// The configuration of the newest membership change applied anywhere (or the initial one):
    /// what crashes must leave a quorum of, and what the liveness phase must bring up to date.
    var clusterConf: ConfState
    var clusterConfIndex: LogIndex = 0
    /// Spare node ids that may join (each at most once: a removed id is never reused, since a
    /// wiped node with an old id could vote twice in a term).
    var spares: [NodeID] = []
    /// Each node's configuration when the invariants were last checked: a commit decided
    /// before a configuration change applied in the same event used the earlier one.
    var confAtLastCheck: [ConfState?] = []
    /// Until this real tick, a reordering burst: every message is delayed up to
    /// `burstDelayTicksMax` ticks.
    var burstUntil: UInt64 = 0

    public init(seed: UInt64, options: SimOptions) {
        precondition(Self.mix.reduce(0) { $0 + $1.perMille } == 1000, "the event mix must sum to 1000 per mille")
        self.seed = seed
        self.options = options
        rng = SplitMix64(seed: seed)
        network = SimNetwork(delayTicksMax: max(options.deliveryDelayTicksMax, options.burstDelayTicksMax,
                                                3 * options.electionTimeoutTicks))
        let founders = (1...options.nodes).map { NodeID($0) }
        let ids = (1...(options.nodes + options.spareNodes)).map { NodeID($0) }
        let conf = ConfState(voters: Set(founders))
        checker = Checker(nodeCount: ids.count, founders: conf)
        clusterConf = conf
        spares = Array(ids.dropFirst(options.nodes))
        // Vary the flow-control limits per seed so batching and window pauses are exercised.
        let appendBytesMax = [128, 512, 1 << 16][Int(rng.next() % 3)]
        let inflightMax = [1, 4, 64][Int(rng.next() % 3)]
        // Snapshots (16-215 bytes here) go in one to fourteen chunks.
        let chunkBytes = [16, 64, 1024][Int(rng.next() % 3)]
        let chunksInflightMax = [1, 2, 4][Int(rng.next() % 3)]
        // Small apply batches make a node's application trail its commit index across Readies.
        let applyBytesMax = [64, 512, 64 << 20][Int(rng.next() % 3)]
        for id in ids {
            var config = RaftConfig(id: id)
            config.electionTimeoutTicks = options.electionTimeoutTicks
            config.heartbeatTimeoutTicks = 2
            config.appendBytesMax = appendBytesMax
            config.inflightMessagesMax = inflightMax
            config.uncommittedBytesMax = 16 << 10
            config.snapshotChunkBytes = chunkBytes
            config.snapshotChunksInflightMax = chunksInflightMax
            config.learnerCatchUpEntriesMax = 32
            config.applyBytesMaxPerReady = applyBytesMax
            config.plantedBugs = options.plantedBugs
            // A spare starts with an empty store that knows no configuration: it learns it from
            // the leader (the first change it applies, or a snapshot).
            let disk = MemoryStorage(conf: founders.contains(id) ? conf : ConfState(voters: []))
            var node = SimNode(id: id, config: config, disk: disk)
            let drift = options.clockDriftPerMilleMax
            node.clockRate = 1000 - drift + Int(rng.next() % UInt64(2 * drift + 1))
            nodes.append(node)
        }
        confAtLastCheck = Array(repeating: nil, count: nodes.count)
        for i in founders.indices { start(i) }
    }

    /// Runs both phases; stops at the first violation.
    public func run() -> SimResult {
        while counters.events < options.steps && violation == nil {
            step()
        }
        if violation == nil { livenessPhase() }
        for n in nodes {
            if let r = n.raft { counters.malformed += r.counters.malformedMessages }
        }
        counters.commits = checker.committedTerms.count
        counters.acked = clients.ackedCount
        counters.confChanges = checker.confChangesApplied
        return SimResult(seed: seed, violation: violation, trace: violation == nil ? [] : orderedTrace(), counters: counters)
    }

    // MARK: - Events

    /// The event mix, in per mille of events (docs/simulator.md, "The fault model"). The
    /// weights sum to 1000; an event's share is its weight, in this order of the roll.
    static let mix: [(perMille: Int, event: @Sendable (Simulation) -> Void)] = [
        (510, { $0.deliverSome() }), (220, { $0.tick() }), (15, { $0.compact() }), (110, { $0.propose() }),
        (25, { $0.read() }), (5, { $0.transfer() }), (8, { $0.crashAny() }), (7, { $0.crashLeader() }),
        (10, { $0.crashDuringNextReady() }), (35, { $0.restartOne() }), (12, { $0.partition() }), (18, { $0.heal() }),
        (2, { $0.powerLoss() }), (8, { $0.changeMembership() }), (6, { $0.pause() }), (3, { $0.burst() }),
        (6, { $0.slowDown() }),
    ]

    func step() {
        counters.events += 1
        var roll = Int(rng.next() % 1000)
        for (perMille, event) in Self.mix {
            if roll < perMille {
                event(self)
                break
            }
            roll -= perMille
        }
        processReadies()
        if violation == nil { checkAfterEvent() }
    }

    /// One tick of real time. Each live, running node's clock advances at its own rate: a fast
    /// clock may tick twice, a slow one not at all. Paused nodes whose time came resume first.
    func tick() {
        now += 1
        counters.ticks += 1
        record(.tick)
        if runningLeader != nil { counters.leaderTicks += 1 }
        counters.downVoterTicks += clusterConf.voters.count { !nodes[Int($0 - 1)].isUp || nodes[Int($0 - 1)].isPaused }
        for i in nodes.indices where !nodes[i].isUp && nodes[i].restartAt != 0 && nodes[i].restartAt <= now {
            start(i)
        }
        for i in nodes.indices where nodes[i].isPaused && nodes[i].pausedUntil <= now {
            resume(i)
        }
        for i in nodes.indices where nodes[i].isUp && !nodes[i].isPaused {
            nodes[i].clockCarry += nodes[i].clockRate
            while nodes[i].clockCarry >= 1000 {
                nodes[i].clockCarry -= 1000
                nodes[i].raft!.tick()
            }
        }
    }

    /// Nodes a client can reach, an operator can act on: up and not paused.
    var running: [Int] { nodes.indices.filter { nodes[$0].isUp && !nodes[$0].isPaused } }

    /// The running node that believes it leads, if any.
    var runningLeader: Int? { nodes.indices.first { nodes[$0].isLeader && !nodes[$0].isPaused } }

    /// Delivers due messages: one per two followers a leader has, so a five-node cluster (twice
    /// the messages per round) gets through a round in as many events as a three-node one.
    /// Each delivery is handled and checked before the next.
    func deliverSome() {
        let count = max(1, (options.nodes - 1) / 2)
        for k in 0..<count {
            guard let m = network.takeDue(now: now, rng: &rng) else {
                if k == 0 { tick() }
                return
            }
            deliver(m)
            if k + 1 < count {
                processReadies()
                if violation != nil { return }
                checkAfterEvent()
                if violation != nil { return }
            }
        }
    }

    func deliver(_ m: Message) {
        let i = Int(m.to - 1)
        guard nodes[i].isUp else {
            record(.lost(m))
            return
        }
        counters.delivered += 1
        checker.delivered(m)
        let before = StepObservation(&nodes[i].raft!)
        if m.kind == .readIndex, nodes[i].raft!.role == .leader, nodes[i].raft!.term == m.term {
            checker.readArrived(context: m.context, at: m.to, term: m.term)
        }
        let result = nodes[i].raft!.step(m)
        record(.deliver(m, result))
        if let v = checker.stepped(m, node: &nodes[i].raft!, before: before) { fail(v) }
    }

    func propose() {
        let alive = running
        guard !alive.isEmpty else { return }
        // Mostly to a node that believes it leads; sometimes to anyone (exercises refusals).
        let leaders = alive.filter { nodes[$0].raft!.role == .leader }
        let pool = (!leaders.isEmpty && rng.next() % 10 != 0) ? leaders : alive
        let i = pool[Int(rng.next() % UInt64(pool.count))]
        let count = 1 + Int(rng.next() % 4)
        var batch: [[UInt8]] = []
        for _ in 0..<count {
            batch.append(clients.newPayload(paddingBytes: Int(rng.next() % 40)))
        }
        counters.proposals += count
        let queued = nodes[i].raft!.queuedMessages.count
        defer { checker.observeRounds(&nodes[i].raft!, since: queued) }
        do {
            let range = try nodes[i].raft!.propose(batch: batch)
            let term = nodes[i].raft!.term
            for (k, payload) in batch.enumerated() {
                clients.submitted(payload, node: nodes[i].id, index: range.lowerBound + LogIndex(k), term: term)
            }
            note("propose \(count) at \(nodes[i].id) -> \(range.lowerBound)...\(range.upperBound) t\(term)")
        } catch {
            counters.proposalsRefused += count
            note("propose \(count) at \(nodes[i].id) refused: \(error)")
        }
    }

    func read() {
        let alive = running
        guard !alive.isEmpty else { return }
        let i = alive[Int(rng.next() % UInt64(alive.count))]
        let id = nextReadID
        nextReadID += 1
        do {
            let raft = nodes[i].raft!
            let queued = raft.queuedMessages.count
            if raft.role == .leader { checker.readArrived(context: id, at: raft.id, term: raft.term) }
            try nodes[i].raft!.readIndex(context: id)
            checker.observeRounds(&nodes[i].raft!, since: queued)
            readFloors[id] = clients.maxAckedIndex
            note("read \(id) at \(nodes[i].id) (floor \(clients.maxAckedIndex))")
        } catch {
            note("read \(id) at \(nodes[i].id) refused: \(error)")
        }
    }

    func transfer() {
        guard let i = runningLeader else { return }
        let others = nodes[i].raft!.conf.all.sorted().filter { $0 != nodes[i].id }
        guard !others.isEmpty else { return }
        let target = others[Int(rng.next() % UInt64(others.count))]
        do {
            try nodes[i].raft!.transferLeadership(to: target)
            pendingTransfer = target
            note("transfer leadership \(nodes[i].id) -> \(target)")
        } catch {
            note("transfer \(nodes[i].id) -> \(target) refused: \(error)")
        }
    }

    /// A random membership change at the leader: add a spare as a learner, promote a learner,
    /// remove a voter (the leader too) or a learner, keeping 1 to 5 voters. Refusals (a change
    /// pending, a learner not caught up, no commit in the term yet) are part of the test.
    func changeMembership() {
        guard let l = runningLeader else { return }
        let conf = nodes[l].raft!.conf
        // Pick a kind of change first (weighted so that voters come and go at similar rates),
        // then a node for it.
        var kinds: [(weight: UInt64, pick: () -> ConfChange)] = []
        let learners = conf.learners.sorted(), voters = conf.voters.sorted()
        if conf.voters.count < 5 && !learners.isEmpty {
            kinds.append((8, { .promote(learners[Int(self.rng.next() % UInt64(learners.count))]) }))
        }
        if conf.learners.count < 2, let spare = spares.first { kinds.append((3, { .addLearner(spare) })) }
        if conf.voters.count > 1 {
            kinds.append((conf.voters.count > 2 ? 3 : 1, { .removeNode(voters[Int(self.rng.next() % UInt64(voters.count))]) }))
        }
        if !learners.isEmpty { kinds.append((1, { .removeNode(learners[Int(self.rng.next() % UInt64(learners.count))]) })) }
        guard !kinds.isEmpty else { return }
        var roll = rng.next() % kinds.reduce(0) { $0 + $1.weight }
        var k = 0
        while roll >= kinds[k].weight {
            roll -= kinds[k].weight
            k += 1
        }
        let change = kinds[k].pick()
        let queued = nodes[l].raft!.queuedMessages.count
        defer { checker.observeRounds(&nodes[l].raft!, since: queued) }
        do {
            let ticket = try nodes[l].raft!.proposeConfChange(change)
            note("conf change \(change) at \(nodes[l].id) -> \(ticket.index) t\(ticket.term)")
            if case .addLearner(let n) = change {
                spares.removeFirst()
                start(Int(n - 1))  // the new node comes up with its empty store
            }
        } catch {
            note("conf change \(change) at \(nodes[l].id) refused: \(error)")
        }
    }

    /// The application of a random live node snapshots its state and compacts the log up to
    /// what it applied: followers that lag behind it then need a snapshot from it.
    func compact() {
        let alive = running
        guard !alive.isEmpty else { return }
        let i = alive[Int(rng.next() % UInt64(alive.count))]
        let app = nodes[i].app
        guard app.appliedIndex > nodes[i].disk.latestSnapshot.metadata.index else { return }
        nodes[i].disk.createSnapshot(at: app.appliedIndex, conf: nodes[i].raft!.conf, data: app.snapshotData)
        let snap = nodes[i].disk.latestSnapshot
        note("compact \(nodes[i].id) up to \(snap.metadata.index)/t\(snap.metadata.term)")
        if let v = checker.checkSnapshot(snap.metadata, data: snap.data, node: nodes[i].id, what: "makes") { fail(v) }
    }

    // MARK: - Ready handling (the simulated driver)

    func processReadies() {
        var progress = true
        var rounds = 0
        // A slow driver handles one Ready of its node per event.
        var handledSlow: Set<Int> = []
        while progress && violation == nil {
            progress = false
            rounds += 1
            precondition(rounds < 10_000, "ready loop does not converge")
            for i in nodes.indices where nodes[i].isUp && !nodes[i].isPaused && nodes[i].hasReady {
                let slow = lossy && nodes[i].slowUntil > now
                if slow && handledSlow.contains(i) { continue }
                if slow { handledSlow.insert(i) }
                handleReady(i)
                progress = true
                if violation != nil { return }
            }
        }
    }

    func handleReady(_ i: Int) {
        // Mutate the node in place: copying a RaftNode out and back would copy its buffers.
        let rd = nodes[i].raft!.ready()
        let bugSendFirst = options.plantedBugs.contains(.sendBeforePersist)
        if let ss = rd.softState { observeSoftState(i, ss, term: nodes[i].raft!.term) }
        if violation != nil { return }
        let crashAt = lossy ? nodes[i].crashAtNextReady : .none
        nodes[i].crashAtNextReady = .none
        if let v = checker.answered(rd, node: &nodes[i].raft!) { return fail(v) }

        // A leader's appends may go out before its own persist (thesis §10.2.1); the planted
        // bug sends everything first, votes and acknowledgements included.
        let early = bugSendFirst ? rd.messages.count : rd.sendableBeforePersist
        if early > 0 {
            if let v = checkDurable(rd.messages[..<early], i) { return fail(v) }
            send(rd.messages[..<early])
        }
        if let v = checker.willPersist(i, rd, node: &nodes[i].raft!, disk: nodes[i].disk) { return fail(v) }
        if crashAt == .midPersist {
            let kept = Int(rng.next() % UInt64(SimNode.writeCount(rd) + 1))
            counters.crashes += 1
            counters.tornWrites += 1
            if early > 0 { counters.crashesBeforePersist += 1 }
            nodes[i].crashTearing(rd, kept: kept)
            scheduleRestart(i)
            note("crash mid-ready \(nodes[i].id): torn write kept \(kept) of \(SimNode.writeCount(rd)) writes (after sending \(early))")
            return
        }
        nodes[i].persist(rd)
        if let meta = rd.snapshot {
            // The application restores its state from the installed snapshot.
            counters.snapshots += 1
            note("install \(nodes[i].id) snapshot \(meta.index)/t\(meta.term)")
            if let v = checker.installed(i, meta, data: nodes[i].disk.latestSnapshot.data, node: nodes[i].id) { return fail(v) }
            nodes[i].app = SimApp(restoring: nodes[i].disk.latestSnapshot)
        }
        if crashAt == .afterPersist { return kill(i, why: "crash mid-ready (after persist)") }
        let late = rd.messages[early...]
        if let v = checkDurable(late, i) { return fail(v) }
        if crashAt == .midSend {
            let sent = Int(rng.next() % UInt64(late.count + 1))
            send(late.prefix(sent))
            counters.crashesMidSend += 1
            return kill(i, why: "crash mid-ready (after \(sent) of \(late.count) sends)")
        }
        send(late)
        if crashAt == .afterSend { return kill(i, why: "crash mid-ready (after send)") }
        for r in rd.confChanges where r.index > clusterConfIndex && r.error == nil {
            clusterConfIndex = r.index
            clusterConf = r.conf
            note("configuration \(r.index): voters \(r.conf.voters.sorted()) learners \(r.conf.learners.sorted())")
        }
        for e in rd.committedEntries {
            if let v = checker.applied(i, e, raft: &nodes[i].raft!) { return fail(v) }
            nodes[i].app.apply(e)
            if let ack = clients.appliedAt(node: nodes[i].id, entry: e) {
                note("ack \(ack) at \(nodes[i].id) idx=\(e.index)")
            }
        }
        for rs in rd.readStates {
            guard let floor = readFloors.removeValue(forKey: rs.context) else { continue }
            counters.reads += 1
            if rs.index < floor {
                return fail(Violation(invariant: "linearizable-read",
                                      detail: "read \(rs.context) at node \(nodes[i].id) returned index \(rs.index), but a write at \(floor) was acknowledged before the read began"))
            }
        }
        if crashAt == .afterApply { return kill(i, why: "crash mid-ready (after apply)") }
        nodes[i].raft!.advance(rd)
        checker.observeRounds(&nodes[i].raft!, since: 0)  // ready() emptied the queue
    }

    func checkDurable(_ messages: ArraySlice<Message>, _ i: Int) -> Violation? {
        for m in messages {
            if let v = checker.sending(m, disk: nodes[i].disk) { return v }
        }
        return nil
    }

    func send(_ messages: ArraySlice<Message>) {
        for m in messages {
            if lossy && Int(rng.next() % 1000) < options.dropPerMille {
                counters.dropped += 1
                continue
            }
            if network.isBlocked(from: m.from, to: m.to) {
                counters.dropped += 1
                continue
            }
            network.enqueue(m, now: now, delay: deliveryDelay())
            if lossy && Int(rng.next() % 1000) < options.duplicatePerMille {
                counters.duplicated += 1
                network.enqueue(m, now: now, delay: deliveryDelay())
            }
        }
    }

    /// Ticks until a message sent now arrives: usually 0...deliveryDelayTicksMax, up to
    /// burstDelayTicksMax in a reordering burst, and now and then beyond an election timeout.
    func deliveryDelay() -> UInt64 {
        guard lossy else { return rng.next() % UInt64(options.deliveryDelayTicksMax + 1) }
        if Int(rng.next() % 1000) < options.longDelayPerMille {
            counters.longDelays += 1
            let timeout = UInt64(options.electionTimeoutTicks)
            return timeout + 1 + rng.next() % (2 * timeout)
        }
        let most = now < burstUntil ? options.burstDelayTicksMax : options.deliveryDelayTicksMax
        return rng.next() % UInt64(most + 1)
    }

    func observeSoftState(_ i: Int, _ ss: SoftState, term: Term) {
        if ss.role == .leader {
            counters.elections += 1
            if nodes[i].id == pendingTransfer {
                counters.transfers += 1
                pendingTransfer = noNode
            }
            note("leader \(nodes[i].id) term \(term)")
            if let v = checker.becameLeader(i, raft: &nodes[i].raft!) { fail(v) }
        }
    }

    func checkAfterEvent() {
        for i in nodes.indices where nodes[i].isUp {
            counters.applyLagMax = max(counters.applyLagMax, nodes[i].raft!.commitIndex - nodes[i].app.appliedIndex)
            if let v = checker.observe(i, raft: &nodes[i].raft!, confBefore: confAtLastCheck[i]) { return fail(v) }
            confAtLastCheck[i] = nodes[i].raft!.conf
        }
    }

    func fail(_ v: Violation) {
        if violation == nil {
            violation = v
            note("VIOLATION \(v)")
        }
    }
}
