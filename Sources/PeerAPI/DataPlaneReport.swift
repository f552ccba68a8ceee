import ClusterModel

// The data plane's soft state: what each member's agent and router report. Never in
// the replicated log; the leader polls every member's `GET /v1/dataplane` for its move driver
// (readiness, router acks), and `peer status` shows it.

/// One member's agent and router, as it reports them (`GET /v1/dataplane`).
public struct DataPlaneReport: Codable, Sendable, Hashable {
    /// The member's NGINX, `http://host:port`; nil when it runs no router.
    public var routerURL: String?
    /// The highest applied index whose routing NGINX is confirmed to run (the router polled its
    /// control address and saw that generation). Nil when it runs no router or none confirmed yet.
    public var routerConfirmedIndex: UInt64?
    /// The router's last failure (a refused config, an unconfirmed reload), if the latest apply failed.
    public var routerError: String?
    /// True when this member runs components (its config has a `components` address).
    public var supervised: Bool
    /// Tenants every needed component of this instance serves (health probe with X-Tenant-ID).
    public var servingTenants: [String]
    /// The routing index whose placements `servingTenants` reflects (the agent acted on it);
    /// nil before the first. The leader activates a placement only on a report as of its index.
    public var servingAsOfIndex: UInt64?
    public var components: [ComponentReport]
    /// Request statistics from the router's access log (the seed's "NGINX statistics").
    public var load: LoadReport?

    public init(routerURL: String?, routerConfirmedIndex: UInt64?, routerError: String?, supervised: Bool,
                servingTenants: [String], servingAsOfIndex: UInt64? = nil, components: [ComponentReport], load: LoadReport?) {
        self.servingAsOfIndex = servingAsOfIndex
        self.routerURL = routerURL
        self.routerConfirmedIndex = routerConfirmedIndex
        self.routerError = routerError
        self.supervised = supervised
        self.servingTenants = servingTenants
        self.components = components
        self.load = load
    }
}

/// One supervised component process.
public struct ComponentReport: Codable, Sendable, Hashable {
    public var name: String
    public var pid: Int32?
    /// `starting`, `running`, `healthy`, `unhealthy`, `backingOff`, `crashLoop`, `stopping`, `stopped`.
    public var state: String
    public var restarts: Int
    public var lastExit: String?
    /// CPU used over the last sample interval, in permille of one core.
    public var cpuPermille: Int?
    public var rssBytes: Int?
    public var tenants: Int

    public init(name: String, pid: Int32?, state: String, restarts: Int, lastExit: String?, cpuPermille: Int?, rssBytes: Int?, tenants: Int) {
        self.name = name
        self.pid = pid
        self.state = state
        self.restarts = restarts
        self.lastExit = lastExit
        self.cpuPermille = cpuPermille
        self.rssBytes = rssBytes
        self.tenants = tenants
    }
}

/// Requests through this member's router over the statistics window.
public struct LoadReport: Codable, Sendable, Hashable {
    public var windowSeconds: Int
    public var requestsPerSecond: Double
    public var errorsPerSecond: Double
    /// Upstream latency p99 over all tenants, milliseconds.
    public var upstreamP99Ms: Double?
    /// The busiest tenants, by request rate (at most `topTenantsMax`): the balancer names the
    /// tenants that cause an overload from these (a tenant below every router's top is too quiet
    /// to matter).
    public var topTenants: [TenantLoad]
    public var invalidDatagrams: Int
    /// Requests by the instance this router sent them to (at most `instancesMax`); nil from a
    /// peer that predates it.
    public var instances: [InstanceLoad]?

    public static let topTenantsMax = 32
    public static let instancesMax = 1024

    public init(windowSeconds: Int, requestsPerSecond: Double, errorsPerSecond: Double, upstreamP99Ms: Double?, topTenants: [TenantLoad],
                invalidDatagrams: Int, instances: [InstanceLoad]? = nil) {
        self.windowSeconds = windowSeconds
        self.requestsPerSecond = requestsPerSecond
        self.errorsPerSecond = errorsPerSecond
        self.upstreamP99Ms = upstreamP99Ms
        self.topTenants = topTenants
        self.invalidDatagrams = invalidDatagrams
        self.instances = instances
    }
}

/// Requests one router sent to one instance over its statistics window.
public struct InstanceLoad: Codable, Sendable, Hashable {
    public var instance: String
    public var requestsPerSecond: Double
    public var errorsPerSecond: Double
    public var upstreamP99Ms: Double?

    public init(instance: String, requestsPerSecond: Double, errorsPerSecond: Double, upstreamP99Ms: Double?) {
        self.instance = instance
        self.requestsPerSecond = requestsPerSecond
        self.errorsPerSecond = errorsPerSecond
        self.upstreamP99Ms = upstreamP99Ms
    }
}

public struct TenantLoad: Codable, Sendable, Hashable {
    public var tenant: String
    public var requestsPerSecond: Double
    public var errorsPerSecond: Double
    public var upstreamP50Ms: Double?
    public var upstreamP99Ms: Double?

    public init(tenant: String, requestsPerSecond: Double, errorsPerSecond: Double, upstreamP50Ms: Double?, upstreamP99Ms: Double?) {
        self.tenant = tenant
        self.requestsPerSecond = requestsPerSecond
        self.errorsPerSecond = errorsPerSecond
        self.upstreamP50Ms = upstreamP50Ms
        self.upstreamP99Ms = upstreamP99Ms
    }
}

/// `POST /v1/tenants/{id}/move`.
public struct MoveTenantRequest: Codable, Sendable, Hashable {
    /// The target instance id.
    public var to: String
    /// The move's operation id; the server makes one when absent. A retry with the same id
    /// finds the first attempt's operation.
    public var operationId: String?
    public var clientId: String?
    public var sequence: UInt64?

    public init(to: String, operationId: String? = nil, clientId: String? = nil, sequence: UInt64? = nil) {
        self.to = to
        self.operationId = operationId
        self.clientId = clientId
        self.sequence = sequence
    }
}

/// An operation (`GET /v1/operations/{id}`; the answer of a move).
public struct OperationInfo: Codable, Sendable, Hashable {
    public var id: String
    public var tenant: String
    /// `provision`, `deprovision`, `update`, `move`.
    public var kind: String
    /// `in progress`, `succeeded`, `failed`.
    public var state: String
    public var description: String
    public var startedAtMs: Int64
    public var updatedAtMs: Int64
    public var sourceInstance: String?
    public var targetInstance: String?
    /// For a move in progress: the tenant's placements as `instance:phase`.
    public var placements: [String]
}

extension OperationInfo {
    init(_ op: BrokerOperation, state: ClusterState) {
        id = op.id
        tenant = op.tenantID
        kind = Names.operationKind(op.kind)
        self.state = op.state == .inProgress ? "in progress" : op.state == .succeeded ? "succeeded" : op.state == .failed ? "failed" : "unknown"
        description = op.description_p
        startedAtMs = op.startedMs
        updatedAtMs = op.updatedMs
        sourceInstance = op.sourceInstanceID.isEmpty ? nil : op.sourceInstanceID
        targetInstance = op.targetInstanceID.isEmpty ? nil : op.targetInstanceID
        placements = state.placements(ofTenant: op.tenantID).map { "\($0.instanceID):\(Names.placementPhase($0.phase))" }
    }
}

extension Names {
    static func placementPhase(_ p: PBPlacementPhase) -> String {
        switch p {
        case .preparing: return "preparing"
        case .active: return "active"
        case .draining: return "draining"
        case .gone: return "gone"
        default: return "unknown"
        }
    }
}
