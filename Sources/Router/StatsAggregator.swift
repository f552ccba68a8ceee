/// Sliding-window load per tenant and per instance, from `StatsRecord`s. A pure value type: no
/// clock, no I/O; every call takes the caller's `nowMs`, so tests drive it with explicit times.
///
/// The window is a ring of `bucketCount` buckets of `bucketMs` each (default 10 x 1 s). A record
/// lands in the bucket of the `nowMs` it was added at (its arrival: on loopback that is when NGINX
/// logged it, and a bogus `$msec` cannot place counts outside the window). Advancing into a new
/// bucket clears the oldest one. If `nowMs` goes backwards (a wall clock stepped back) the record
/// counts in the newest bucket: the ring never moves backwards.
///
/// Bounds: at most `tenantsMax` tenants and `instancesMax` instances are tracked at once (those
/// with a request in a live bucket); requests of others count in the overflow counters until the
/// tracked ones age out of the window. Memory is therefore O(bucketCount x (tenantsMax + instancesMax)).
public struct StatsAggregator: Sendable {
    /// The window's shape and the tracking bounds.
    public struct Configuration: Sendable, Hashable {
        /// One bucket's span, in milliseconds.
        public var bucketMs: Int64
        /// Buckets in the window; the window is `bucketMs * bucketCount` ms.
        public var bucketCount: Int
        /// Most tenants tracked at once; beyond it their requests count as overflow.
        public var tenantsMax: Int
        /// Most instances tracked at once; beyond it their requests count as overflow.
        public var instancesMax: Int

        public static let bucketMsDefault: Int64 = 1_000
        public static let bucketCountDefault = 10
        public static let bucketCountMax = 3_600
        public static let tenantsMaxDefault = 10_000
        public static let instancesMaxDefault = 1_024

        public init(
            bucketMs: Int64 = bucketMsDefault, bucketCount: Int = bucketCountDefault,
            tenantsMax: Int = tenantsMaxDefault, instancesMax: Int = instancesMaxDefault
        ) {
            precondition(bucketMs > 0, "bucketMs \(bucketMs) must be > 0")
            precondition((1...Self.bucketCountMax).contains(bucketCount), "bucketCount \(bucketCount) not in 1...\(Self.bucketCountMax)")
            precondition(tenantsMax >= 0 && instancesMax >= 0, "tenantsMax \(tenantsMax), instancesMax \(instancesMax) must be >= 0")
            self.bucketMs = bucketMs
            self.bucketCount = bucketCount
            self.tenantsMax = tenantsMax
            self.instancesMax = instancesMax
        }

        /// The window's length, in milliseconds.
        public var windowMs: Int64 { bucketMs * Int64(bucketCount) }
    }

    /// Counts of one key (tenant or instance) in one bucket.
    struct Counters: Sendable {
        var requests = 0
        var status4xx = 0
        var status5xx = 0
        var bytes: Int64 = 0
        var upstream = StatsLatencyHistogram()

        mutating func add(_ record: StatsRecord) {
            requests += 1
            if (400...499).contains(record.status) { status4xx += 1 }
            if (500...599).contains(record.status) { status5xx += 1 }
            bytes += record.bytes
            if let seconds = record.upstreamTimeSeconds { upstream.record(ms: Int64((seconds * 1000).rounded())) }
        }

        mutating func merge(_ other: Counters) {
            requests += other.requests
            status4xx += other.status4xx
            status5xx += other.status5xx
            bytes += other.bytes
            upstream.merge(other.upstream)
        }
    }

    /// One bucket of the ring. `epoch` is `nowMs / bucketMs` of the span it covers (nil: unused).
    struct Bucket: Sendable {
        var epoch: Int64? = nil
        var tenants: [String: Counters] = [:]
        var instances: [String: Counters] = [:]
        var requests = 0
        var unattributedRequests = 0
        var overflowTenantRequests = 0
        var overflowInstanceRequests = 0
    }

