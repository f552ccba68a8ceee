import ClusterModel
import Foundation

// Service instances (tenants): catalog, provision, update, deprovision, fetch, last_operation.
// The status codes are the spec's (docs/broker.md has the table); every 4xx leaves the state as
// it was, because a 4xx is decided before anything is proposed.

extension Broker {
    /// What the handlers need to know about one instance, read in one linearizable read.
    struct InstanceView: Sendable {
        var tenant: Tenant?
        var running: BrokerOperation?
        var last: BrokerOperation?
        var activeInstance: String?

        init(_ state: ClusterState, tenantId: String) {
            tenant = state.tenant(tenantId)
            running = state.inProgressOperation(ofTenant: tenantId)
            last = state.lastOperation(ofTenant: tenantId)
            activeInstance = state.activeInstance(ofTenant: tenantId)
        }

        /// Tenants the broker made carry the digest of their request; others (made through the
        /// admin API) are not service instances and the broker leaves them alone.
        var brokerTenant: Tenant? { tenant.flatMap { $0.attributesSha256Hex.isEmpty ? nil : $0 } }
    }

    func view(ofInstance instanceId: String) async throws(OSBReply) -> InstanceView {
        let tenantId = BrokerIds.tenant(forInstance: instanceId)
        return try await readState { InstanceView($0, tenantId: tenantId) }
    }

    // MARK: - Catalog

    func catalogBody() -> [String: JSONValue] {
        let services: [JSONValue] = config.catalog.services.map { service in
            let plans: [JSONValue] = service.plans.map { plan in
                var p: [String: JSONValue] = [
                    "id": .string(plan.id), "name": .string(plan.name), "description": .string(plan.description),
                    "free": .bool(plan.free), "bindable": .bool(true), "plan_updateable": .bool(true),
                    "binding_rotatable": .bool(false),
                    "maximum_polling_duration": .number(Double(max(1, config.provisionTimeoutMs / 1000) * 2)),
                    "metadata": .object([
                        "components": .array(plan.components.map { .string($0) }),
                        "capacityUnits": .number(Double(plan.weightUnits)),
                        "requestsPerSecond": .number(Double(plan.requestsPerSecond)),
                        "connectionsMax": .number(Double(plan.connectionsMax)),
                    ]),
                ]
                if let version = plan.maintenanceVersion { p["maintenance_info"] = .object(["version": .string(version)]) }
                return .object(p)
            }
            return .object([
                "id": .string(service.id), "name": .string(service.name), "description": .string(service.description),
                "tags": .array(service.tags.map { .string($0) }), "bindable": .bool(true),
                "instances_retrievable": .bool(true), "bindings_retrievable": .bool(true),
                "allow_context_updates": .bool(false), "plan_updateable": .bool(true), "plans": .array(plans),
            ])
        }
        return ["services": .array(services)]
    }

    // MARK: - Provision

    /// `PUT /v2/service_instances/:instance_id`. Asynchronous: 202 with the operation token (the
    /// broker operation id); 200 for an identical repeat of a finished provision; 409 for a
    /// different one; 422 AsyncRequired without `accepts_incomplete=true`.
    func provision(_ instanceId: String, acceptsIncomplete: Bool, body: [UInt8], identity: String) async throws(OSBReply) -> OSBReply {
        let request = try ProvisionRequest(body: body, catalog: config.catalog)
        let tenantId = BrokerIds.tenant(forInstance: instanceId)
        let dashboard: [String: JSONValue] = ["dashboard_url": .string(config.tenantURL(tenantId))]
        for _ in 0..<Self.decideAttemptsMax {
            let view = try await view(ofInstance: instanceId)
            let body: Command.OneOf_Body
            if let tenant = view.tenant {
                guard !tenant.attributesSha256Hex.isEmpty, tenant.attributesSha256Hex == request.digest, tenant.plan == request.plan.id else {
                    return OSBReply(.conflict, error: "Conflict", "service instance \(instanceId) exists with different attributes")
                }
                if let running = view.running {
                    guard running.kind == .provision else { return .concurrency("service instance \(instanceId) has a \(Names.operationKind(running.kind)) in progress") }
                    guard acceptsIncomplete else { throw .asyncRequired("provisioning") }
                    return OSBReply(.accepted, dashboard.merging(["operation": .string(running.id)]) { a, _ in a })
                }
                switch tenant.state {
                case .ready:
                    return OSBReply(.ok, dashboard)
                case .deprovisioning:
                    return .concurrency("service instance \(instanceId) is being deprovisioned")
                default:
                    // Half-created: an earlier provision failed (no headroom in time). The same
                    // request starts a new attempt; a platform that gave up deletes it instead.
                    guard acceptsIncomplete else { throw .asyncRequired("provisioning") }
                    var start = PBStartOperation()
                    start.id = BrokerIds.freshOperationId()
                    start.tenantID = tenantId
                    start.kind = .provision
                    start.originatingIdentity = identity
                    body = .startOperation(start)
                }
            } else {
                guard acceptsIncomplete else { throw .asyncRequired("provisioning") }
                var create = PBCreateTenant()
                create.id = tenantId
                create.plan = request.plan.id
                create.components = request.plan.components
                create.quotas.requestsPerSecond = request.plan.requestsPerSecond
                create.quotas.connectionsMax = request.plan.connectionsMax
                var provision = PBProvisionTenant()
                provision.tenant = create
                provision.operationID = BrokerIds.freshOperationId()
                provision.originatingIdentity = identity
                provision.attributesSha256Hex = request.digest
                body = .provisionTenant(provision)
            }
            let result = try await propose(body)
            switch result {
            case .applied:
                wakeLeader()
                let operation: String
                switch body {
                case .provisionTenant(let p): operation = p.operationID
                case .startOperation(let s): operation = s.id
                default: preconditionFailure("provision proposed \(body)")
                }
                logger.info("broker: provision of \(tenantId) started", metadata: ["operation": "\(operation)", "plan": "\(request.plan.id)"])
                return OSBReply(.accepted, dashboard.merging(["operation": .string(operation)]) { a, _ in a })
            case _ where Self.lostRace(result):
                continue
            default:
                throw Self.unexpected(result)
            }
        }
        throw Self.raced("service instance \(instanceId)")
    }

