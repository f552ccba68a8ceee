@preconcurrency import Yams

extension ClusterConfig {
    /// `balancer:` (docs/balancer.md): the leader moves hot tenants and adds and removes
    /// instances as the load asks. Off when the file has no `balancer:` section: no default can
    /// know what an instance of yours can take (`instanceRequestsPerSecond` is required).
    public struct Balancer: Sendable, Hashable {
        public var enabled = true
        /// How often the leader judges the load (ms).
        public var intervalMs = 1_000
        /// What one instance is sized for, in requests per second (required).
        public var instanceRequestsPerSecond = 0
        /// The components' CPU one instance is sized for, permille of a core (2000 = two
        /// cores); 0: CPU is not an input.
        public var instanceCpuPermille = 0
        /// An instance's upstream p99 above this (ms) is an overload; 0: not an input.
        public var p99HighMs = 0
        /// An instance's share of 5xx answers above this (percent) is an overload; 0: not an input.
        public var errorPercentHigh = 0
        public var highWaterPercent = 80
        public var targetPercent = 60
        public var lowWaterPercent = 20
        public var overloadWindowMs = 10_000
        public var underloadWindowMs = 60_000
        public var cooldownMs = 30_000
        public var tenantCooldownMs = 300_000
        public var minInstances = 1
        public var maxInstances = 5
        public var dedicatedSharePercent = 50
        /// The provider new instances come from; nil: the first of `providers:`.
        public var provider: String?

        public static let intervalMsRange = 100...60_000
        public static let instanceRequestsPerSecondRange = 1...10_000_000
        public static let instanceCpuPermilleRange = 0...1_000_000
        public static let p99HighMsRange = 0...600_000
        public static let percentRange = 0...100
        public static let markPercentRange = 1...100
        public static let windowMsRange = 1_000...86_400_000
        public static let cooldownMsRange = 0...86_400_000
        public static let instancesRange = 1...1_000

        public init() {}
    }

    /// `events:`: what the state keeps of the balancer's decisions.
    public struct Events: Sendable, Hashable {
        /// The newest events kept in the replicated state; older ones are dropped.
        public var retain = 10_000
        public static let retainRange = 100...100_000

        public static let defaults = Events()
    }
}

extension ConfigDecoder {
    static let balancerKeys = [
        "enabled", "intervalMs", "instanceRequestsPerSecond", "instanceCpuPermille", "p99HighMs", "errorPercentHigh",
        "highWaterPercent", "targetPercent", "lowWaterPercent", "overloadWindowMs", "underloadWindowMs", "cooldownMs",
        "tenantCooldownMs", "minInstances", "maxInstances", "dedicatedSharePercent", "provider",
    ]
    static let eventsKeys = ["retain"]

    mutating func balancer(_ node: Node, at keyPath: String, providers: [ClusterConfig.Provider]) throws(ConfigError) -> ClusterConfig.Balancer {
        record(keyPath, node)
        let map = try reader.mapping(node, at: keyPath, allowed: Self.balancerKeys, what: "balancer settings (\(Self.balancerKeys.joined(separator: ", ")))")
        var b = ClusterConfig.Balancer()
        typealias B = ClusterConfig.Balancer
        if let v = map.value("enabled") {
            record(map.path("enabled"), v)
            b.enabled = try reader.boolean(v, at: map.path("enabled"))
        }
        try read(map, "intervalMs", B.intervalMsRange, into: &b.intervalMs)
        let capacity = try reader.required(map, "instanceRequestsPerSecond")
        record(map.path("instanceRequestsPerSecond"), capacity)
        b.instanceRequestsPerSecond = try reader.integer(capacity, at: map.path("instanceRequestsPerSecond"), in: B.instanceRequestsPerSecondRange)
        try read(map, "instanceCpuPermille", B.instanceCpuPermilleRange, into: &b.instanceCpuPermille)
        try read(map, "p99HighMs", B.p99HighMsRange, into: &b.p99HighMs)
        try read(map, "errorPercentHigh", B.percentRange, into: &b.errorPercentHigh)
        try read(map, "highWaterPercent", B.markPercentRange, into: &b.highWaterPercent)
        try read(map, "targetPercent", B.markPercentRange, into: &b.targetPercent)
        try read(map, "lowWaterPercent", B.markPercentRange, into: &b.lowWaterPercent)
        try read(map, "overloadWindowMs", B.windowMsRange, into: &b.overloadWindowMs)
        try read(map, "underloadWindowMs", B.windowMsRange, into: &b.underloadWindowMs)
        try read(map, "cooldownMs", B.cooldownMsRange, into: &b.cooldownMs)
        try read(map, "tenantCooldownMs", B.cooldownMsRange, into: &b.tenantCooldownMs)
        try read(map, "minInstances", B.instancesRange, into: &b.minInstances)
        try read(map, "maxInstances", B.instancesRange, into: &b.maxInstances)
        try read(map, "dedicatedSharePercent", B.markPercentRange, into: &b.dedicatedSharePercent)
        if let v = map.value("provider") {
            record(map.path("provider"), v)
            let name = try reader.string(v, at: map.path("provider"))
            guard providers.contains(where: { $0.name == name }) else {
                let names = providers.map(\.name)
                throw reader.error(map.path("provider"), v, names.isEmpty
                    ? "names provider '\(name)', but the file has no providers: section"
                    : "names provider '\(name)'; the file's providers: \(names.joined(separator: ", "))")
            }
            b.provider = name
        }
        // The marks must be ordered, or a move could push an instance straight back over the
        // mark it fled (flapping).
        guard b.lowWaterPercent < b.targetPercent, b.targetPercent < b.highWaterPercent else {
            let key = map.value("targetPercent") != nil ? "targetPercent" : map.value("lowWaterPercent") != nil ? "lowWaterPercent" : "highWaterPercent"
            throw reader.error(map.path(key), map.value(key) ?? node,
                               "the marks must be ordered lowWaterPercent < targetPercent < highWaterPercent, got \(b.lowWaterPercent), \(b.targetPercent), \(b.highWaterPercent)")
        }
        guard b.minInstances <= b.maxInstances else {
            let key = map.value("minInstances") != nil ? "minInstances" : "maxInstances"
            throw reader.error(map.path(key), map.value(key) ?? node, "minInstances (\(b.minInstances)) is more than maxInstances (\(b.maxInstances))")
        }
        return b
    }

    mutating func events(_ node: Node, at keyPath: String) throws(ConfigError) -> ClusterConfig.Events {
        record(keyPath, node)
        let map = try reader.mapping(node, at: keyPath, allowed: Self.eventsKeys, what: "event settings (retain)")
        var e = ClusterConfig.Events()
        try read(map, "retain", ClusterConfig.Events.retainRange, into: &e.retain)
        return e
    }
}
