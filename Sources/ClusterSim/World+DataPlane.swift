import ClusterModel
import Controller
import Leader
import Raft

/// The platform's users: each ready tenant sends a base load; now and then one turns hot for a
/// while (below the balancer's dedicated share, so hot tenants are moved, not isolated).
struct LoadModel {
    var demand: [String: Double] = [:]
    var hotUntil: [String: Int64] = [:]
    var calmed = false

    mutating func calm() {
        calmed = true
        hotUntil = [:]
    }

    mutating func step(world w: ClusterWorld) {
        guard w.nowMs % 1000 == 0 else { return }
        let ready = w.referenceState?.allTenants.filter { $0.state == .ready }.map(\.id) ?? []
        for t in hotUntil.keys.sorted() where hotUntil[t]! <= w.nowMs || !ready.contains(t) { hotUntil[t] = nil }
        if !calmed, !ready.isEmpty, w.chance(perMille: 70) {
            let t = ready[Int(w.rng.next() % UInt64(ready.count))]
            hotUntil[t] = w.nowMs + w.random(20_000...120_000)
        }
        var next: [String: Double] = [:]
        for t in ready { next[t] = hotUntil[t] != nil ? Double(w.random(14...23)) : Double(1 + (t.utf8.reduce(0) { $0 &+ Int($1) } % 3)) }
        demand = next
    }
}

extension ClusterWorld {
    /// The state of the node that has applied the most (the committed state as far as it is known).
    var referenceState: ClusterState? {
        var best: WorldNode?
        for id in order {
            let n = nodes[id]!
            guard n.isUp else { continue }
            if best == nil || n.raft!.appliedIndex > best!.raft!.appliedIndex { best = n }
        }
        return best?.state
    }

    /// The node's components start serving a tenant some time after its placement reaches the
    /// node's state; its router reloads some time after its state changes.
    func updateDataPlane(_ n: WorldNode) {
        let applied = n.raft!.appliedIndex
        if applied != n.dataPlaneIndex {
            n.dataPlaneIndex = applied
            let placed = Set(n.state.placements(onInstance: "\(n.id)").filter { $0.phase != .gone }.map(\.tenantID))
            for t in n.servesFromMs.keys.sorted() where !placed.contains(t) { n.servesFromMs[t] = nil }
            for t in placed.sorted() where n.servesFromMs[t] == nil { n.servesFromMs[t] = nowMs + random(200...3_000) }
            if n.routerDueMs == 0 && n.routerIndex < applied { n.routerDueMs = nowMs + random(50...500) }
        }
        if n.routerDueMs != 0 && nowMs >= n.routerDueMs {
            n.routerDueMs = 0
            n.routerIndex = applied
            var routes: [String: String] = [:]
            for t in n.state.allTenants {
                if let i = n.state.activeInstance(ofTenant: t.id) { routes[t.id] = i }
            }
            n.routes = routes
        }
    }

    /// What a member answers the leader's poll: the tenants its components serve, the routing
    /// its router runs, and its router's share of every tenant's requests.
    func report(of n: WorldNode) -> DataPlaneWatch.MemberReport {
        let serving = n.servesFromMs.filter { $0.value <= nowMs }.keys.sorted()
        let routers = Double(max(1, order.filter { nodes[$0]!.isUp }.count))
        var instances: [String: LoadObservation.InstanceLoad] = [:]
        var tenants: [String: Double] = [:]
        for (t, rps) in load.demand.sorted(by: { $0.key < $1.key }) {
            guard let i = n.routes[t] else { continue }
            let share = rps / routers
            instances[i, default: .init(requestsPerSecond: 0)].requestsPerSecond += share
            tenants[t] = share
        }
        return DataPlaneWatch.MemberReport(
            servingTenants: serving, routerConfirmedIndex: n.routerIndex == 0 ? nil : n.routerIndex, servingAsOfIndex: n.dataPlaneIndex,
            load: DataPlaneWatch.RouterLoad(instances: instances, tenants: tenants))
    }
}
