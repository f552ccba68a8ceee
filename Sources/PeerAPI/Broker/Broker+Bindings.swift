import ClusterModel
import Foundation

// Service bindings: the tenant's user credentials. Synchronous: one committed command each.
// The user token is 256 random bits, shown once (in the 201); the state keeps only its SHA-256.

extension Broker {
    struct BindingView: Sendable {
        var instance: InstanceView
        var binding: Binding?

        init(_ state: ClusterState, tenantId: String, bindingId: String) {
            instance = InstanceView(state, tenantId: tenantId)
            binding = state.binding(bindingId)
        }

        /// The binding if it is this instance's and the broker made it.
        func binding(ofTenant tenantId: String) -> Binding? {
            binding.flatMap { $0.tenantID == tenantId && !$0.attributesSha256Hex.isEmpty ? $0 : nil }
        }
    }

    func view(ofBinding bindingId: String, instance instanceId: String) async throws(OSBReply) -> BindingView {
        let tenantId = BrokerIds.tenant(forInstance: instanceId)
        let recordId = BrokerIds.binding(forBinding: bindingId)
        return try await readState { BindingView($0, tenantId: tenantId, bindingId: recordId) }
    }

    /// `PUT /v2/service_instances/:instance_id/service_bindings/:binding_id`: 201 with the
    /// credentials; 200 for an identical repeat (without the token, which the broker no longer
    /// knows); 409 for a different one or a binding id of another instance.
    func bind(_ instanceId: String, _ bindingId: String, body: [UInt8], identity: String) async throws(OSBReply) -> OSBReply {
        let request = try BindRequest(body: body)
        let tenantId = BrokerIds.tenant(forInstance: instanceId)
        let recordId = BrokerIds.binding(forBinding: bindingId)
        for _ in 0..<Self.decideAttemptsMax {
            let view = try await view(ofBinding: bindingId, instance: instanceId)
            if let existing = view.binding {
                guard existing.tenantID == tenantId, existing.attributesSha256Hex == request.digest else {
                    return OSBReply(.conflict, error: "Conflict", "service binding \(bindingId) exists with different attributes or for another instance")
                }
                return OSBReply(.ok, ["credentials": credentials(tenantId: tenantId, token: nil)])
            }
            guard let tenant = view.instance.brokerTenant else { throw .badRequest("service instance \(instanceId) does not exist") }
            guard let plan = config.catalog.plan(id: tenant.plan), plan.service.id == request.serviceId, plan.plan.id == request.planId else {
                throw .badRequest("service_id \(request.serviceId) and plan_id \(request.planId) are not those of service instance \(instanceId)")
            }
            if let running = view.instance.running { return .concurrency("service instance \(instanceId) has a \(Names.operationKind(running.kind)) in progress") }
            guard tenant.state == .ready else {
                return tenant.state == .deprovisioning
                    ? .concurrency("service instance \(instanceId) is being deprovisioned")
                    : OSBReply(.unprocessableContent, error: nil, "service instance \(instanceId) is not provisioned (its provision failed)")
            }
            let token = BrokerIds.freshUserToken()
            var create = PBCreateBinding()
            create.id = recordId
            create.tenantID = tenantId
            create.tokenSha256Hex = TokenHash.sha256Hex(of: Array(token.utf8))
            create.attributesSha256Hex = request.digest
            create.originatingIdentity = identity
            let result = try await propose(.createBinding(create))
            switch result {
            case .applied:
                logger.info("broker: bound \(recordId) to \(tenantId)")
                return OSBReply(.created, ["credentials": credentials(tenantId: tenantId, token: token)])
            case _ where Self.lostRace(result):
                continue
            default:
                throw Self.unexpected(result)
            }
        }
        throw Self.raced("service binding \(bindingId)")
    }