    public let configuration: Configuration
    private var buckets: [Bucket]
    /// The newest epoch the ring has advanced to; nil before the first record.
    private var headEpoch: Int64? = nil
    /// Tracked tenants -> how many live buckets hold them. Invariant: `count <= tenantsMax`, and
    /// a tenant is here exactly when some bucket's `tenants` holds it.
    private var trackedTenants: [String: Int] = [:]
    /// The same for instances, bounded by `instancesMax`.
    private var trackedInstances: [String: Int] = [:]
    private var invalidByKind: [StatsParseError.Kind: Int] = [:]
    private var droppedTotal = 0

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        buckets = Array(repeating: Bucket(), count: configuration.bucketCount)
    }

    /// Counts `record` in the bucket of `nowMs` (Unix ms, or any clock the caller uses
    /// consistently for `add` and `snapshot`).
    public mutating func add(_ record: StatsRecord, nowMs: Int64) {
        let epoch = advance(to: epoch(of: nowMs))
        let slot = slot(of: epoch)
        buckets[slot].requests += 1
        if let tenant = record.tenant {
            if admit(tenant, in: \.tenants, slot: slot, tracked: \.trackedTenants, max: configuration.tenantsMax) {
                buckets[slot].tenants[tenant, default: Counters()].add(record)
            } else {
                buckets[slot].overflowTenantRequests += 1
            }
        } else {
            buckets[slot].unattributedRequests += 1
        }
        if let instance = record.instance {
            if admit(instance, in: \.instances, slot: slot, tracked: \.trackedInstances, max: configuration.instancesMax) {
                buckets[slot].instances[instance, default: Counters()].add(record)
            } else {
                buckets[slot].overflowInstanceRequests += 1
            }
        }
        assert(trackedTenants.count <= configuration.tenantsMax && trackedInstances.count <= configuration.instancesMax)
    }

    /// Counts a datagram the parser refused (cumulative, reported in every snapshot).
    public mutating func countInvalid(_ kind: StatsParseError.Kind) {
        invalidByKind[kind, default: 0] += 1
    }

    /// Counts datagrams the kernel dropped (cumulative, reported in every snapshot).
    public mutating func countDropped(_ datagrams: Int) {
        precondition(datagrams >= 0, "countDropped(\(datagrams))")
        droppedTotal += datagrams
    }

    /// The load over the window that ends at `nowMs`. Does not change the aggregator.
    public func snapshot(nowMs: Int64) -> StatsSnapshot {
        let nowEpoch = max(epoch(of: nowMs), headEpoch ?? Int64.min)
        let oldestEpoch = nowEpoch - Int64(configuration.bucketCount) + 1
        var tenants: [String: Counters] = [:]
        var instances: [String: Counters] = [:]
        var total = Bucket()
        for bucket in buckets {
            guard let epoch = bucket.epoch, epoch >= oldestEpoch, epoch <= nowEpoch else { continue }
            tenants.merge(bucket.tenants) { a, b in var sum = a; sum.merge(b); return sum }
            instances.merge(bucket.instances) { a, b in var sum = a; sum.merge(b); return sum }
            total.requests += bucket.requests
            total.unattributedRequests += bucket.unattributedRequests
            total.overflowTenantRequests += bucket.overflowTenantRequests
            total.overflowInstanceRequests += bucket.overflowInstanceRequests
        }
        let windowSeconds = Double(configuration.windowMs) / 1000
        let tenantLoads = tenants.map { Self.tenantLoad($0.key, $0.value, windowSeconds: windowSeconds) }
            .sorted { ($0.requestsPerSecond, $1.tenant) > ($1.requestsPerSecond, $0.tenant) }
        let instanceLoads = instances.map { Self.instanceLoad($0.key, $0.value, windowSeconds: windowSeconds) }
            .sorted { ($0.requestsPerSecond, $1.instance) > ($1.requestsPerSecond, $0.instance) }
        return StatsSnapshot(
            takenAtMs: nowMs, windowSeconds: windowSeconds, tenants: tenantLoads, instances: instanceLoads,
            requests: total.requests, unattributedRequests: total.unattributedRequests,
            overflowTenantRequests: total.overflowTenantRequests, overflowInstanceRequests: total.overflowInstanceRequests,
            invalidDatagramsTotal: invalidByKind.values.reduce(0, +),
            invalidDatagramsByKind: Dictionary(uniqueKeysWithValues: invalidByKind.map { ($0.key.rawValue, $0.value) }),
            droppedDatagramsTotal: droppedTotal
        )
    }

    /// The `n` busiest tenants over the window that ends at `nowMs`.
    public func topTenants(_ n: Int, nowMs: Int64) -> [StatsSnapshot.Tenant] {
        snapshot(nowMs: nowMs).topTenants(n)
    }

    /// Tenants tracked now (those with a request in a live bucket); at most `tenantsMax`.
    public var trackedTenantCount: Int { trackedTenants.count }

    // MARK: - Ring

    private func epoch(of nowMs: Int64) -> Int64 {
        // Floor division, so times before 1970 (tests, odd clocks) still order correctly.
        let quotient = nowMs / configuration.bucketMs
        return nowMs % configuration.bucketMs < 0 ? quotient - 1 : quotient
    }

    private func slot(of epoch: Int64) -> Int {
        let count = Int64(configuration.bucketCount)
        return Int(((epoch % count) + count) % count)
    }

    /// Moves the ring's head to `epoch` (never backwards), clearing the buckets it passes;
    /// returns the epoch to count in.
    private mutating func advance(to epoch: Int64) -> Int64 {
        guard let head = headEpoch else {
            headEpoch = epoch
            buckets[slot(of: epoch)].epoch = epoch
            return epoch
        }
        guard epoch > head else { return head }
        // At most bucketCount buckets are cleared, however far time jumped.
        let first = max(head + 1, epoch - Int64(configuration.bucketCount) + 1)
        for newEpoch in first...epoch {
            let slot = slot(of: newEpoch)
            expire(slot)
            buckets[slot].epoch = newEpoch
        }
        headEpoch = epoch
        return epoch
    }

    private mutating func expire(_ slot: Int) {
        for tenant in buckets[slot].tenants.keys { Self.release(tenant, from: &trackedTenants) }
        for instance in buckets[slot].instances.keys { Self.release(instance, from: &trackedInstances) }
        buckets[slot] = Bucket()
    }

    private static func release(_ key: String, from tracked: inout [String: Int]) {
        guard let count = tracked[key] else { preconditionFailure("\(key) in a bucket but not tracked") }
        tracked[key] = count > 1 ? count - 1 : nil
    }

    /// Whether `key` may be counted in bucket `slot`: it is already there, or it is tracked, or
    /// there is room to track it. Keeps `tracked` in step with the buckets.
    private mutating func admit(
        _ key: String, in keyPath: KeyPath<Bucket, [String: Counters]>, slot: Int,
        tracked: WritableKeyPath<StatsAggregator, [String: Int]>, max: Int
    ) -> Bool {
        if buckets[slot][keyPath: keyPath][key] != nil { return true }
        if let count = self[keyPath: tracked][key] {
            self[keyPath: tracked][key] = count + 1
            return true
        }
        guard self[keyPath: tracked].count < max else { return false }
        self[keyPath: tracked][key] = 1
        return true
    }

    // MARK: - Loads

    private static func tenantLoad(_ tenant: String, _ counters: Counters, windowSeconds: Double) -> StatsSnapshot.Tenant {
        let requests = Double(counters.requests)
        return StatsSnapshot.Tenant(
            tenant: tenant, requests: counters.requests, requestsPerSecond: requests / windowSeconds,
            status4xx: counters.status4xx, status4xxShare: share(counters.status4xx, of: counters.requests),
            status5xx: counters.status5xx, status5xxShare: share(counters.status5xx, of: counters.requests),
            bytesPerSecond: Double(counters.bytes) / windowSeconds,
            upstreamSamples: counters.upstream.total,
            upstreamP50Ms: counters.upstream.quantileMs(0.5), upstreamP99Ms: counters.upstream.quantileMs(0.99)
        )
    }

    private static func instanceLoad(_ instance: String, _ counters: Counters, windowSeconds: Double) -> StatsSnapshot.Instance {
        StatsSnapshot.Instance(
            instance: instance, requests: counters.requests, requestsPerSecond: Double(counters.requests) / windowSeconds,
            upstreamSamples: counters.upstream.total, upstreamP99Ms: counters.upstream.quantileMs(0.99),
            status5xx: counters.status5xx
        )
    }

    private static func share(_ part: Int, of whole: Int) -> Double {
        whole == 0 ? 0 : Double(part) / Double(whole)
    }
}
