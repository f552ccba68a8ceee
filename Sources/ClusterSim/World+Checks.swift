import ClusterModel
import Controller
import Raft

/// What the world learns from the committed log, once per index (every replica applies the same
/// log; the digests check that they agree).
struct LogObserver {
    var highest: LogIndex = 0
    /// Operations started and not finished, and the final state of those finished.
    var open: Set<String> = []
    var finished: [String: PBOperationState] = [:]
    /// The leader time of the last acting balancer decision (not failovers), and when each
    /// tenant was last moved by one.
    var lastActionAtMs: (id: String, atMs: Int64)?
    var tenantMovedAt: [String: (event: String, atMs: Int64)] = [:]
}

extension ClusterWorld {
    /// Every committed entry, once, on the first node that applies it (its state is then the
    /// state right after that entry).
    func observeCommitted(_ n: WorldNode, _ e: Entry, _ result: ApplyResult?) {
        guard e.index > log.highest else { return }
        log.highest = e.index
        counters.commits += 1
        guard e.kind == .normal, !e.data.isEmpty, let command = try? Command(serializedBytes: e.data) else { return }
        platformAccepted(command.request.clientID)
        let state = n.state
        let applied = result == .applied
        switch command.body {
        case .provisionTenant(let c) where applied: opened(c.operationID)
        case .deprovisionTenant(let c) where applied: opened(c.operationID)
        case .moveTenant(let c) where applied: opened(c.operationID)
        case .finishOperation(let c) where applied:
            if let before = log.finished[c.id] {
                fail("operation-finished-twice", "operation \(c.id) finished \(before) and then again \(c.state) at index \(e.index)")
            }
        case .setPlacementPhase(let c) where applied:
            note("\(e.index) \(c.tenantID)@\(c.instanceID) \(c.phase)")
            if c.phase == .active { checkActivation(tenant: c.tenantID, instance: c.instanceID, index: e.index) }
        case .placeTenant(let c) where applied:
            note("\(e.index) \(c.tenantID)@\(c.instanceID) placed\(c.active ? " active" : "")")
        case .setInstanceState(let c) where applied && (c.state == .draining || c.state == .drained || c.state == .active):
            if c.state == .drained { counters.drained += 1 }
            note("\(e.index) instance \(c.id) \(c.state)")
        case .recordEvent(let r) where applied:
            if let event = state.allEvents.last(where: { $0.id == r.event.id }) { checkDecision(event) }
        default:
            break
        }
        for id in log.open.sorted() {
            guard let op = state.operation(id), op.state != .inProgress else { continue }
            log.open.remove(id)
            log.finished[id] = op.state
            counters.operationsFinished += 1
            if op.state == .failed {
                counters.operationsFailed += 1
                note("operation \(id) (\(op.kind)) failed: \(op.description_p)")
            }
            if op.kind == .move { counters.movesFinished += 1 }
        }
        checkPlacements(state, index: e.index)
    }

    func opened(_ id: String) {
        guard log.finished[id] == nil else { return fail("operation-finished-twice", "operation \(id) started again after it finished") }
        if log.open.insert(id).inserted { counters.operationsStarted += 1 }
    }

    /// Every ready tenant is served by exactly one active placement, and by at most one more
    /// (the source of a move, draining): never none, never two active.
    func checkPlacements(_ state: ClusterState, index: LogIndex) {
        for t in state.allTenants where t.state == .ready {
            let placements = state.placements(ofTenant: t.id)
            let active = placements.filter { $0.phase == .active }.count
            let draining = placements.filter { $0.phase == .draining }.count
            if active != 1 || draining > 1 {
                return fail("tenant-served-once", "after index \(index) ready tenant \(t.id) has \(active) active and \(draining) draining placements: \(placements.map { "\($0.instanceID):\($0.phase)" })")
            }
        }
    }

    /// A placement becomes active only once its instance serves the tenant (make before
    /// break): the routers send the tenant there from now on.
    func checkActivation(tenant: String, instance: String, index: LogIndex) {
        guard let id = NodeID(instance), let n = nodes[id], n.isUp, nowMs - n.upSinceMs > 5_000 else { return }
        guard let from = n.servesFromMs[tenant], from <= nowMs else {
            return fail("activated-before-served", "index \(index) made \(tenant)@\(instance) active, but instance \(instance) does not serve \(tenant) (its components do not run it yet)")
        }
    }