    // MARK: - Update

    /// `PATCH /v2/service_instances/:instance_id`: a plan change within the service. Synchronous
    /// (one committed command), so 200 with `{}` whether or not `accepts_incomplete` is given.
    func update(_ instanceId: String, acceptsIncomplete _: Bool, body: [UInt8], identity: String) async throws(OSBReply) -> OSBReply {
        let request = try UpdateRequest(body: body, catalog: config.catalog)
        let tenantId = BrokerIds.tenant(forInstance: instanceId)
        for _ in 0..<Self.decideAttemptsMax {
            let view = try await view(ofInstance: instanceId)
            guard let tenant = view.brokerTenant else { throw .badRequest("service instance \(instanceId) does not exist") }
            guard let current = config.catalog.plan(id: tenant.plan) else {
                throw OSBReply(.unprocessableContent, error: nil, "service instance \(instanceId) has plan \(tenant.plan), which is no longer in the catalog")
            }
            guard current.service.id == request.serviceId else {
                throw .badRequest("service_id \(request.serviceId) is not the service of instance \(instanceId) (\(current.service.id))")
            }
            if let version = request.maintenanceVersion, version != (request.plan ?? current.plan).maintenanceVersion {
                throw OSBReply(.unprocessableContent, error: "MaintenanceInfoConflict", "maintenance_info.version \(version) is not the plan's (\((request.plan ?? current.plan).maintenanceVersion ?? "none")); fetch the catalog again")
            }
            if let running = view.running { return .concurrency("service instance \(instanceId) has a \(Names.operationKind(running.kind)) in progress") }
            guard tenant.state == .ready else {
                return tenant.state == .deprovisioning
                    ? .concurrency("service instance \(instanceId) is being deprovisioned")
                    : OSBReply(.unprocessableContent, error: nil, "service instance \(instanceId) is not provisioned (its provision failed); delete it or provision it again")
            }
            guard let target = request.plan, target.id != tenant.plan else {
                // No plan change: parameters and context are not used by this broker's plans.
                return OSBReply(.ok)
            }
            guard config.catalog.plan(id: target.id)?.service.id == current.service.id else {
                throw .badRequest("plan_id \(target.id) is not a plan of service \(current.service.id)")
            }
            var change = PBChangeTenantPlan()
            change.tenantID = tenantId
            change.plan = target.id
            change.components = target.components
            change.quotas.requestsPerSecond = target.requestsPerSecond
            change.quotas.connectionsMax = target.connectionsMax
            change.operationID = BrokerIds.freshOperationId()
            change.originatingIdentity = identity
            let result = try await propose(.changeTenantPlan(change))
            switch result {
            case .applied:
                logger.info("broker: \(tenantId) changed plan", metadata: ["from": "\(tenant.plan)", "to": "\(target.id)"])
                return OSBReply(.ok)
            case _ where Self.lostRace(result):
                continue
            default:
                throw Self.unexpected(result)
            }
        }
        throw Self.raced("service instance \(instanceId)")
    }

    // MARK: - Deprovision

