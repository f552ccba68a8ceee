import ClusterModel
import PeerNode
import Raft

// The admin API's JSON bodies (docs/api.md). Field names are part of the interface: tools and
// tests parse them. Add fields; never rename or remove one.

/// One member's own report (`GET /v1/status`).
public struct MemberStatus: Codable, Sendable, Hashable {
    public var id: UInt64
    /// Peer-to-peer mutual-TLS address, host:port.
    public var address: String
    /// Admin HTTPS API address, host:port.
    public var apiAddress: String
    /// `voter` or `learner` (or `none` if the member is not in the configuration it knows).
    public var role: String
    /// `leader`, `follower`, `candidate`, `preCandidate`; the CLI adds `unreachable`.
    public var state: String
    public var term: UInt64
    /// The leader this member knows, or nil.
    public var leader: UInt64?
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var firstIndex: UInt64
    public var lastIndex: UInt64
    public var snapshotIndex: UInt64
    /// SHA-256 of the applied cluster state, hex.
    public var stateDigest: String
    public var pid: Int32
    public var version: String
    public var protocolVersion: UInt32
    /// Milliseconds since the Unix epoch when this member answered.
    public var reportedAtMs: Int64
    public var startedAtMs: Int64
    public var haltReason: String?
    /// On the leader: replication to each other member.
    public var progress: [FollowerProgress]?
    /// Milliseconds since this member last heard from each other member (keys are ids).
    public var lastContactMs: [String: Int]
    public var voters: [UInt64]
    public var learners: [UInt64]
    public var tenantCount: Int
    public var droppedMessages: Int
    /// Snapshots received from a leader and installed since this process started.
    public var snapshotsInstalled: Int
    /// The last applied entry that changed the cluster version (0: none since this member's
    /// snapshot). A binary of an older release may replace this member's once `snapshotIndex`
    /// is at least this: it then never replays an entry of the newer version.
    public var versionChangeIndex: UInt64? = nil
    /// Bytes this member's data directory holds (store, WAL, the agent's files and logs).
    public var dataBytes: UInt64? = nil
    /// How this report was read: `local` (this member's applied state, possibly stale) or
    /// `linearizable` (after a ReadIndex round through the leader).
    public var source: String
    public var instances: [InstanceInfo]
    /// The HTTP address of this member's NGINX (`http://host:port`); nil when it runs no router.
    public var routerURL: String?
    /// This member's agent and router (components, served tenants, confirmed config, load).
    public var dataPlane: DataPlaneReport?
    /// The balancer as this member's state has it: paused or not, and its last event.
    public var balancer: BalancerInfo?
    /// What each other member's messages proved to this one about its durable state since this
    /// member's process started: a member restarting on an older data dir reads it here and
    /// refuses to start (docs/operations.md §A data dir older than the cluster remembers).
    public var witnessed: [WitnessedState]? = nil
}

/// One member's durable state as another member saw it (`PeerNode.Witnessed`).
public struct WitnessedState: Codable, Sendable, Hashable {
    public var id: UInt64
    /// The highest term the member sent.
    public var term: UInt64
    /// The last append it acknowledged: its index, and the term it was in.
    public var ackTerm: UInt64
    public var ackIndex: UInt64

    public init(id: UInt64, term: UInt64, ackTerm: UInt64, ackIndex: UInt64) {
        self.id = id
        self.term = term
        self.ackTerm = ackTerm
        self.ackIndex = ackIndex
    }
}

public struct FollowerProgress: Codable, Sendable, Hashable {
    public var id: UInt64
    public var match: UInt64
    public var next: UInt64
    /// `probe`, `replicate` or `snapshot`.
    public var state: String
    public var learner: Bool
    public var recentActive: Bool
}

public struct InstanceInfo: Codable, Sendable, Hashable {
    public var id: String
    public var address: String
    public var role: String
    /// joining, active, draining, drained or removed.
    public var state: String
    public var version: String
    /// Tenants it serves now.
    public var activeTenants: Int
    /// Placements on it in any phase (a drain is done when this is 0). Nil from older peers.
    public var placements: Int?
    /// When it entered its state (leader's clock, Unix ms). Nil from older peers.
    public var stateSinceMs: Int64?
    /// Its admin API, router and components addresses (nil when unknown or absent).
    public var apiAddress: String?
    public var routerAddress: String?
    public var componentsAddress: String?
    /// `provision` while it is being added, `decommission` while it is being removed.
    public var intent: String?
    /// The provider that created it (nil: a config file peer), or that an add will use.
    public var provider: String?
    /// When that intent gives up (an add) or is due (leader's clock, Unix ms).
    public var intentDeadlineMs: Int64?
    /// Why it is in its state, when the operator said (cluster version 2).
    public var stateReason: String?
    /// The cluster-model protocol version it last reported.
    public var protocolVersion: UInt32?

    public init(id: String, address: String, role: String, state: String, version: String, activeTenants: Int, placements: Int? = nil, stateSinceMs: Int64? = nil) {
        self.id = id
        self.address = address
        self.role = role
        self.state = state
        self.version = version
        self.activeTenants = activeTenants
        self.placements = placements
        self.stateSinceMs = stateSinceMs
    }
}

