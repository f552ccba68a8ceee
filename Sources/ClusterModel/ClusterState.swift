import SwiftProtobuf

/// A member machine of the cluster, as replicated (ARCHITECTURE §2 "instance"). The generated
/// protobuf messages are the domain records: one schema, no mapping layer to drift (ADR 0004).
public typealias Instance = PBInstance
/// A customer of the platform with its plan, required components and quotas.
public typealias Tenant = PBTenant
/// (tenant, instance, phase): where a tenant is served; phases preparing → active → draining → gone.
public typealias Placement = PBPlacement
/// A tenant user credential; holds only the SHA-256 of the token, never the token.
public typealias Binding = PBBinding
/// An asynchronous broker operation (OSB `last_operation`), whose progress survives failover.
public typealias BrokerOperation = PBOperation
/// A leader decision committed before its action (provision or decommission an instance).
public typealias Intent = PBIntent
/// Controller thresholds, replicated so every leader decides with the same numbers.
public typealias Settings = PBSettings
/// A balancer decision or an operator's pause/resume, kept newest first up to `events.retain`.
public typealias Event = PBEvent
/// A replicated command: one Raft log entry.
public typealias Command = PBCommand

/// The replicated cluster state machine (ARCHITECTURE §5). A value type: apply a committed
/// entry, read it, snapshot it. Pure: no I/O, no clock, no randomness, so every replica that
/// applies the same entries holds equal state and reports the same `stateDigest`.
public struct ClusterState: Equatable, Sendable {
    /// Index of the last Raft entry applied. Strictly increasing.
    public internal(set) var appliedIndex: UInt64 = 0
    /// The gate of ARCHITECTURE §12: no instance below it may join, and a command type newer
    /// than it is refused. It only moves up.
    public internal(set) var minProtocolVersion: UInt32 = 0
    /// The highest protocol version this build's apply knows (docs/cluster-model.md §Versioning).
    public static let protocolVersionMax: UInt32 = 2
    /// The highest protocol version THIS replica applies: `protocolVersionMax`, or lower when the
    /// peer runs as an earlier release (`PEER_PROTOCOL_VERSION`, for upgrade tests built from one
    /// tree). Below it, apply behaves as that release did: a newer command halts as an unknown
    /// one, a newer field is ignored. Not replicated, not encoded; the peer sets it after every
    /// restore.
    public var applierProtocolMax: UInt32 = ClusterState.protocolVersionMax
    public internal(set) var settings: Settings = ClusterState.defaultSettings
    /// The largest leader time seen; times in the state never go backwards even when a new
    /// leader's clock is behind the old one's.
    public internal(set) var lastLeaderTimeMs: Int64 = 0

