// Snapshot decode checks the same rules apply enforces (STYLE habit 3: check both sides of a
// boundary), so a bad snapshot is refused with the object it breaks, never applied on.

extension ClusterState {
    init(validating wire: PBState) throws(SnapshotError) {
        self.init()
        do throws(Rejection) {
            try load(wire)
        } catch {
            throw .invalidState(error.detail)
        }
    }

    private mutating func load(_ wire: PBState) throws(Rejection) {
        appliedIndex = wire.appliedIndex
        routingChange.index = wire.appliedIndex
        minProtocolVersion = wire.minProtocolVersion
        lastLeaderTimeMs = wire.lastLeaderTimeMs
        if wire.hasSettings {
            try Self.validateSettings(wire.settings)
            settings = wire.settings
        }
        try check(wire.instances.count <= ClusterLimits.instancesMax, "too many instances: \(wire.instances.count)")
        try check(wire.tenants.count <= ClusterLimits.tenantsMax, "too many tenants: \(wire.tenants.count)")
        try check(wire.operations.count <= ClusterLimits.operationsMax, "too many operations: \(wire.operations.count)")
        try check(wire.intents.count <= ClusterLimits.intentsMax, "too many intents: \(wire.intents.count)")
        try check(wire.sessions.count <= ClusterLimits.clientSessionsMax, "too many sessions: \(wire.sessions.count)")
        for instance in wire.instances { try loadInstance(instance) }
        for tenant in wire.tenants { try loadTenant(tenant) }
        for placement in wire.placements { try loadPlacement(placement) }
        for binding in wire.bindings { try loadBinding(binding) }
        for operation in wire.operations {
            try Validate.id(operation.id, "operation id")
            try check(operations[operation.id] == nil, "operation \(Validate.quoted(operation.id)) appears twice")
            try Validate.id(operation.tenantID, "operation tenant id")
            try check([.inProgress, .succeeded, .failed].contains(operation.state), "operation \(Validate.quoted(operation.id)) has state \(operation.state)")
            try Validate.text(operation.originatingIdentity, "operation originating identity", max: ClusterLimits.originatingIdentityBytesMax, required: false)
            try check(operation.startedIndex <= appliedIndex, "operation \(Validate.quoted(operation.id)) started at index \(operation.startedIndex) > applied index \(appliedIndex)")
            operations[operation.id] = operation
            if let lastId = lastOperationIdsByTenant[operation.tenantID], let last = operations[lastId] {
                try check(last.startedIndex != operation.startedIndex, "operations \(Validate.quoted(lastId)) and \(Validate.quoted(operation.id)) of one tenant started at the same index")
                if operation.startedIndex > last.startedIndex { lastOperationIdsByTenant[operation.tenantID] = operation.id }
            } else {
                lastOperationIdsByTenant[operation.tenantID] = operation.id
            }
            if operation.state == .inProgress {
                try check(inProgressOperationIdsByTenant[operation.tenantID] == nil, "tenant \(Validate.quoted(operation.tenantID)) has two operations in progress")
                inProgressOperationIdsByTenant[operation.tenantID] = operation.id
            }
        }
        operationQueue = OperationQueue(live: inProgressOperationIdsByTenant.values.compactMap { id in
            operations[id].map { OperationQueue.Key(index: $0.startedIndex, id: id) }
        })
        finishedOperations = FinishedOperations(wire.operations.compactMap { operation in
            operation.state == .inProgress ? nil : OperationQueue.Key(index: operation.startedIndex, id: operation.id)
        })
        for intent in wire.intents {
            try Validate.id(intent.id, "intent id")
            try Validate.id(intent.instanceID, "intent instance id")
            try check(intents[intent.id] == nil, "intent \(Validate.quoted(intent.id)) appears twice")
            try check(intent.kind == .provision || intent.kind == .decommission, "intent \(Validate.quoted(intent.id)) has kind \(intent.kind)")
            intents[intent.id] = intent
        }
        for session in wire.sessions {
            try check(sessions[session.clientID] == nil, "session \(Validate.quoted(session.clientID)) appears twice")
            try check(Outcome(wire: session.lastOutcome) != nil, "session \(Validate.quoted(session.clientID)) has an unknown outcome code \(session.lastOutcome.code)")
            try check(session.lastIndex <= appliedIndex, "session \(Validate.quoted(session.clientID)) is from index \(session.lastIndex) > applied index \(appliedIndex)")
            try check(sessionClientIdsByLastIndex[session.lastIndex] == nil, "sessions \(Validate.quoted(sessionClientIdsByLastIndex[session.lastIndex] ?? "")) and \(Validate.quoted(session.clientID)) have the same last index \(session.lastIndex)")
            sessions[session.clientID] = session
            sessionClientIdsByLastIndex[session.lastIndex] = session.clientID
        }
        sessionLastIndexFloor = sessionClientIdsByLastIndex.keys.min() ?? 0
        try check(wire.events.count <= ClusterLimits.eventsMax, "too many events: \(wire.events.count)")
        var previousIndex: UInt64 = 0
        for event in wire.events {
            try Self.validateEvent(event, minProtocolVersion: minProtocolVersion)
            try check(!eventIds.contains(event.id), "event \(Validate.quoted(event.id)) appears twice")
            try check(event.index > previousIndex && event.index <= appliedIndex, "event \(Validate.quoted(event.id)) has index \(event.index), not after \(previousIndex) and at most \(appliedIndex)")
            if !event.intentID.isEmpty { try Validate.id(event.intentID, "event intent id") }
            previousIndex = event.index
            eventIds.insert(event.id)
        }
        events = wire.events
        balancerPaused = wire.balancerPaused
        // Canonical form: decoding then encoding must give the same bytes, or digests diverge.
        try check(wireState() == wire, "collections are not in canonical (sorted, unique) order")
    }

