import ClusterModel
import Failpoints
import Foundation
import Hummingbird
import HTTPTypes

/// `/v1/instances`: the instances (members) and their lifecycle by hand: list, drain (move every
/// tenant away, make-before-break; the leader's drain driver does it), activate (take tenants
/// again, also to cancel a drain). docs/api.md §Instances.
extension AdminServer {
    func addInstanceRoutes(to router: RouterGroup<AdminRequestContext>) {
        router.get("instances") { request, _ in
            await self.respond { () async throws(APIError) -> [InstanceInfo] in try await self.listInstances(consistent: Self.flag(request, "consistent")) }
        }
        router.get("instances/:id") { request, context in
            let id = Self.pathSegment(context, "id")
            return await self.respond { () async throws(APIError) -> InstanceInfo in
                let id = try id.get()
                guard let info = try await self.listInstances(consistent: Self.flag(request, "consistent")).first(where: { $0.id == id }) else {
                    throw APIError("notFound", "no instance \(id)")
                }
                return info
            }
        }
        for (verb, state) in [("drain", PBInstanceState.draining), ("activate", .active)] {
            router.post("instances/:id/\(verb)") { request, context in
                var request = request
                let id = Self.pathSegment(context, "id")
                return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (InstanceInfo, HTTPResponse.Status) in
                    let req: InstanceStateRequest
                    do { req = body.isEmpty ? InstanceStateRequest() : try JSONDecoder().decode(InstanceStateRequest.self, from: Data(body)) } catch {
                        throw APIError("badRequest", "the body is not an instance request ({\"clientId\": ..., \"sequence\": ...}, both optional): \(error)")
                    }
                    return try await self.setInstanceState(try id.get(), state, req)
                }
            }
        }
    }

    /// `/v1/failpoints`: arm one failpoint in THIS peer (not forwarded), for tests that make
    /// exactly the leader die at a step. Only in a peer started with `PEER_FAILPOINT`.
    func addFailpointRoutes(to router: RouterGroup<AdminRequestContext>) {
        router.get("failpoints") { _, _ in
            await self.respond { () async throws(APIError) -> FailpointsInfo in
                FailpointsInfo(enabled: Failpoint.enabled, armed: Failpoint.armed?.rawValue, names: Failpoint.allCases.map(\.rawValue))
            }
        }
        router.put("failpoints/:name") { _, context in
            let name = Self.pathSegment(context, "name")
            return await self.respond { () async throws(APIError) -> FailpointsInfo in
                let name = try name.get()
                guard let failpoint = Failpoint(rawValue: name) else {
                    throw APIError("notFound", "no failpoint \(name); GET /v1/failpoints lists them")
                }
                guard Failpoint.arm(failpoint) else {
                    throw APIError("forbidden", "peer \(self.config.selfID) was not started with \(Failpoint.environmentVariable) (\(Failpoint.environmentVariable)=\(Failpoint.armableValue) enables arming)")
                }
                self.config.logger.warning("failpoint \(name) armed: this peer exits when it gets there")
                return FailpointsInfo(enabled: true, armed: name, names: Failpoint.allCases.map(\.rawValue))
            }
        }
        router.delete("failpoints") { _, _ in
            await self.respond { () async throws(APIError) -> FailpointsInfo in
                Failpoint.arm(nil)
                return FailpointsInfo(enabled: Failpoint.enabled, armed: nil, names: Failpoint.allCases.map(\.rawValue))
            }
        }
    }

    func listInstances(consistent: Bool) async throws(APIError) -> [InstanceInfo] {
        do {
            return try await node.read(linearizable: consistent) { state in
                let active = state.activeTenantCountsByInstance
                return state.allInstances.map { InstanceInfo($0, activeTenants: active[$0.id] ?? 0, placements: state.placements(onInstance: $0.id).count) }
            }
        } catch {
            throw Self.apiError(error)
        }
    }

    /// Drain (→ draining) or activate (→ active); the answer is the instance after the entry
    /// applied. A drain wakes the leader's driver, which starts the moves.
    func setInstanceState(_ id: String, _ state: PBInstanceState, _ req: InstanceStateRequest) async throws(APIError) -> (InstanceInfo, HTTPResponse.Status) {
        var c = PBSetInstanceState()
        c.id = id
        c.state = state
        let (result, info) = try await propose(.setInstanceState(c), clientId: req.clientId, sequence: req.sequence) { s in
            s.instance(id).map { InstanceInfo($0, activeTenants: s.activeTenantCountsByInstance[id] ?? 0, placements: s.placements(onInstance: id).count) }
        }
        switch result {
        case .applied, .duplicate(.applied):
            if state == .draining {
                Failpoint.drainAfterCommit.hit()
                wakeLeader()
            }
            guard let info else { throw APIError("notFound", "no instance \(id)") }
            return (info, .ok)
        default:
            throw Self.apiError(result)
        }
    }
}

extension InstanceInfo {
    init(_ instance: Instance, activeTenants: Int, placements: Int) {
        self.init(
            id: instance.id, address: instance.address, role: Names.instanceRole(instance.role), state: Names.instanceState(instance.state),
            version: instance.version, activeTenants: activeTenants, placements: placements, stateSinceMs: instance.stateSinceMs)
    }
}
