// Broker state: bindings with hashed user tokens, and asynchronous operations whose
// progress is replicated so the next leader finishes what the last one started.

extension ClusterState {
    mutating func applyCreateBinding(_ c: PBCreateBinding, now: Int64) throws(Rejection) {
        try Validate.id(c.id, "id")
        try Validate.tokenHash(c.tokenSha256Hex)
        try Validate.optionalHash(c.attributesSha256Hex, "attributes_sha256_hex")
        try Validate.text(c.originatingIdentity, "originating_identity", max: ClusterLimits.originatingIdentityBytesMax, required: false)
        let tenant = try existingTenant(c.tenantID)
        guard tenant.state != .deprovisioning else {
            throw Rejection(.invalidTransition, "tenant \(Validate.quoted(c.tenantID)) is deprovisioning")
        }
        guard bindings[c.id] == nil else { throw Rejection(.alreadyExists, "binding \(Validate.quoted(c.id)) exists") }
        guard bindingIdsByTokenHash[c.tokenSha256Hex] == nil else {
            throw Rejection(.conflict, "this token hash is already bound")
        }
        let perTenant = bindingCountsByTenant[c.tenantID, default: 0]
        guard perTenant < ClusterLimits.bindingsPerTenantMax else {
            throw Rejection(.limitReached, "bindingsPerTenantMax \(ClusterLimits.bindingsPerTenantMax) reached for tenant \(Validate.quoted(c.tenantID))")
        }
        var binding = Binding()
        binding.id = c.id
        binding.tenantID = c.tenantID
        binding.tokenSha256Hex = c.tokenSha256Hex
        binding.createdMs = now
        binding.attributesSha256Hex = c.attributesSha256Hex
        binding.originatingIdentity = c.originatingIdentity
        bindings[c.id] = binding
        bindingIdsByTokenHash[c.tokenSha256Hex] = c.id
        bindingCountsByTenant[c.tenantID, default: 0] += 1
    }

    mutating func applyDeleteBinding(_ c: PBDeleteBinding) throws(Rejection) {
        try Validate.id(c.id, "id")
        guard let binding = bindings[c.id] else { throw Rejection(.notFound, "binding \(Validate.quoted(c.id)) does not exist") }
        removeBinding(binding)
    }

    /// The one place a binding leaves, so the derived indexes stay in step.
    mutating func removeBinding(_ binding: Binding) {
        bindings[binding.id] = nil
        bindingIdsByTokenHash[binding.tokenSha256Hex] = nil
        let remaining = bindingCountsByTenant[binding.tenantID, default: 0] - 1
        precondition(remaining >= 0, "binding count of tenant \(binding.tenantID) went negative")
        bindingCountsByTenant[binding.tenantID] = remaining == 0 ? nil : remaining
    }

    mutating func applyStartOperation(_ c: PBStartOperation, now: Int64, index: UInt64) throws(Rejection) {
        try Validate.id(c.id, "id")
        try Validate.text(c.originatingIdentity, "originating_identity", max: ClusterLimits.originatingIdentityBytesMax, required: false)
        _ = try existingTenant(c.tenantID)
        guard c.kind == .provision || c.kind == .deprovision || c.kind == .update else {
            throw Rejection(.invalidField, "kind must be provision, deprovision or update, got \(c.kind)")
        }
        try checkNewOperation(c.id)
        if let running = inProgressOperationIdsByTenant[c.tenantID] {
            throw Rejection(.conflict, "tenant \(Validate.quoted(c.tenantID)) has operation \(Validate.quoted(running)) in progress")
        }
        recordOperation(c.id, tenant: c.tenantID, kind: c.kind, identity: c.originatingIdentity, now: now, index: index)
    }

    /// A new operation id must be unused, and the table must have room.
    func checkNewOperation(_ id: String) throws(Rejection) {
        guard operations[id] == nil else { throw Rejection(.alreadyExists, "operation \(Validate.quoted(id)) exists") }
        guard operations.count < operationsMax || !finishedOperations.isEmpty else {
            throw Rejection(.limitReached, "operationsMax \(operationsMax) reached, every one in progress")
        }
    }

    /// The one place an operation starts, so the derived indexes stay in step. Validated before.
    mutating func recordOperation(_ id: String, tenant: String, kind: PBOperationKind, identity: String, now: Int64, index: UInt64) {
        if operations.count >= operationsMax { forgetOldestFinishedOperation() }
        var operation = BrokerOperation()
        operation.id = id
        operation.tenantID = tenant
        operation.kind = kind
        operation.state = .inProgress
        operation.startedMs = now
        operation.updatedMs = now
        operation.originatingIdentity = identity
        operation.startedIndex = index
        operations[id] = operation
        inProgressOperationIdsByTenant[tenant] = id
        lastOperationIdsByTenant[tenant] = id
        operationQueue.started(OperationQueue.Key(index: index, id: id))
    }

    mutating func applyFinishOperation(_ c: PBFinishOperation, now: Int64) throws(Rejection) {
        try Validate.id(c.id, "id")
        try Validate.text(c.description_p, "description", max: ClusterLimits.descriptionBytesMax, required: false)
        guard c.state == .succeeded || c.state == .failed else {
            throw Rejection(.invalidField, "state must be succeeded or failed, got \(c.state)")
        }
        guard let operation = operations[c.id] else { throw Rejection(.notFound, "operation \(Validate.quoted(c.id)) does not exist") }
        guard operation.state == .inProgress else {
            throw Rejection(.invalidTransition, "operation \(Validate.quoted(c.id)) already finished: \(operation.state)")
        }
        finishOperation(operation, c.state, c.description_p, now: now)
    }