    /// The balancer acts at most once per `cooldownMs` (failovers excepted) and moves no tenant
    /// twice within `tenantCooldownMs`, by the leader times its decisions carry.
    func checkDecision(_ e: Event) {
        let policy = balancerPolicy
        switch e.kind {
        case .scaleUp: counters.scaleUps += 1
        case .scaleDown: counters.scaleDowns += 1
        case .rebalance: counters.rebalances += 1
        case .failover: counters.failovers += 1
        case .replace: counters.replaces += 1
        default: return
        }
        note("decision \(e.id) \(e.kind) moves \(e.moves.map(\.tenantID))")
        let acting: Set<PBEventKind> = [.scaleUp, .rebalance, .scaleDown]
        if acting.contains(e.kind) {
            if let last = log.lastActionAtMs, e.atMs - last.atMs < policy.cooldownMs {
                return fail("balancer-cooldown", "decision \(e.id) came \(e.atMs - last.atMs) ms after \(last.id) (cooldownMs \(policy.cooldownMs))")
            }
            log.lastActionAtMs = (e.id, e.atMs)
            for m in e.moves {
                if let last = log.tenantMovedAt[m.tenantID], e.atMs - last.atMs < policy.tenantCooldownMs {
                    return fail("balancer-flap", "decision \(e.id) moves tenant \(m.tenantID) \(e.atMs - last.atMs) ms after \(last.event) moved it (tenantCooldownMs \(policy.tenantCooldownMs))")
                }
            }
        }
        for m in e.moves { log.tenantMovedAt[m.tenantID] = (e.id, e.atMs) }
    }

    // MARK: - Faults

    func faultStep() {
        guard nowMs % 1000 == 0 else { return }
        let down = order.filter { founders.contains($0) && (!nodes[$0]!.isUp || network.isolated.contains($0)) }.count
        let budget = (options.nodes - 1) / 2
        if leaderCrashInJobs == nil, chance(perMille: 35) { leaderCrashInJobs = Int(random(0...60)) }
        if chance(perMille: 15), let l = leaderID() {
            // A leadership transfer (a rolling upgrade's step) to a random other voter.
            let voters = nodes[l]!.raft!.conf.voters.sorted().filter { $0 != l }
            if !voters.isEmpty {
                let to = voters[Int(rng.next() % UInt64(voters.count))]
                if (try? nodes[l]!.raft!.transferLeadership(to: to)) != nil {
                    counters.transfers += 1
                    note("transfer leadership \(l) -> \(to)")
                }
            }
        }
        if down < budget, chance(perMille: 25) {
            let up = order.filter { nodes[$0]!.isUp && !network.isolated.contains($0) }
            if !up.isEmpty { crash(up[Int(rng.next() % UInt64(up.count))], why: "crash") }
        }
        if down < budget, chance(perMille: 25) {
            let up = order.filter { nodes[$0]!.isUp && !network.isolated.contains($0) }
            if !up.isEmpty {
                let x = up[Int(rng.next() % UInt64(up.count))]
                network.isolate(x)
                counters.partitions += 1
                let until = nowMs + random(1_000...8_000)
                note("isolate \(x) until t=\(until - Self.startMs)")
                isolationEnds[x] = until
            }
        }
        for (x, until) in isolationEnds.sorted(by: { $0.key < $1.key }) where until <= nowMs {
            network.heal(x)
            isolationEnds[x] = nil
            note("heal \(x)")
        }
    }

    // MARK: - Settling

    /// Nil once the cluster has settled; else the invariant that is still broken and how.
    /// An operation never finished is lost; provider instances the state does not hold (or the
    /// reverse) break `provider-matches-committed`; anything else is a plain `settle`.
    func unsettled() -> (invariant: String, why: String)? {
        guard let l = leaderID() else { return ("settle", "no leader") }
        let leader = nodes[l]!
        let commit = leader.raft!.commitIndex
        if let lag = order.first(where: { id in nodes[id]!.isUp && nodes[id]!.raft!.appliedIndex != commit && leader.raft!.conf.all.contains(id) }) {
            return ("settle", "node \(lag) has applied \(nodes[lag]!.raft!.appliedIndex) of \(commit)")
        }
        let state = leader.state
        if !platform.waiting.isEmpty { return ("settle", "platform requests not in the log: \(platform.waiting.map(\.id))") }
        if !log.open.isEmpty {
            let open = log.open.sorted().prefix(5).map { id in "\(id) (\(state.operation(id).map { "\($0.kind)" } ?? "gone from the state"))" }
            return ("operation-lost", "operations accepted by the log and never finished: \(open)")
        }
        if !state.allIntents.isEmpty { return ("settle", "intents open: \(state.allIntents.map(\.id))") }
        if state.hasDrainingInstances { return ("settle", "instances draining") }
        let committed = Set(state.allInstances.filter { !$0.provider.isEmpty && $0.state != .removed }.map(\.id))
        if committed != provider.running {
            return ("provider-matches-committed", "the provider runs \(provider.running.sorted()), the state has \(committed.sorted())")
        }
        if let down = order.first(where: { !nodes[$0]!.isUp && !nodes[$0]!.destroyed }) { return ("settle", "node \(down) is down") }
        return nil
    }

    /// Replicas that have applied the same index hold the same state (checked every 10
    /// simulated seconds, and after settling).
    func checkDigests() {
        var byIndex: [LogIndex: [(NodeID, String)]] = [:]
        for id in order {
            let n = nodes[id]!
            guard n.isUp else { continue }
            byIndex[n.raft!.appliedIndex, default: []].append((id, n.state.stateDigestHex))
        }
        for (index, replicas) in byIndex.sorted(by: { $0.key < $1.key }) where Set(replicas.map(\.1)).count > 1 {
            return fail("digests-agree", "replicas at index \(index) differ: \(replicas.map { "\($0.0)=\($0.1.prefix(12))" })")
        }
    }

}
