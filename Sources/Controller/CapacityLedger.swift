import ClusterModel

/// Capacity units used per active, live instance, and reservations made during one round so two
/// tenants placed in the same round do not both count on the same free units.
struct CapacityLedger {
    let policy: PlacementPolicy
    /// Active instances only, sorted by id: ties go to the smallest id, on every leader alike.
    private(set) var usedUnits: [(id: String, used: UInt64)]

    init(state: ClusterState, policy: PlacementPolicy, liveness: InstanceLiveness = .allLive) {
        self.policy = policy
        // O(instances × plans): the state keeps placement counts per instance and plan. A lost
        // instance takes no new tenant.
        usedUnits = state.instances(in: .active).filter { !liveness.isLost($0.id) }.map { instance in
            let used = state.placementCountsByPlan(onInstance: instance.id).reduce(UInt64(0)) { sum, entry in
                sum + policy.weightUnits(ofPlan: entry.key) * UInt64(entry.value)
            }
            return (instance.id, used)
        }
    }

    /// The active instance with the most free units, if it has `units` free; reserves them.
    mutating func reserveMostHeadroom(units: UInt64) -> String? {
        var best: Int?
        for (i, entry) in usedUnits.enumerated() {
            let free = policy.instanceCapacityUnits > entry.used ? policy.instanceCapacityUnits - entry.used : 0
            guard free >= units else { continue }
            if let b = best {
                let bestFree = policy.instanceCapacityUnits - usedUnits[b].used
                if free > bestFree { best = i }
            } else {
                best = i
            }
        }
        guard let chosen = best else { return nil }
        usedUnits[chosen].used += units
        return usedUnits[chosen].id
    }
}
