// Placements and make-before-break moves (ARCHITECTURE §10):
//   place on target (preparing) → target active, old active draining in the same entry →
//   routers ack, grace period → old gone. At no index does a staying tenant lack an active
//   placement once it had one, and at most one is active.

extension ClusterState {
    mutating func applyPlaceTenant(_ c: PBPlaceTenant, now: Int64, index: UInt64) throws(Rejection) {
        let tenant = try existingTenant(c.tenantID)
        let instance = try existingInstance(c.instanceID)
        guard tenant.state != .deprovisioning else {
            throw Rejection(.invalidTransition, "tenant \(Validate.quoted(c.tenantID)) is deprovisioning")
        }
        guard instance.state == .active else {
            throw Rejection(.invalidTransition, "instance \(Validate.quoted(c.instanceID)) is \(instance.state), not active")
        }
        let current = placements[c.tenantID] ?? [:]
        if let existing = current[c.instanceID] {
            throw Rejection(.alreadyExists, "tenant \(Validate.quoted(c.tenantID)) is already placed on \(Validate.quoted(c.instanceID)) (\(existing.phase))")
        }
        if let preparing = current.values.first(where: { $0.phase == .preparing }) {
            throw Rejection(.conflict, "tenant \(Validate.quoted(c.tenantID)) already has a move in flight to \(Validate.quoted(preparing.instanceID))")
        }
        guard current.count < ClusterLimits.placementsPerTenantMax else {
            throw Rejection(.limitReached, "placementsPerTenantMax \(ClusterLimits.placementsPerTenantMax) reached for tenant \(Validate.quoted(c.tenantID))")
        }
        if c.active && !current.isEmpty {
            throw Rejection(.breakBeforeMake, "tenant \(Validate.quoted(c.tenantID)) is already placed: a new placement starts preparing (make before break)")
        }
        var placement = Placement()
        placement.tenantID = c.tenantID
        placement.instanceID = c.instanceID
        placement.phase = c.active ? .active : .preparing
        placement.phaseSinceMs = now
        placement.phaseSinceIndex = index
        placements[c.tenantID, default: [:]][c.instanceID] = placement
        tenantIdsByInstance[c.instanceID, default: ShardedSet()].insert(c.tenantID)
        countPlacement(onInstance: c.instanceID, plan: tenant.plan, by: 1)
        if c.active { finishProvision(of: tenant, servedBy: c.instanceID, now: now) }
    }

    mutating func applySetPlacementPhase(_ c: PBSetPlacementPhase, now: Int64, index: UInt64) throws(Rejection) {
        let tenant = try existingTenant(c.tenantID)
        try Validate.id(c.instanceID, "instance id")
        guard var placement = placements[c.tenantID]?[c.instanceID] else {
            throw Rejection(.notFound, "tenant \(Validate.quoted(c.tenantID)) has no placement on \(Validate.quoted(c.instanceID))")
        }
        switch (placement.phase, c.phase) {
        case (.preparing, .active):
            // Make before break: the old active placement starts draining in this same entry.
            if let previous = placements[c.tenantID]?.values.first(where: { $0.phase == .active }) {
                var draining = previous
                draining.phase = .draining
                draining.phaseSinceMs = now
                draining.phaseSinceIndex = index
                placements[c.tenantID]?[previous.instanceID] = draining
            }
            placement.phase = .active
            placement.phaseSinceMs = now
            placement.phaseSinceIndex = index
            placements[c.tenantID]?[c.instanceID] = placement
            finishProvision(of: tenant, servedBy: c.instanceID, now: now)
        case (.active, .draining):
            guard tenant.state == .deprovisioning else {
                throw Rejection(.breakBeforeMake, "tenant \(Validate.quoted(c.tenantID)) would lose its active placement; activate a new one (it drains this one) or deprovision first")
            }
            placement.phase = .draining
            placement.phaseSinceMs = now
            placement.phaseSinceIndex = index
            placements[c.tenantID]?[c.instanceID] = placement
        case (.draining, .gone), (.preparing, .gone):
            placements[c.tenantID]?[c.instanceID] = nil
            if placements[c.tenantID]?.isEmpty == true { placements[c.tenantID] = nil }
            tenantIdsByInstance[c.instanceID]?.remove(c.tenantID)
            if tenantIdsByInstance[c.instanceID]?.isEmpty == true { tenantIdsByInstance[c.instanceID] = nil }
            countPlacement(onInstance: c.instanceID, plan: tenant.plan, by: -1)
        default:
            throw Rejection(.invalidTransition, "placement \(Validate.quoted(c.tenantID))@\(Validate.quoted(c.instanceID)): \(placement.phase) → \(c.phase) is not allowed")
        }
    }
}

extension ClusterState {
    /// A provisioning tenant's first active placement ends its provision: the tenant is ready
    /// and the operation succeeded, in the entry that activates it (nothing else is waited for
    /// between the three, so they are not three entries: docs/cluster-model.md).
    mutating func finishProvision(of tenant: Tenant, servedBy instanceId: String, now: Int64) {
        guard tenant.state == .provisioning else { return }
        var ready = tenant
        ready.state = .ready
        tenants[tenant.id] = ready
        if let operation = inProgressOperation(ofTenant: tenant.id), operation.kind == .provision {
            finishOperation(operation, .succeeded, "tenant \(tenant.id) is served by instance \(instanceId)", now: now)
        }
    }

    /// `peer tenants move`: the target placement (preparing) and the MOVE operation in one entry.
    mutating func applyMoveTenant(_ c: PBMoveTenant, now: Int64, index: UInt64) throws(Rejection) {
        try Validate.id(c.operationID, "operation id")
        try Validate.text(c.originatingIdentity, "originating_identity", max: ClusterLimits.originatingIdentityBytesMax, required: false)
        let tenant = try existingTenant(c.tenantID)
        _ = try existingInstance(c.instanceID)
        if let running = inProgressOperationIdsByTenant[c.tenantID] {
            throw Rejection(.conflict, "tenant \(Validate.quoted(c.tenantID)) has operation \(Validate.quoted(running)) in progress")
        }
        guard tenant.state == .ready else {
            throw Rejection(.invalidTransition, "tenant \(Validate.quoted(c.tenantID)) is \(tenant.state); only a ready tenant moves")
        }
        guard let source = activeInstance(ofTenant: c.tenantID) else {
            throw Rejection(.invalidTransition, "tenant \(Validate.quoted(c.tenantID)) has no active placement to move from")
        }
        guard source != c.instanceID else {
            throw Rejection(.alreadyExists, "tenant \(Validate.quoted(c.tenantID)) is already served by \(Validate.quoted(c.instanceID))")
        }
        try checkNewOperation(c.operationID)
        var place = PBPlaceTenant()
        place.tenantID = c.tenantID
        place.instanceID = c.instanceID
        // Validates the target (active, no placement there yet, no other move) and mutates last.
        try applyPlaceTenant(place, now: now, index: index)
        recordOperation(c.operationID, tenant: c.tenantID, kind: .move, identity: c.originatingIdentity, now: now, index: index)
        operations[c.operationID]?.sourceInstanceID = source
        operations[c.operationID]?.targetInstanceID = c.instanceID
        operations[c.operationID]?.description_p = "moving from \(source) to \(c.instanceID)"
    }
}
