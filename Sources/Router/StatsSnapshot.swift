/// The load the local router saw over the last window: what the peer reports to the leader's
/// balancer (soft state, never in the replicated log). Rates are averages over the whole window
/// (`windowSeconds`), so in the first window after start they under-state the load.
public struct StatsSnapshot: Sendable, Codable, Hashable {
    /// Load of one tenant over the window.
    public struct Tenant: Sendable, Codable, Hashable {
        public var tenant: String
        /// Requests logged in the window.
        public var requests: Int
        /// `requests` per second of window.
        public var requestsPerSecond: Double
        /// Responses with status 400...499, and their share of `requests` (0...1).
        public var status4xx: Int
        public var status4xxShare: Double
        /// Responses with status 500...599, and their share of `requests` (0...1).
        public var status5xx: Int
        public var status5xxShare: Double
        /// Bytes sent to clients per second of window.
        public var bytesPerSecond: Double
        /// Requests that reached an upstream (the samples behind the latency quantiles).
        public var upstreamSamples: Int
        /// Upstream latency quantiles in ms (see `StatsLatencyHistogram` for the bin bounds);
        /// nil when no request reached an upstream.
        public var upstreamP50Ms: Int64?
        public var upstreamP99Ms: Int64?
    }

    /// Load of one instance (the `instance` field: where the router sent the requests).
    public struct Instance: Sendable, Codable, Hashable {
        public var instance: String
        public var requests: Int
        public var requestsPerSecond: Double
        public var upstreamSamples: Int
        /// Upstream latency p99 in ms; nil when no request reached an upstream.
        public var upstreamP99Ms: Int64?
        /// Responses with status 500...599.
        public var status5xx: Int = 0
    }

    /// The `nowMs` the snapshot was taken at (the caller's clock, Unix ms for the listener).
    public var takenAtMs: Int64
    /// Length of the window the numbers cover, in seconds.
    public var windowSeconds: Double
    /// Tracked tenants, by `requestsPerSecond` descending, then tenant id.
    public var tenants: [Tenant]
    /// Tracked instances, by `requestsPerSecond` descending, then instance id.
    public var instances: [Instance]
    /// All requests in the window, whether attributed to a tracked tenant or not.
    public var requests: Int
    /// Requests in the window that NGINX resolved to no tenant (empty `tenant`).
    public var unattributedRequests: Int
    /// Requests in the window of tenants beyond `tenantsMax` (counted, not itemized).
    public var overflowTenantRequests: Int
    /// Requests in the window of instances beyond `instancesMax` (counted, not itemized).
    public var overflowInstanceRequests: Int
    /// Datagrams refused by the parser since start (cumulative, not windowed), in total and by
    /// `StatsParseError.Kind` raw value.
    public var invalidDatagramsTotal: Int
    public var invalidDatagramsByKind: [String: Int]
    /// Datagrams the kernel dropped since start because the receive buffer was full (cumulative).
    public var droppedDatagramsTotal: Int

    /// The `n` busiest tenants (the head of `tenants`, already sorted).
    public func topTenants(_ n: Int) -> [Tenant] {
        precondition(n >= 0, "topTenants(\(n))")
        return Array(tenants.prefix(n))
    }
}