    /// `DELETE .../service_bindings/:binding_id`: 200 `{}` once the token is revoked (the next
    /// token check on any peer that applied it fails); 410 if there is no such binding.
    func unbind(_ instanceId: String, _ bindingId: String, query: [String: String], identity: String) async throws(OSBReply) -> OSBReply {
        let tenantId = BrokerIds.tenant(forInstance: instanceId)
        for _ in 0..<Self.decideAttemptsMax {
            let view = try await view(ofBinding: bindingId, instance: instanceId)
            // 410 first: a binding that does not exist is gone whatever else the request lacks.
            guard let binding = view.binding(ofTenant: tenantId) else { return OSBReply(.gone) }
            try Self.requireQuery(query, ["service_id", "plan_id"])
            var delete = PBDeleteBinding()
            delete.id = binding.id
            let result = try await propose(.deleteBinding(delete))
            switch result {
            case .applied:
                logger.info("broker: unbound \(binding.id) from \(tenantId)", metadata: identity.isEmpty ? [:] : ["originating": "\(identity)"])
                return OSBReply(.ok)
            case _ where Self.lostRace(result):
                continue
            default:
                throw Self.unexpected(result)
            }
        }
        throw Self.raced("service binding \(bindingId)")
    }

    /// `GET .../service_bindings/:binding_id`: the credentials without the token.
    func fetchBinding(_ instanceId: String, _ bindingId: String) async throws(OSBReply) -> OSBReply {
        let tenantId = BrokerIds.tenant(forInstance: instanceId)
        let view = try await view(ofBinding: bindingId, instance: instanceId)
        guard view.binding(ofTenant: tenantId) != nil else {
            return OSBReply(.notFound, error: "NotFound", "service binding \(bindingId) of instance \(instanceId) does not exist")
        }
        return OSBReply(.ok, ["credentials": credentials(tenantId: tenantId, token: nil)])
    }

    /// Bindings are synchronous, so a platform has no reason to poll; if it does, an existing
    /// binding's creation `succeeded`.
    func bindingLastOperation(_ instanceId: String, _ bindingId: String) async throws(OSBReply) -> OSBReply {
        let tenantId = BrokerIds.tenant(forInstance: instanceId)
        let view = try await view(ofBinding: bindingId, instance: instanceId)
        guard view.binding(ofTenant: tenantId) != nil else {
            return OSBReply(.notFound, error: "NotFound", "service binding \(bindingId) of instance \(instanceId) does not exist")
        }
        return OSBReply(.ok, ["state": .string("succeeded"), "description": .string("bound")])
    }

    /// What a bound application gets. `token` only in the 201 that created it.
    func credentials(tenantId: String, token: String?) -> JSONValue {
        var c: [String: JSONValue] = [
            "tenant_id": .string(tenantId), "tenant_url": .string(config.tenantURL(tenantId)), "token_type": .string("Bearer"),
        ]
        if let token {
            c["token"] = .string(token)
        } else {
            c["token_note"] = .string("the token is shown once, when the binding is created; unbind and bind again for a new one")
        }
        return .object(c)
    }
}

/// `PUT .../service_bindings/:id` body, checked (400 otherwise).
struct BindRequest {
    let serviceId: String
    let planId: String
    /// Over service, plan, app_guid, bind_resource, context, parameters.
    let digest: String

    init(body: [UInt8]) throws(OSBReply) {
        let object = try OSBObject(body: body, what: "a bind request")
        if try object.optionalString("predecessor_binding_id") != nil {
            throw .badRequest("binding rotation is not supported (the plans say binding_rotatable: false)")
        }
        serviceId = try object.requiredString("service_id")
        planId = try object.requiredString("plan_id")
        var attributes: [String: JSONValue] = ["service_id": .string(serviceId), "plan_id": .string(planId)]
        if let app = try object.optionalString("app_guid") { attributes["app_guid"] = .string(app) }
        if let resource = try object.optionalObject("bind_resource") {
            let r = OSBObject(fields: resource)
            _ = try r.optionalString("app_guid")
            _ = try r.optionalString("route")
            attributes["bind_resource"] = .object(resource)
        }
        if let context = try object.optionalObject("context") { attributes["context"] = .object(context) }
        if let parameters = try object.optionalObject("parameters") { attributes["parameters"] = .object(parameters) }
        digest = Broker.attributesDigest(attributes)
    }
}
