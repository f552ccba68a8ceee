import Raft

// The faults a run injects: crashes (anywhere, mid-Ready, power loss) and restarts, pauses,
// partitions, reordering bursts and slow drivers (docs/simulator.md, "The fault model").

extension Simulation {
    /// A random node crashes (if a quorum stays up without it).
    func crashAny() {
        crash(Int(rng.next() % UInt64(nodes.count)))
    }

    func crash(_ i: Int) {
        guard nodes[i].isUp, mayCrash(nodes[i].id) else { return }
        kill(i, why: "crash")
    }

    /// Ordinary crashes keep a quorum of the configuration's voters up (power loss below takes
    /// everyone down at once); learners and removed nodes may always crash.
    func mayCrash(_ id: NodeID) -> Bool {
        guard clusterConf.voters.contains(id) else { return true }
        let deadVoters = clusterConf.voters.filter { !nodes[Int($0 - 1)].isUp }.count
        return deadVoters + 1 <= (clusterConf.voters.count - 1) / 2
    }

    /// Arms a crash inside the node's next Ready handling: after persisting, after sending, or
    /// after applying; where something went out before the persist (a leader's appends, or
    /// everything with the send-before-persist bug), the first point is before the persist.
    func crashDuringNextReady() {
        let alive = nodes.indices.filter { nodes[$0].isUp }
        guard !alive.isEmpty else { return }
        let i = alive[Int(rng.next() % UInt64(alive.count))]
        // The only voter may crash mid-Ready too: it commits by its own write alone.
        guard mayCrash(nodes[i].id) || clusterConf.voters.count == 1 else { return }
        let points = CrashPoint.allCases.dropFirst()
        nodes[i].crashAtNextReady = points[points.startIndex + Int(rng.next() % UInt64(points.count))]
    }

    /// A process stops (SIGSTOP, a VM stall) for up to several election timeouts: it neither
    /// ticks, reads nor sends, and resumes with the beliefs it had (a leader still believes it
    /// leads). Half the pauses strike the leader.
    func pause() {
        let alive = running
        guard !alive.isEmpty else { return }
        let i = rng.next() % 2 == 0 ? (runningLeader ?? alive[0]) : alive[Int(rng.next() % UInt64(alive.count))]
        let span = UInt64(options.pauseElectionTimeoutsMax * options.electionTimeoutTicks)
        nodes[i].pausedUntil = now + 1 + rng.next() % span
        network.pause(nodes[i].id)
        counters.pauses += 1
        note("pause \(nodes[i].id) until t\(nodes[i].pausedUntil)")
    }

    func resume(_ i: Int) {
        nodes[i].pausedUntil = 0
        network.resume(nodes[i].id)
        note("resume \(nodes[i].id)")
    }

    /// For a while, every message is delayed up to `burstDelayTicksMax` ticks: heavy reordering.
    func burst() {
        burstUntil = now + 5 + rng.next() % 16
        counters.bursts += 1
        note("reordering burst until t\(burstUntil)")
    }

    /// A node's driver slows down (a slow disk, a busy CPU): one Ready per event, so its
    /// application trails its commit index.
    func slowDown() {
        let alive = running
        guard !alive.isEmpty else { return }
        let i = alive[Int(rng.next() % UInt64(alive.count))]
        nodes[i].slowUntil = now + 5 + rng.next() % 36
        note("slow driver at \(nodes[i].id) until t\(nodes[i].slowUntil)")
    }

    /// Leaders are where Raft's hardest cases start (Figure 8): take them down often.
    func crashLeader() {
        if let i = nodes.indices.first(where: { nodes[$0].isLeader }) {
            crash(i)
        }
    }

    func kill(_ i: Int, why: String) {
        if nodes[i].isPaused { network.resume(nodes[i].id) }  // Held messages now reach a dead node.
        counters.crashes += 1
        nodes[i].crash(loseUnsynced: rng.next() % 2 == 0)
        scheduleRestart(i)
        note("\(why) \(nodes[i].id)")
    }

    /// A crashed process is started again by its supervisor 1 to 30 ticks later (up to three
    /// election timeouts; sooner if `restartOne` picks it): every node's downtime has the same bound,
    /// however many others are down.
    func scheduleRestart(_ i: Int) {
        nodes[i].restartAt = now + 1 + rng.next() % UInt64(3 * options.electionTimeoutTicks)
    }

    func powerLoss() {
        note("power loss: every node crashes")
        for i in nodes.indices where nodes[i].isUp { kill(i, why: "power loss") }
    }

    func restartOne() {
        // Spares that never joined are not dead, only unborn.
        let dead = nodes.indices.filter { !nodes[$0].isUp && nodes[$0].incarnation > 0 }
        guard !dead.isEmpty else { return }
        start(dead[Int(rng.next() % UInt64(dead.count))])
    }

    func start(_ i: Int) {
        if nodes[i].incarnation > 0 { counters.restarts += 1 }
        nodes[i].start(seed: rng.next())
        checker.nodeStarted(i, raft: nodes[i].raft!, disk: nodes[i].disk)
        note("start \(nodes[i].id) (incarnation \(nodes[i].incarnation)) term=\(nodes[i].raft!.term) last=\(nodes[i].raft!.lastIndex) commit=\(nodes[i].raft!.commitIndex)")
    }

    func partition() {
        counters.partitions += 1
        let ids = nodes.map(\.id)
        if rng.next() % 3 == 0 {
            // Asymmetric: one direction of one link.
            let a = ids[Int(rng.next() % UInt64(ids.count))]
            var b = ids[Int(rng.next() % UInt64(ids.count))]
            if a == b { b = ids[(Int(a) % ids.count)] }
            network.block(from: a, to: b)
            note("partition one-way \(a)-x->\(b)")
        } else {
            // Symmetric: cut off a random minority of the voters (one to as many as the cluster
            // tolerates losing), each non-voter joining either side at random.
            var voters = clusterConf.voters.sorted()
            let cut = 1 + Int(rng.next() % UInt64(max(1, (voters.count - 1) / 2)))
            var side: [NodeID] = []
            for _ in 0..<min(cut, voters.count) {
                side.append(voters.remove(at: Int(rng.next() % UInt64(voters.count))))
            }
            for id in ids where !clusterConf.voters.contains(id) && rng.next() % 2 == 0 { side.append(id) }
            network.isolate(side, from: ids)
            note("partition \(side.sorted()) | \(ids.filter { !side.contains($0) })")
        }
    }

    func heal() {
        network.healAll()
        note("heal")
    }
}