    var instances: [String: Instance] = [:]
    // The collections that grow with the tenants are sharded: the first write after the
    // snapshot's copy of the state copies 1/1024 of one, not all of it (ShardedDictionary).
    var tenants = ShardedDictionary<String, Tenant>()
    /// tenant id → instance id → placement. Invariant: at most one `.active` and at most one
    /// `.preparing` per tenant; no `.gone` (a gone placement is deleted).
    var placements = ShardedDictionary<String, [String: Placement]>()
    /// instance id → ids of tenants placed there (any phase). Derived, not encoded: the agent
    /// asks for its instance's placements after every apply.
    var tenantIdsByInstance: [String: ShardedSet<String>] = [:]
    /// instance id → plan → how many placements (any phase) of tenants of that plan it holds.
    /// Derived, not encoded: the leader's placement choice sums used capacity from it in
    /// O(instances × plans) instead of reading every placement each round.
    var placementCountsByInstance: [String: [String: Int]] = [:]
    var bindings: [String: Binding] = [:]
    /// token hash → binding id, so a router's token check is one lookup. Derived, not encoded.
    var bindingIdsByTokenHash: [String: String] = [:]
    var operations = ShardedDictionary<String, BrokerOperation>()
    /// tenant id → its in-progress operation id. Derived, not encoded: keeps the one-operation-
    /// per-tenant check O(1) when `operations` holds `operationsMax` finished ones.
    var inProgressOperationIdsByTenant: [String: String] = [:]
    /// The operations in progress in start order, for the driver. Derived, not encoded.
    var operationQueue = OperationQueue()
    /// The finished operations in start order: the first to go when `operations` is full.
    /// Derived, not encoded.
    var finishedOperations = FinishedOperations()
    /// `ClusterLimits.operationsMax`; tests lower it to reach the bound in a few commands.
    var operationsMax = ClusterLimits.operationsMax
    /// tenant id → the id of its most recently started operation (highest `started_index`),
    /// kept after the tenant is deleted so `last_operation` still answers. Derived, not encoded.
    var lastOperationIdsByTenant = ShardedDictionary<String, String>()
    /// tenant id → number of bindings. Derived, not encoded.
    var bindingCountsByTenant: [String: Int] = [:]
    var intents: [String: Intent] = [:]
    /// Ascending by index; trimmed to the last `RecordEvent`'s `retain` when it applied.
    var events: [Event] = []
    /// The ids of `events`. Derived, not encoded.
    var eventIds: Set<String> = []
    var balancerPaused = false
    var sessions: [String: PBSession] = [:]
    /// last index → client id of the session that index wrote. Each applied entry records at
    /// most one session, so the keys are unique. Derived, not encoded.
    var sessionClientIdsByLastIndex: [UInt64: String] = [:]
    /// The smallest `lastIndex` of any session (0 when there is none): the least recently used
    /// session, evicted when a new client arrives and the table is full. Kept exact (a function
    /// of `sessions`, so equal states stay equal); it only moves up while sessions exist, so
    /// the scans that advance it cost O(1) per applied entry, amortized. Derived, not encoded.
    var sessionLastIndexFloor: UInt64 = 0
    /// The last index whose entry changed what the routers and agents act on (instances,
    /// tenants' components/plans/quotas, placements). Derived, not encoded, and not part of the
    /// state's identity: a restored snapshot sets it to its own index.
    var routingChange = ChangeMarker()

    public init() {}

    public static let defaultSettings: Settings = {
        var settings = Settings()
        settings.cpuHighPermille = 800
        settings.cpuLowPermille = 300
        settings.moveGraceMs = 5_000
        settings.scaleDownCooldownMs = 300_000
        settings.votersTarget = 3
        return settings
    }()
}

/// A derived hint carried beside the state but not part of what makes two states equal: two
/// replicas with equal instances, tenants and placements are equal whatever their markers say.
struct ChangeMarker: Equatable, Sendable {
    var index: UInt64 = 0
    static func == (_: ChangeMarker, _: ChangeMarker) -> Bool { true }
}

// MARK: - Queries for `peer status`, the controller, the broker and the router.

extension ClusterState {
    /// Every instance, removed ones included (ids are never reused), sorted by id.
    public var allInstances: [Instance] { instances.values.sorted { $0.id < $1.id } }

    public func instance(_ id: String) -> Instance? { instances[id] }

    public func instances(in state: PBInstanceState) -> [Instance] {
        allInstances.filter { $0.state == state }
    }

    public func tenant(_ id: String) -> Tenant? { tenants[id] }

    public var allTenants: [Tenant] { tenants.values.sorted { $0.id < $1.id } }

    public var tenantCount: Int { tenants.count }

    /// Tenant counts per lifecycle state, for `peer status`.
    public var tenantCountsByState: [PBTenantState: Int] {
        tenants.values.reduce(into: [:]) { $0[$1.state, default: 0] += 1 }
    }

    /// A tenant's placements sorted by instance id.
    public func placements(ofTenant tenantId: String) -> [Placement] {
        (placements[tenantId] ?? [:]).values.sorted { $0.instanceID < $1.instanceID }
    }

    /// Where the routers send the tenant's requests now; nil while it has no active placement.
    public func activeInstance(ofTenant tenantId: String) -> String? {
        placements[tenantId]?.values.first { $0.phase == .active }?.instanceID
    }

    /// Every placement on an instance (what its agent must run), sorted by tenant id.
    /// Placements (any phase) on the instance per plan of their tenants. O(plans).
    public func placementCountsByPlan(onInstance instanceId: String) -> [String: Int] {
        placementCountsByInstance[instanceId] ?? [:]
    }

    mutating func countPlacement(onInstance instanceId: String, plan: String, by delta: Int) {
        var counts = placementCountsByInstance[instanceId] ?? [:]
        let count = (counts[plan] ?? 0) + delta
        precondition(count >= 0, "placement count of plan \(plan) on \(instanceId) below zero")
        counts[plan] = count == 0 ? nil : count
        placementCountsByInstance[instanceId] = counts.isEmpty ? nil : counts
    }