    /// `DELETE /v2/service_instances/:instance_id`: asynchronous (202 + operation); 410 if there
    /// is no such instance. A half-created instance (provision in progress or failed) is deleted
    /// the same way; a provision in progress is aborted (finished `failed`) in the same entry.
    func deprovision(_ instanceId: String, query: [String: String], acceptsIncomplete: Bool, identity: String) async throws(OSBReply) -> OSBReply {
        // Order where two rules meet: missing data (400), then the asynchronous-only rule (422,
        // also for an instance that does not exist), then 410 (docs/broker.md).
        try Self.requireQuery(query, ["service_id", "plan_id"])
        guard acceptsIncomplete else { throw .asyncRequired("deprovisioning") }
        let tenantId = BrokerIds.tenant(forInstance: instanceId)
        for _ in 0..<Self.decideAttemptsMax {
            let view = try await view(ofInstance: instanceId)
            guard view.brokerTenant != nil else { return OSBReply(.gone) }
            if let running = view.running, running.kind != .provision {
                guard running.kind == .deprovision else { return .concurrency("service instance \(instanceId) has a \(Names.operationKind(running.kind)) in progress") }
                return OSBReply(.accepted, ["operation": .string(running.id)])
            }
            var deprovision = PBDeprovisionTenant()
            deprovision.tenantID = tenantId
            deprovision.operationID = BrokerIds.freshOperationId()
            deprovision.originatingIdentity = identity
            let result = try await propose(.deprovisionTenant(deprovision))
            switch result {
            case .applied:
                wakeLeader()
                logger.info("broker: deprovision of \(tenantId) started", metadata: ["operation": "\(deprovision.operationID)"])
                return OSBReply(.accepted, ["operation": .string(deprovision.operationID)])
            case _ where Self.lostRace(result):
                continue
            default:
                throw Self.unexpected(result)
            }
        }
        throw Self.raced("service instance \(instanceId)")
    }

    // MARK: - Reads

    /// `GET /v2/service_instances/:instance_id`: 404 while it does not exist or is still being
    /// provisioned.
    func fetchInstance(_ instanceId: String) async throws(OSBReply) -> OSBReply {
        let view = try await view(ofInstance: instanceId)
        guard let tenant = view.brokerTenant, tenant.state != .provisioning else {
            return OSBReply(.notFound, error: "NotFound", "service instance \(instanceId) does not exist or is still being provisioned")
        }
        var body: [String: JSONValue] = ["plan_id": .string(tenant.plan), "dashboard_url": .string(config.tenantURL(tenant.id))]
        if let service = config.catalog.plan(id: tenant.plan)?.service { body["service_id"] = .string(service.id) }
        return OSBReply(.ok, body)
    }

    /// `GET /v2/service_instances/:instance_id/last_operation`: the operation named by the token,
    /// or the instance's latest; its record outlives the tenant, so a finished deprovision still
    /// answers `succeeded`.
    func lastOperation(_ instanceId: String, operation token: String?) async throws(OSBReply) -> OSBReply {
        if let token, token.isEmpty || token.utf8.count > OSBLimits.operationBytesMax {
            throw .badRequest("operation must be a non-empty string of at most \(OSBLimits.operationBytesMax) characters")
        }
        let tenantId = BrokerIds.tenant(forInstance: instanceId)
        let found: (view: InstanceView, named: BrokerOperation?) = try await readState { state in
            (InstanceView(state, tenantId: tenantId), token.flatMap { state.operation($0) })
        }
        let operation: BrokerOperation
        if let token {
            guard let named = found.named, named.tenantID == tenantId else {
                if found.view.brokerTenant == nil && found.view.last == nil {
                    return OSBReply(.notFound, error: "NotFound", "service instance \(instanceId) does not exist")
                }
                throw .badRequest("operation \(BrokerMiddleware.printable(token)) is not an operation of service instance \(instanceId)")
            }
            operation = named
        } else {
            guard let last = found.view.last else {
                return OSBReply(.notFound, error: "NotFound", "service instance \(instanceId) does not exist")
            }
            operation = last
        }
        return operationReply(operation, view: found.view)
    }

    func operationReply(_ operation: BrokerOperation, view: InstanceView) -> OSBReply {
        // A finished deprovision: the instance is gone, which OSB says with 410 (the platform
        // takes it as success and forgets the instance).
        if operation.kind == .deprovision, operation.state == .succeeded, view.tenant == nil {
            return OSBReply(.gone, ["description": .string(nonEmpty(operation.description_p, "deprovisioned"))])
        }
        switch operation.state {
        case .inProgress:
            return OSBReply(.ok, ["state": .string("in progress"), "description": .string(progress(of: operation, view: view))], retryAfterSeconds: config.retryAfterSeconds)
        case .succeeded:
            return OSBReply(.ok, ["state": .string("succeeded"), "description": .string(nonEmpty(operation.description_p, "\(Names.operationKind(operation.kind)) succeeded"))])
        default:
            var body: [String: JSONValue] = ["state": .string("failed"), "description": .string(nonEmpty(operation.description_p, "\(Names.operationKind(operation.kind)) failed"))]
            if operation.kind == .update || operation.kind == .deprovision { body["instance_usable"] = .bool(view.tenant?.state == .ready) }
            if operation.kind == .update { body["update_repeatable"] = .bool(true) }
            return OSBReply(.ok, body)
        }
    }

