import ClusterModel

/// The balancer's numbers (the cluster file's `balancer:` section, docs/balancer.md). Every
/// leader decides with its own file's values, as with `PlacementPolicy`: every peer must read
/// the same file.
public struct BalancerPolicy: Sendable, Hashable {
    /// Requests per second one instance is sized for: load is measured against it, so instances
    /// that share a machine (as in tests) do not look roomier than they are.
    public var instanceRequestsPerSecond: Double
    /// The components' CPU one instance is sized for, in permille of a core (2000 = two cores);
    /// nil: CPU is not an input.
    public var instanceCpuPermille: Double?
    /// An instance's p99 upstream latency above this is an overload; nil: not an input.
    public var p99HighMs: Double?
    /// An instance's share of 5xx answers above this is an overload; nil: not an input.
    public var errorShareHigh: Double?
    /// An instance is overloaded above this share of its capacity (any input).
    public var highWater: Double
    /// What moving hot tenants away aims for, and what a scale-down may leave behind.
    public var target: Double
    /// The cluster is under-used below this share of its capacity (every input).
    public var lowWater: Double
    /// How long an overload must last before the balancer acts.
    public var overloadWindowMs: Int64
    /// How long the cluster must stay under-used before an instance is removed.
    public var underloadWindowMs: Int64
    /// No new action within this long of the last one.
    public var cooldownMs: Int64
    /// A tenant the balancer moved is not moved again within this long.
    public var tenantCooldownMs: Int64
    public var minInstances: Int
    public var maxInstances: Int
    /// A tenant above this share of an instance's capacity moves alone, to an instance of its own.
    public var dedicatedShare: Double
    /// Observations further apart than this break every streak (a leader that stopped polling,
    /// reports that stopped): the window starts again.
    public var observationGapMs: Int64
    /// A decision's moves not started this long after it are given up (the new instance never
    /// came, the tenants went elsewhere).
    public var planTimeoutMs: Int64
    /// Events the state keeps (`events.retain`).
    public var eventsRetain: Int
    /// A scale-up's instance must be active within this long, or the add is undone.
    public var addTimeoutMs: Int64
    /// The provider new instances come from ("" = the cluster's first); nil when the cluster
    /// file names no provider (the balancer then moves tenants but adds no instance).
    public var provider: String?
    /// Below this many requests per second an instance's error share and latency are not judged
    /// (two failed requests of three say nothing).
    public var judgedRequestsPerSecondMin: Double
    /// Planted by the cluster simulator only.
    public var plantedBugs: Set<ControllerBug> = []

    public init(
        instanceRequestsPerSecond: Double, instanceCpuPermille: Double? = nil, p99HighMs: Double? = nil, errorShareHigh: Double? = nil,
        highWater: Double = 0.8, target: Double = 0.6, lowWater: Double = 0.2,
        overloadWindowMs: Int64 = 10_000, underloadWindowMs: Int64 = 60_000, cooldownMs: Int64 = 30_000, tenantCooldownMs: Int64 = 300_000,
        minInstances: Int = 1, maxInstances: Int = 5, dedicatedShare: Double = 0.5, observationGapMs: Int64 = 5_000,
        planTimeoutMs: Int64 = 600_000, eventsRetain: Int = 10_000, addTimeoutMs: Int64 = 300_000, provider: String? = nil,
        judgedRequestsPerSecondMin: Double = 5
    ) {
        precondition(instanceRequestsPerSecond > 0, "instanceRequestsPerSecond must be > 0")
        precondition(lowWater < target && target < highWater && highWater <= 1, "need lowWater < target < highWater <= 1")
        precondition(minInstances >= 1 && minInstances <= maxInstances, "need 1 <= minInstances <= maxInstances")
        self.instanceRequestsPerSecond = instanceRequestsPerSecond
        self.instanceCpuPermille = instanceCpuPermille
        self.p99HighMs = p99HighMs
        self.errorShareHigh = errorShareHigh
        self.highWater = highWater
        self.target = target
        self.lowWater = lowWater
        self.overloadWindowMs = overloadWindowMs
        self.underloadWindowMs = underloadWindowMs
        self.cooldownMs = cooldownMs
        self.tenantCooldownMs = tenantCooldownMs
        self.minInstances = minInstances
        self.maxInstances = maxInstances
        self.dedicatedShare = dedicatedShare
        self.observationGapMs = observationGapMs
        self.planTimeoutMs = planTimeoutMs
        self.eventsRetain = eventsRetain
        self.addTimeoutMs = addTimeoutMs
        self.provider = provider
        self.judgedRequestsPerSecondMin = judgedRequestsPerSecondMin
    }
}

/// One round's load, as the leader assembled it from every live member's report: requests by
/// the instance that served them and by tenant, summed over every router; each instance's
/// latency and its components' CPU.
public struct LoadObservation: Sendable, Hashable {
    public struct InstanceLoad: Sendable, Hashable {
        public var requestsPerSecond: Double
        public var errorsPerSecond: Double
        /// The worst p99 any router saw for it; nil when no request reached it.
        public var p99Ms: Double?
        /// The instance's components' CPU summed, permille of a core; nil when it did not say.
        public var cpuPermille: Double?

        public init(requestsPerSecond: Double, errorsPerSecond: Double = 0, p99Ms: Double? = nil, cpuPermille: Double? = nil) {
            self.requestsPerSecond = requestsPerSecond
            self.errorsPerSecond = errorsPerSecond
            self.p99Ms = p99Ms
            self.cpuPermille = cpuPermille
        }
    }

    public var nowMs: Int64
    /// Why this round cannot be judged (a live router did not report; its requests would be
    /// missing from every sum); nil when every live member answered.
    public var incomplete: String?
    /// By instance id; an instance absent served no request in the window.
    public var instances: [String: InstanceLoad]
    /// Requests per second by tenant (summed over routers); a tenant absent sent none.
    public var tenants: [String: Double]

    public init(nowMs: Int64, incomplete: String? = nil, instances: [String: InstanceLoad], tenants: [String: Double]) {
        self.nowMs = nowMs
        self.incomplete = incomplete
        self.instances = instances
        self.tenants = tenants
    }
}

/// What the balancer remembers between rounds: when each streak began. Soft state on the
/// leader: a new leader starts empty and must watch a whole window itself before it acts (which
/// can only delay a decision, never hurry one).
public struct BalancerMemory: Sendable, Hashable {
    /// Instance id → when its current overload began.
    public var overloadedSinceMs: [String: Int64] = [:]
    /// When the cluster's current low usage began.
    public var underusedSinceMs: Int64?
    public var lastObservedMs: Int64?
    /// Why the last observation was not counted, if it was not.
    public var ignored: String?
    /// The inputs behind each instance's last verdict, for the event that acts on it.
    public var lastMeasures: [String: [PBMeasure]] = [:]

    public init() {}
}
