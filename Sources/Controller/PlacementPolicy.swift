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
    /// A move whose target has not served the tenant this long after it started is withdrawn
    /// and fails (`router.moveTimeoutMs`); the tenant stays on its source.
    public var moveTimeoutMs: Int64 = 60_000
    /// Planted by the cluster simulator only.
    public var plantedBugs: Set<ControllerBug> = []

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
    /// Instances in `supervised` run an agent: their placements are ready once reported in
    /// `ready`. Placements on other instances (no components configured) are ready at once.
    /// `servingAsOf`: the routing index each instance's report reflects; a placement counts as
    /// served only by a report as of its own index or later, so a report taken before the
    /// placement (of an earlier placement of the same tenant there, since dropped) never
    /// activates it (found by the cluster simulator). An instance absent from it is not checked.
    case supervised(ready: Set<PlacementKey>, supervised: Set<String>, servingAsOf: [String: UInt64] = [:])

    public func isReady(_ placement: Placement) -> Bool {
        let key = PlacementKey(tenant: placement.tenantID, instance: placement.instanceID)
        switch self {
        case .immediate: return true
        case .reported(let ready): return ready.contains(key)
        case .supervised(let ready, let supervised, let asOf):
            guard supervised.contains(placement.instanceID) else { return true }
            return ready.contains(key) && (asOf[placement.instanceID] ?? placement.phaseSinceIndex) >= placement.phaseSinceIndex
        }
    }

    /// Whether a new placement on the instance must be prepared (an agent starts the tenant's
    /// components) before it can be active. If not, the driver places it active at once.
    public func needsPreparation(onInstance instanceId: String) -> Bool {
        switch self {
        case .immediate: return false
        case .reported: return true
        case .supervised(_, let supervised, _): return supervised.contains(instanceId)
        }
    }
}

/// What the leader knows of the routers' configs (soft state, from the members' reports): for
/// Raft indexes, the leader time at which it first saw every live router run a config of that
/// index or later. A move drops its source only after this plus the grace period
/// (`settings.moveGraceMs`), so requests that old NGINX workers still send to the source finish.
public struct RouterAcks: Sendable, Hashable {
    public struct Confirmation: Sendable, Hashable {
        /// The smallest index every live router was confirmed at or past...
        public var index: UInt64
        /// ...first seen at this leader time (Unix ms).
        public var sinceMs: Int64

        public init(index: UInt64, sinceMs: Int64) {
            self.index = index
            self.sinceMs = sinceMs
        }
    }

    /// Ascending by index (and by time: the routers' minimum only grows while one leader polls).
    public var confirmations: [Confirmation]
    /// False when no peer runs a router: then nothing waits for acks.
    public var waitForRouters: Bool

    public init(confirmations: [Confirmation] = []) {
        self.confirmations = confirmations.sorted { $0.index < $1.index }
        waitForRouters = true
    }

    /// Tests: index → first-seen time.
    public init(confirmedSinceMs: [UInt64: Int64]) {
        self.init(confirmations: confirmedSinceMs.map { Confirmation(index: $0.key, sinceMs: $0.value) })
    }

    /// No routers to wait for.
    public static let none: RouterAcks = {
        var acks = RouterAcks()
        acks.waitForRouters = false
        return acks
    }()

    /// When the grace period for the entry at `index` (applied at leader time `appliedAtMs`)
    /// starts: once every live router runs a config of that index or later (nil until then);
    /// at `appliedAtMs` itself when nothing waits for routers.
    public func graceStart(forIndex index: UInt64, appliedAtMs: Int64) -> Int64? {
        guard waitForRouters else { return appliedAtMs }
        return confirmations.first { $0.index >= index }?.sinceMs
    }
}

/// The failure detector's verdict, as the leader saw it this round: instances it has heard
/// nothing from for `timing.instanceLostAfterMs`, each with the reason. Every decision that
/// treats an instance as gone reads this one input.
public struct InstanceLiveness: Sendable, Hashable {
    /// Lost instance id → why (for the operation's description and the log).
    public var lost: [String: String]

    public init(lost: [String: String] = [:]) {
        self.lost = lost
    }

    public static let allLive = InstanceLiveness()

    public func isLost(_ instance: String) -> Bool { lost[instance] != nil }
}

public struct PlacementKey: Sendable, Hashable {
    public var tenant: String
    public var instance: String

    public init(tenant: String, instance: String) {
        self.tenant = tenant
        self.instance = instance
    }
}