    /// A user-facing line about where a running operation is.
    func progress(of operation: BrokerOperation, view: InstanceView) -> String {
        switch operation.kind {
        case .provision:
            if let instance = view.activeInstance { return "provisioning: served by instance \(instance), finishing" }
            return "provisioning: placing the tenant on the instance with the most headroom"
        case .deprovision:
            return view.tenant == nil ? "deprovisioning: finishing" : "deprovisioning: removing the tenant from its instances"
        default:
            return "\(Names.operationKind(operation.kind)) in progress"
        }
    }

    static func requireQuery(_ query: [String: String], _ names: [String]) throws(OSBReply) {
        for name in names where (query[name] ?? "").isEmpty {
            throw .badRequest("the query parameter \(name) is required (a non-empty string)")
        }
    }
}

func nonEmpty(_ text: String, _ fallback: String) -> String { text.isEmpty ? fallback : text }

extension Names {
    static func operationKind(_ kind: PBOperationKind) -> String {
        switch kind {
        case .provision: return "provision"
        case .deprovision: return "deprovision"
        case .update: return "update"
        case .move: return "move"
        default: return "operation"
        }
    }
}

/// `PUT /v2/service_instances/:id` body, checked (400 otherwise; 422 for maintenance_info).
struct ProvisionRequest {
    let serviceId: String
    let plan: BrokerCatalog.Plan
    /// Over service, organization, space, context, parameters (the plan is compared apart, as
    /// it can change later through an update).
    let digest: String

    init(body: [UInt8], catalog: BrokerCatalog) throws(OSBReply) {
        let object = try OSBObject(body: body, what: "a provision request")
        let serviceId = try object.requiredString("service_id")
        self.serviceId = serviceId
        let planId = try object.requiredString("plan_id")
        let organization = try object.requiredString("organization_guid")
        let space = try object.requiredString("space_guid")
        let context = try object.optionalObject("context")
        let parameters = try object.optionalObject("parameters")
        let maintenance = try object.maintenanceVersion()
        guard catalog.services.contains(where: { $0.id == serviceId }) else {
            throw .badRequest("service_id \(serviceId) is not in the catalog")
        }
        guard let (service, plan) = catalog.plan(id: planId), service.id == serviceId else {
            throw .badRequest("plan_id \(planId) is not a plan of service \(serviceId)")
        }
        if let maintenance, maintenance != plan.maintenanceVersion {
            throw OSBReply(.unprocessableContent, error: "MaintenanceInfoConflict", "maintenance_info.version \(maintenance) is not the plan's (\(plan.maintenanceVersion ?? "none")); fetch the catalog again")
        }
        self.plan = plan
        var attributes: [String: JSONValue] = [
            "service_id": .string(serviceId), "organization_guid": .string(organization), "space_guid": .string(space),
        ]
        if let context { attributes["context"] = .object(context) }
        if let parameters { attributes["parameters"] = .object(parameters) }
        digest = Broker.attributesDigest(attributes)
    }
}

/// `PATCH /v2/service_instances/:id` body, checked (400 otherwise).
struct UpdateRequest {
    let serviceId: String
    /// The requested plan, if the body names one (it must be in the catalog).
    let plan: BrokerCatalog.Plan?
    let maintenanceVersion: String?

    init(body: [UInt8], catalog: BrokerCatalog) throws(OSBReply) {
        let object = try OSBObject(body: body, what: "an update request")
        let serviceId = try object.requiredString("service_id")
        self.serviceId = serviceId
        let planId = try object.optionalString("plan_id")
        _ = try object.optionalObject("context")
        _ = try object.optionalObject("parameters")
        if let previous = try object.optionalObject("previous_values") {
            let values = OSBObject(fields: previous)
            for key in ["service_id", "plan_id", "organization_id", "space_id"] { _ = try values.optionalString(key) }
            _ = try values.maintenanceVersion()
        }
        maintenanceVersion = try object.maintenanceVersion()
        guard catalog.services.contains(where: { $0.id == serviceId }) else {
            throw .badRequest("service_id \(serviceId) is not in the catalog")
        }
        if let planId {
            guard let (service, plan) = catalog.plan(id: planId), service.id == serviceId else {
                throw .badRequest("plan_id \(planId) is not a plan of service \(serviceId)")
            }
            self.plan = plan
        } else {
            plan = nil
        }
    }
}