/// `GET|PUT|DELETE /v1/failpoints`: this peer's failpoints.
public struct FailpointsInfo: Codable, Sendable, Hashable {
    /// Whether the peer was started with `PEER_FAILPOINT` (else nothing can be armed).
    public var enabled: Bool
    public var armed: String?
    public var names: [String]
}

/// `POST /v1/instances/ID/drain` and `/activate`: the client session, both optional (a retry
/// with the same pair applies once).
/// `POST /v1/instances` (add one through the provider) and `DELETE /v1/instances/:id` (remove:
/// drain, leave, destroy). Every field optional.
public struct InstanceChangeRequest: Codable, Sendable, Hashable {
    public var clientId: String?
    public var sequence: UInt64?
    /// How long the add may take before the leader undoes it (default: the provider's
    /// `addTimeoutMs`); for a removal, how long before it is reported overdue.
    public var timeoutMs: Int64?
    /// The add's provider, by name (default: the first of the cluster's `providers`).
    public var provider: String?

    public init(clientId: String? = nil, sequence: UInt64? = nil, timeoutMs: Int64? = nil, provider: String? = nil) {
        self.clientId = clientId
        self.sequence = sequence
        self.timeoutMs = timeoutMs
        self.provider = provider
    }
}

public struct InstanceStateRequest: Codable, Sendable, Hashable {
    public var clientId: String?
    public var sequence: UInt64?
    /// Why (e.g. "upgrade to 0.2.0"): recorded once the cluster version is 2, dropped before.
    public var reason: String?

    public init(clientId: String? = nil, sequence: UInt64? = nil, reason: String? = nil) {
        self.clientId = clientId
        self.sequence = sequence
        self.reason = reason
    }
}

public struct TenantInfo: Codable, Sendable, Hashable {
    public var id: String
    public var plan: String
    public var state: String
    public var components: [String]
    /// The instance serving it, if any.
    public var activeInstance: String?
    public var createdAtMs: Int64
}

/// `POST /v1/tenants`.
public struct CreateTenantRequest: Codable, Sendable, Hashable {
    public var id: String
    public var plan: String?
    public var components: [String]?
    /// Client session (Raft thesis §6.3): a retry with the same pair applies at most once.
    public var clientId: String?
    public var sequence: UInt64?

    public init(id: String, plan: String? = nil, components: [String]? = nil, clientId: String? = nil, sequence: UInt64? = nil) {
        self.id = id
        self.plan = plan
        self.components = components
        self.clientId = clientId
        self.sequence = sequence
    }
}

/// Every error body. `retryable`: the request changed nothing, or (with `outcomeUnknown`) may
/// have; retry it with the same client id and sequence.
public struct APIError: Codable, Sendable, Hashable, Error {
    public var error: String
    /// A stable code: `badRequest`, `notFound`, `conflict`, `notLeader`, `noLeader`,
    /// `outcomeUnknown`, `unavailable`, `halted`, `unauthorized`, `tooLarge`, ...
    public var code: String
    public var retryable: Bool
    public var outcomeUnknown: Bool
    public var leader: UInt64?

    public init(_ code: String, _ error: String, retryable: Bool = false, outcomeUnknown: Bool = false, leader: UInt64? = nil) {
        self.code = code
        self.error = error
        self.retryable = retryable
        self.outcomeUnknown = outcomeUnknown
        self.leader = leader
    }
}

/// The result of a write.
public struct WriteResult: Codable, Sendable, Hashable {
    /// `applied` or `duplicate` (a retry of a request that had applied).
    public var result: String
    public var tenant: TenantInfo?
}

extension TenantInfo {
    init(_ t: Tenant, state: ClusterState) {
        id = t.id
        plan = t.plan
        self.state = Names.tenantState(t.state)
        components = t.components
        activeInstance = state.activeInstance(ofTenant: t.id)
        createdAtMs = t.createdMs
    }
}

enum Names {
    static func tenantState(_ s: PBTenantState) -> String {
        switch s {
        case .provisioning: return "provisioning"
        case .ready: return "ready"
        case .deprovisioning: return "deprovisioning"
        default: return "unknown"
        }
    }

    static func instanceState(_ s: PBInstanceState) -> String {
        switch s {
        case .joining: return "joining"
        case .active: return "active"
        case .draining: return "draining"
        case .drained: return "drained"
        case .removed: return "removed"
        default: return "unknown"
        }
    }

    static func instanceRole(_ r: PBInstanceRole) -> String {
        switch r {
        case .voter: return "voter"
        case .learner: return "learner"
        default: return "unknown"
        }
    }
}

/// `POST /v1/instances/{id}/restart`: the program the instance runs from now on, a path on the
/// provider's host (`peer upgrade` of an instance a provider made).
public struct InstanceRestartRequest: Codable, Sendable, Hashable {
    public var binary: String
    public init(binary: String) { self.binary = binary }
}

/// The answer: the instance runs again, with `binary`, as `handle` (e.g. `pid 4242`).
public struct InstanceRestarted: Codable, Sendable, Hashable {
    public var id: String
    public var binary: String
    public var handle: String
    public init(id: String, binary: String, handle: String) {
        self.id = id
        self.binary = binary
        self.handle = handle
    }
}