    /// Moves the tenant's placements from one plan's counts to another's (a plan change).
    mutating func recountPlacements(ofTenant tenantId: String, from old: String, to new: String) {
        guard old != new else { return }
        for instanceId in (placements[tenantId] ?? [:]).keys {
            countPlacement(onInstance: instanceId, plan: old, by: -1)
            countPlacement(onInstance: instanceId, plan: new, by: 1)
        }
    }

    public func placements(onInstance instanceId: String) -> [Placement] {
        (tenantIdsByInstance[instanceId]?.elements ?? []).sorted().compactMap { placements[$0]?[instanceId] }
    }

    /// Active tenants per instance id, for balancing and `peer status`.
    public var activeTenantCountsByInstance: [String: Int] {
        var counts: [String: Int] = [:]
        for byInstance in placements.values {
            for placement in byInstance.values where placement.phase == .active {
                counts[placement.instanceID, default: 0] += 1
            }
        }
        return counts
    }

    public func binding(_ id: String) -> Binding? { bindings[id] }

    /// The binding a user token hash belongs to, for the router's local token check.
    public func binding(forTokenSHA256Hex hash: String) -> Binding? {
        bindingIdsByTokenHash[hash].flatMap { bindings[$0] }
    }

    public func operation(_ id: String) -> BrokerOperation? { operations[id] }

    /// The operation in progress for a tenant, if any (at most one: OSB ConcurrencyError).
    public func inProgressOperation(ofTenant tenantId: String) -> BrokerOperation? {
        inProgressOperationIdsByTenant[tenantId].flatMap { operations[$0] }
    }

    /// The tenant's most recently started operation, also after the tenant was deleted.
    public func lastOperation(ofTenant tenantId: String) -> BrokerOperation? {
        lastOperationIdsByTenant[tenantId].flatMap { operations[$0] }
    }

    /// Every operation in progress, oldest first (by the index that started it).
    public var inProgressOperations: [BrokerOperation] { oldestInProgressOperations(Int.max) }

    /// The oldest `limit` operations in progress: what the leader's operation driver works
    /// through each round. O(limit), amortized; no sort.
    public func oldestInProgressOperations(_ limit: Int) -> [BrokerOperation] {
        let operations = self.operations
        return operationQueue.oldest(limit) { Self.isInProgress($0, in: operations) }.compactMap { operations[$0.id] }
    }

    /// Whether any operation is in progress. O(1).
    public var hasInProgressOperations: Bool { !operationQueue.isEmpty }

    /// Whether some instance is draining (the drain driver has work). O(instances).
    public var hasDrainingInstances: Bool { instances.values.contains { $0.state == .draining } }

    static func isInProgress(_ key: OperationQueue.Key, in operations: ShardedDictionary<String, BrokerOperation>) -> Bool {
        operations[key.id].map { $0.state == .inProgress && $0.startedIndex == key.index } ?? false
    }

    /// Bindings of one tenant, sorted by id. Linear in all bindings (for the broker's rare
    /// per-tenant reads, not the router's token check).
    public func bindings(ofTenant tenantId: String) -> [Binding] {
        bindings.values.filter { $0.tenantID == tenantId }.sorted { $0.id < $1.id }
    }

    public var allIntents: [Intent] { intents.values.sorted { $0.id < $1.id } }

    /// Intents whose deadline passed at `nowMs` (the leader's clock): the controller retries or
    /// undoes them. A query, not apply: apply never decides by time on its own.
    public func intents(pastDeadlineAt nowMs: Int64) -> [Intent] {
        allIntents.filter { $0.deadlineMs <= nowMs }
    }

    /// The last sequence applied for a client, so a proposer can resume its numbering.
    public func lastSequence(ofClient clientId: String) -> UInt64? { sessions[clientId]?.lastSequence }

    /// The last applied index that changed routing inputs (instances, tenants, placements), or
    /// a later one (after a snapshot restore it is the snapshot's index). While it stays the same,
    /// the routers' configs and the agents' components need no change: the data plane reads only
    /// this O(1) number most of the time.
    public var routingChangeIndex: UInt64 { routingChange.index }
}