    mutating func finishOperation(_ operation: BrokerOperation, _ state: PBOperationState, _ description: String, now: Int64) {
        precondition(operation.state == .inProgress, "operation \(operation.id) finished twice")
        var finished = operation
        finished.state = state
        finished.description_p = description
        finished.updatedMs = now
        operations[operation.id] = finished
        inProgressOperationIdsByTenant[operation.tenantID] = nil
        let operations = self.operations
        operationQueue.finished(OperationQueue.Key(index: operation.startedIndex, id: operation.id)) { Self.isInProgress($0, in: operations) }
        finishedOperations.insert(OperationQueue.Key(index: operation.startedIndex, id: operation.id))
    }

    /// Drops the record of the finished operation that started first (`checkNewOperation`
    /// made sure there is one). If it was its tenant's latest, the tenant has no operation left
    /// (`FinishedOperations`), and `last_operation` answers as for an unknown instance.
    mutating func forgetOldestFinishedOperation() {
        guard let key = finishedOperations.removeOldest(), let forgotten = operations[key.id] else {
            preconditionFailure("operations full (\(operations.count)) and no finished operation to forget")
        }
        precondition(forgotten.state != .inProgress && forgotten.startedIndex == key.index, "finished-operation order out of step at \(key.id)")
        operations[key.id] = nil
        if lastOperationIdsByTenant[forgotten.tenantID] == key.id { lastOperationIdsByTenant[forgotten.tenantID] = nil }
    }

    // MARK: - The broker's composite commands: one entry each, so no failover splits them.

    mutating func applyProvisionTenant(_ c: PBProvisionTenant, now: Int64, index: UInt64) throws(Rejection) {
        guard c.hasTenant else { throw Rejection(.invalidField, "tenant is required") }
        try Validate.id(c.operationID, "operation id")
        try Validate.text(c.originatingIdentity, "originating_identity", max: ClusterLimits.originatingIdentityBytesMax, required: false)
        try Validate.optionalHash(c.attributesSha256Hex, "attributes_sha256_hex")
        try checkNewOperation(c.operationID)
        guard tenants[c.tenant.id] == nil else { throw Rejection(.alreadyExists, "tenant \(Validate.quoted(c.tenant.id)) exists") }
        if let running = inProgressOperationIdsByTenant[c.tenant.id] {
            throw Rejection(.conflict, "tenant id \(Validate.quoted(c.tenant.id)) has operation \(Validate.quoted(running)) in progress")
        }
        // Validates every tenant field and mutates last; nothing below can throw.
        try applyCreateTenant(c.tenant, now: now)
        tenants[c.tenant.id]?.attributesSha256Hex = c.attributesSha256Hex
        recordOperation(c.operationID, tenant: c.tenant.id, kind: .provision, identity: c.originatingIdentity, now: now, index: index)
    }

    mutating func applyDeprovisionTenant(_ c: PBDeprovisionTenant, now: Int64, index: UInt64) throws(Rejection) {
        try Validate.id(c.operationID, "operation id")
        try Validate.text(c.originatingIdentity, "originating_identity", max: ClusterLimits.originatingIdentityBytesMax, required: false)
        var tenant = try existingTenant(c.tenantID)
        try checkNewOperation(c.operationID)
        var aborted: BrokerOperation?
        if let runningId = inProgressOperationIdsByTenant[c.tenantID], let running = operations[runningId] {
            guard running.kind == .provision else {
                throw Rejection(.conflict, "tenant \(Validate.quoted(c.tenantID)) has \(running.kind) operation \(Validate.quoted(runningId)) in progress")
            }
            aborted = running
        }
        if let aborted {
            finishOperation(aborted, .failed, "aborted: a deprovision (operation \(c.operationID)) was requested before the provision finished", now: now)
        }
        tenant.state = .deprovisioning
        tenants[c.tenantID] = tenant
        recordOperation(c.operationID, tenant: c.tenantID, kind: .deprovision, identity: c.originatingIdentity, now: now, index: index)
    }

    mutating func applyChangeTenantPlan(_ c: PBChangeTenantPlan, now: Int64, index: UInt64) throws(Rejection) {
        try Validate.id(c.operationID, "operation id")
        try Validate.text(c.originatingIdentity, "originating_identity", max: ClusterLimits.originatingIdentityBytesMax, required: false)
        try Validate.text(c.plan, "plan", max: ClusterLimits.planBytesMax, required: true)
        let components = try Validate.components(c.components)
        var tenant = try existingTenant(c.tenantID)
        if let running = inProgressOperationIdsByTenant[c.tenantID] {
            throw Rejection(.conflict, "tenant \(Validate.quoted(c.tenantID)) has operation \(Validate.quoted(running)) in progress")
        }
        guard tenant.state == .ready else {
            throw Rejection(.invalidTransition, "tenant \(Validate.quoted(c.tenantID)) is \(tenant.state); only a ready tenant changes plan")
        }
        try checkNewOperation(c.operationID)
        let previous = tenant.plan
        recountPlacements(ofTenant: c.tenantID, from: previous, to: c.plan)
        tenant.plan = c.plan
        tenant.components = components
        tenant.quotas = c.quotas
        tenants[c.tenantID] = tenant
        recordOperation(c.operationID, tenant: c.tenantID, kind: .update, identity: c.originatingIdentity, now: now, index: index)
        finishOperation(operations[c.operationID]!, .succeeded, "plan changed from \(previous) to \(c.plan)", now: now)
    }
}
