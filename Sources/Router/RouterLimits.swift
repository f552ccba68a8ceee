/// Bounds on a `RouterSpec`: `RouterSpec.validate()` refuses a spec beyond any of them.
/// They keep the rendered config, nginx's shared memory and the per-request work bounded.
public enum RouterLimits {
    /// As `ClusterLimits.tenantsMax`.
    public static let tenantsMax = 250_000
    /// As `ClusterLimits.instancesMax` × `componentsPerTenantMax`.
    public static let upstreamsMax = 16_384
    /// As `ClusterLimits.componentsPerTenantMax`.
    public static let componentsPerTenantMax = 16
    /// DNS label: tenant ids are host names.
    public static let tenantIdBytesMax = 63
    /// Instance and component names (as `ClusterLimits.idBytesMax`).
    public static let nameBytesMax = 64
    /// A host name (RFC 1035).
    public static let hostBytesMax = 253
    /// Absolute paths (prefix, CA file).
    public static let pathBytesMax = 512
    /// nginx evaluates every `limit_req` of a location per request and each rate needs its
    /// own shared-memory zone: the peer must quantize tenant rates to at most this many values.
    public static let distinctRequestRatesMax = 32
    /// As `distinctRequestRatesMax`, for `limit_conn`.
    public static let distinctConnectionLimitsMax = 32
    public static let requestsPerSecondMax: UInt32 = 1_000_000
    public static let connectionsMax: UInt32 = 1_000_000
    public static let workerProcessesMax = 64
    public static let authCacheSecondsMax = 300
    public static let routeTableMiBMax = 1_024
}

/// Why a `RouterSpec` was refused: `field` names the offending field (e.g. `tenants[3].id`),
/// `reason` says which rule it broke. The rendered config is never produced from such a spec.
public struct RouterSpecError: Error, Sendable, Hashable, CustomStringConvertible {
    public let field: String
    public let reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "invalid router spec: \(field): \(reason)" }
}
