// Tenants: create (provisioning), update plan/components/quotas, ready, deprovisioning, delete.

extension ClusterState {
    mutating func applyCreateTenant(_ c: PBCreateTenant, now: Int64) throws(Rejection) {
        try Validate.tenantId(c.id)
        try Validate.text(c.plan, "plan", max: ClusterLimits.planBytesMax, required: true)
        let components = try Validate.components(c.components)
        guard tenants[c.id] == nil else { throw Rejection(.alreadyExists, "tenant \(Validate.quoted(c.id)) exists") }
        guard tenants.count < ClusterLimits.tenantsMax else {
            throw Rejection(.limitReached, "tenantsMax \(ClusterLimits.tenantsMax) reached")
        }
        var tenant = Tenant()
        tenant.id = c.id
        tenant.plan = c.plan
        tenant.components = components
        tenant.quotas = c.quotas
        tenant.state = .provisioning
        tenant.createdMs = now
        tenants[c.id] = tenant
    }

    mutating func applyUpdateTenant(_ c: PBUpdateTenant) throws(Rejection) {
        var tenant = try existingTenant(c.id)
        try Validate.text(c.plan, "plan", max: ClusterLimits.planBytesMax, required: true)
        let components = try Validate.components(c.components)
        guard tenant.state != .deprovisioning else {
            throw Rejection(.invalidTransition, "tenant \(Validate.quoted(c.id)) is deprovisioning")
        }
        recountPlacements(ofTenant: c.id, from: tenant.plan, to: c.plan)
        tenant.plan = c.plan
        tenant.components = components
        tenant.quotas = c.quotas
        tenants[c.id] = tenant
    }

    mutating func applySetTenantState(_ c: PBSetTenantState) throws(Rejection) {
        var tenant = try existingTenant(c.id)
        switch (tenant.state, c.state) {
        case (.provisioning, .ready), (.provisioning, .deprovisioning), (.ready, .deprovisioning):
            break
        default:
            throw Rejection(.invalidTransition, "tenant \(Validate.quoted(c.id)): \(tenant.state) → \(c.state) is not allowed")
        }
        tenant.state = c.state
        tenants[c.id] = tenant
    }

    /// Only a deprovisioning tenant with no placement left can go; its bindings go with it.
    /// Its broker operations stay, so `last_operation` can still report the deprovision.
    mutating func applyDeleteTenant(_ c: PBDeleteTenant, now: Int64) throws(Rejection) {
        let tenant = try existingTenant(c.id)
        guard tenant.state == .deprovisioning else {
            throw Rejection(.invalidTransition, "tenant \(Validate.quoted(c.id)) must be deprovisioning before delete, is \(tenant.state)")
        }
        let remaining = placements[c.id]?.count ?? 0
        guard remaining == 0 else {
            throw Rejection(.notEmpty, "tenant \(Validate.quoted(c.id)) still has \(remaining) placement(s)")
        }
        // Linear in all bindings; deletes are rare and bounded by the broker's rate.
        for binding in bindings.values where binding.tenantID == c.id {
            removeBinding(binding)
        }
        // An operation never outlives its tenant in progress: the delete is what a deprovision
        // waits for, so it succeeds in this same entry (no failover can leave it running for a
        // tenant that is gone, or hand it to a new tenant of the same id); anything else fails.
        if let running = inProgressOperation(ofTenant: c.id) {
            let succeeded = running.kind == .deprovision
            finishOperation(running, succeeded ? .succeeded : .failed, succeeded ? "tenant \(c.id) deleted" : "tenant \(c.id) was deleted", now: now)
        }
        tenants[c.id] = nil
        placements[c.id] = nil
    }

    func existingTenant(_ id: String) throws(Rejection) -> Tenant {
        try Validate.id(id, "tenant id")
        guard let tenant = tenants[id] else { throw Rejection(.notFound, "tenant \(Validate.quoted(id)) does not exist") }
        return tenant
    }
}
