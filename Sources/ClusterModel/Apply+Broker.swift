// Broker state (issue 7): bindings with hashed user tokens, and asynchronous operations whose
// progress is replicated so the next leader finishes what the last one started.

extension ClusterState {
    mutating func applyCreateBinding(_ c: PBCreateBinding, now: Int64) throws(Rejection) {
        try Validate.id(c.id, "id")
        try Validate.tokenHash(c.tokenSha256Hex)
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

    mutating func applyStartOperation(_ c: PBStartOperation, now: Int64) throws(Rejection) {
        try Validate.id(c.id, "id")
        _ = try existingTenant(c.tenantID)
        guard c.kind == .provision || c.kind == .deprovision || c.kind == .update else {
            throw Rejection(.invalidField, "kind must be provision, deprovision or update, got \(c.kind)")
        }
        guard operations[c.id] == nil else { throw Rejection(.alreadyExists, "operation \(Validate.quoted(c.id)) exists") }
        if let running = inProgressOperationIdsByTenant[c.tenantID] {
            throw Rejection(.conflict, "tenant \(Validate.quoted(c.tenantID)) has operation \(Validate.quoted(running)) in progress")
        }
        guard operations.count < ClusterLimits.operationsMax else {
            throw Rejection(.limitReached, "operationsMax \(ClusterLimits.operationsMax) reached")
        }
        var operation = BrokerOperation()
        operation.id = c.id
        operation.tenantID = c.tenantID
        operation.kind = c.kind
        operation.state = .inProgress
        operation.startedMs = now
        operation.updatedMs = now
        operations[c.id] = operation
        inProgressOperationIdsByTenant[c.tenantID] = c.id
    }

    mutating func applyFinishOperation(_ c: PBFinishOperation, now: Int64) throws(Rejection) {
        try Validate.id(c.id, "id")
        try Validate.text(c.description_p, "description", max: ClusterLimits.descriptionBytesMax, required: false)
        guard c.state == .succeeded || c.state == .failed else {
            throw Rejection(.invalidField, "state must be succeeded or failed, got \(c.state)")
        }
        guard var operation = operations[c.id] else { throw Rejection(.notFound, "operation \(Validate.quoted(c.id)) does not exist") }
        guard operation.state == .inProgress else {
            throw Rejection(.invalidTransition, "operation \(Validate.quoted(c.id)) already finished: \(operation.state)")
        }
        operation.state = c.state
        operation.description_p = c.description_p
        operation.updatedMs = now
        operations[c.id] = operation
        inProgressOperationIdsByTenant[operation.tenantID] = nil
    }
}
