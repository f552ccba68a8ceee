import Raft

// Phase 2: heal everything, stop the faults, and require progress within a bound.

extension Simulation {
    func livenessPhase() {
        note("liveness: heal, restart all, no loss")
        network.healAll()
        lossy = false
        burstUntil = 0
        for i in nodes.indices {
            if nodes[i].isPaused { resume(i) }
            nodes[i].slowUntil = 0
        }
        for i in nodes.indices where !nodes[i].isUp && nodes[i].incarnation > 0 { start(i) }
        processReadies()
        var probe: [UInt8]?
        var ticks = 0
        let deliveredBefore = counters.delivered
        while ticks < options.livenessTicksMax && violation == nil
            && counters.delivered - deliveredBefore < options.livenessMessagesMax {
            // Deliver everything due, then advance time.
            while let m = network.takeDue(now: now, rng: &rng) {
                deliver(m)
                processReadies()
                if violation != nil { return }
            }
            if probe == nil, let l = runningLeader {
                let payload = clients.newPayload(paddingBytes: 0)
                do {
                    let ticket = try nodes[l].raft!.propose(payload)
                    clients.submitted(payload, node: nodes[l].id, index: ticket.index, term: ticket.term)
                    probe = payload
                    note("liveness probe at \(nodes[l].id) idx=\(ticket.index)")
                } catch {
                    note("liveness probe at \(nodes[l].id) refused: \(error)")
                }
            }
            if let p = probe, clients.isAcked(p) {
                let needed = max(clients.maxAckedIndex, checker.committedTerms.count > 0 ? LogIndex(checker.committedTerms.count) : 0)
                // Every member of the newest configuration; removed nodes are no longer fed.
                if clusterConf.all.allSatisfy({ (nodes[Int($0 - 1)].raft?.appliedIndex ?? 0) >= needed }) {
                    checkAfterEvent()
                    return
                }
            }
            // A proposer no longer in the configuration is not replicated to: its entry may sit in
            // its log forever without committing, so the client retries elsewhere.
            if let p = probe, clients.isSuperseded(p, proposer: { id in
                self.clusterConf.contains(id) ? self.nodes[Int(id - 1)].raft : nil
            }) {
                probe = nil
            }
            tick()
            ticks += 1
            processReadies()
            if violation == nil { checkAfterEvent() }
        }
        if violation != nil { return }
        let states = nodes.map { n -> String in
            guard let r = n.raft else { return "\(n.id):down" }
            return "\(n.id):\(r.role.rawValue) t\(r.term) last=\(r.lastIndex) commit=\(r.commitIndex) applied=\(r.appliedIndex)"
        }
        let probeState = probe.map { clients.isAcked($0) ? "acked" : "pending" } ?? "none"
        fail(Violation(invariant: "liveness",
                       detail: "after healing, no leader committed a probe and applied every acknowledged entry (max acked index \(clients.maxAckedIndex)) within \(ticks) ticks and \(counters.delivered - deliveredBefore) messages (limits \(options.livenessTicksMax), \(options.livenessMessagesMax); probe \(probeState), committed \(checker.committedTerms.count)); \(states.joined(separator: ", "))"))
    }
}