    private mutating func loadInstance(_ instance: Instance) throws(Rejection) {
        try Validate.id(instance.id, "instance id")
        try Validate.address(instance.address)
        try Self.validateRole(instance.role)
        try check(instances[instance.id] == nil, "instance \(Validate.quoted(instance.id)) appears twice")
        try check((1...5).contains(instance.state.rawValue), "instance \(Validate.quoted(instance.id)) has state \(instance.state)")
        try Validate.text(instance.stateReason, "instance state_reason", max: ClusterLimits.descriptionBytesMax, required: false)
        instances[instance.id] = instance
    }

    private mutating func loadTenant(_ tenant: Tenant) throws(Rejection) {
        try Validate.tenantId(tenant.id)
        try check(tenants[tenant.id] == nil, "tenant \(Validate.quoted(tenant.id)) appears twice")
        try check(try Validate.components(tenant.components) == tenant.components, "tenant \(Validate.quoted(tenant.id)) components are not sorted")
        try check((1...3).contains(tenant.state.rawValue), "tenant \(Validate.quoted(tenant.id)) has state \(tenant.state)")
        try Validate.optionalHash(tenant.attributesSha256Hex, "tenant attributes_sha256_hex")
        tenants[tenant.id] = tenant
    }

    private mutating func loadPlacement(_ placement: Placement) throws(Rejection) {
        let name = "placement \(Validate.quoted(placement.tenantID))@\(Validate.quoted(placement.instanceID))"
        try check(tenants[placement.tenantID] != nil, "\(name) names an unknown tenant")
        try check(instances[placement.instanceID] != nil, "\(name) names an unknown instance")
        try check([.preparing, .active, .draining].contains(placement.phase), "\(name) has phase \(placement.phase)")
        let siblings = placements[placement.tenantID] ?? [:]
        try check(siblings[placement.instanceID] == nil, "\(name) appears twice")
        try check(siblings.count < ClusterLimits.placementsPerTenantMax, "tenant \(Validate.quoted(placement.tenantID)) has more than placementsPerTenantMax placements")
        if placement.phase == .active || placement.phase == .preparing {
            try check(!siblings.values.contains { $0.phase == placement.phase }, "tenant \(Validate.quoted(placement.tenantID)) has two \(placement.phase) placements")
        }
        placements[placement.tenantID, default: [:]][placement.instanceID] = placement
        tenantIdsByInstance[placement.instanceID, default: ShardedSet()].insert(placement.tenantID)
        countPlacement(onInstance: placement.instanceID, plan: tenants[placement.tenantID]!.plan, by: 1)
    }

    private mutating func loadBinding(_ binding: Binding) throws(Rejection) {
        try Validate.id(binding.id, "binding id")
        try Validate.tokenHash(binding.tokenSha256Hex)
        try Validate.optionalHash(binding.attributesSha256Hex, "binding attributes_sha256_hex")
        try Validate.text(binding.originatingIdentity, "binding originating identity", max: ClusterLimits.originatingIdentityBytesMax, required: false)
        try check(tenants[binding.tenantID] != nil, "binding \(Validate.quoted(binding.id)) names an unknown tenant")
        try check(bindings[binding.id] == nil, "binding \(Validate.quoted(binding.id)) appears twice")
        try check(bindingIdsByTokenHash[binding.tokenSha256Hex] == nil, "binding \(Validate.quoted(binding.id)) reuses a token hash")
        try check(bindingCountsByTenant[binding.tenantID, default: 0] < ClusterLimits.bindingsPerTenantMax, "tenant \(Validate.quoted(binding.tenantID)) has more than bindingsPerTenantMax bindings")
        bindings[binding.id] = binding
        bindingIdsByTokenHash[binding.tokenSha256Hex] = binding.id
        bindingCountsByTenant[binding.tenantID, default: 0] += 1
    }

    private func check(_ condition: Bool, _ reason: @autoclosure () -> String) throws(Rejection) {
        if !condition { throw Rejection(.invalidField, reason()) }
    }
}
