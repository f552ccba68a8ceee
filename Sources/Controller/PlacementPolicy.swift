import ClusterModel

/// What the operation driver needs to know of the catalog and the instances to place tenants:
/// how many capacity units each plan takes and how many an instance offers. The leader builds it
/// from the cluster configuration (`catalog:` and `broker:`), so every leader decides with the
/// same numbers as long as every peer reads the same file.
public struct PlacementPolicy: Sendable, Hashable {
    /// Capacity units one active instance offers (`broker.instanceCapacity`).
    public var instanceCapacityUnits: UInt64
    /// Units a tenant of each plan takes, by plan id; plan names are accepted too, for tenants the
    /// admin API created with a plan name (`peer tenants create --plan development`).
    public var weightUnitsByPlan: [String: UInt64]
    /// Units of a tenant whose plan is in neither table (a plan removed from the catalog).
    public var unknownPlanWeightUnits: UInt64
    /// A provision that has found no instance with headroom (or whose placement never became
    /// ready) this long after it started fails (`broker.provisionTimeoutMs`).
    public var provisionTimeoutMs: Int64

    public init(instanceCapacityUnits: UInt64, weightUnitsByPlan: [String: UInt64], unknownPlanWeightUnits: UInt64 = 1, provisionTimeoutMs: Int64) {
        precondition(instanceCapacityUnits > 0, "an instance must offer some capacity")
        precondition(provisionTimeoutMs > 0, "provisionTimeoutMs must be positive, got \(provisionTimeoutMs)")
        self.instanceCapacityUnits = instanceCapacityUnits
        self.weightUnitsByPlan = weightUnitsByPlan
        self.unknownPlanWeightUnits = unknownPlanWeightUnits
        self.provisionTimeoutMs = provisionTimeoutMs
    }

    public func weightUnits(ofPlan plan: String) -> UInt64 {
        weightUnitsByPlan[plan] ?? unknownPlanWeightUnits
    }
}

/// When a `preparing` placement may become `active`. Today no agent runs components, so a
/// placement is ready at once (`immediate`). The agent issue reports which placements it has
/// started and health-checked (`reported`): that is the hook where "target healthy" goes.
public enum PlacementReadiness: Sendable, Hashable {
    case immediate
    /// Placements whose components the target instance's agent reported healthy.
    case reported(Set<PlacementKey>)

    public func isReady(_ placement: Placement) -> Bool {
        switch self {
        case .immediate: return true
        case .reported(let ready): return ready.contains(PlacementKey(tenant: placement.tenantID, instance: placement.instanceID))
        }
    }
}

public struct PlacementKey: Sendable, Hashable {
    public var tenant: String
    public var instance: String

    public init(tenant: String, instance: String) {
        self.tenant = tenant
        self.instance = instance
    }
}
