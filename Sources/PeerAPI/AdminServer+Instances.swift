import ClusterModel
import Controller
import Failpoints
import Foundation
import Hummingbird
import HTTPTypes
import PeerNode

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
        router.post("instances") { request, _ in
            var request = request
            return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (InstanceInfo, HTTPResponse.Status) in
                try await self.addInstance(try Self.changeRequest(body))
            }
        }
        router.delete("instances/:id") { request, context in
            var request = request
            let id = Self.pathSegment(context, "id")
            return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (InstanceInfo, HTTPResponse.Status) in
                try await self.removeInstance(try id.get(), try Self.changeRequest(body))
            }
        }
        router.post("instances/:id/restart") { request, context in
            var request = request
            let id = Self.pathSegment(context, "id")
            return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (InstanceRestarted, HTTPResponse.Status) in
                let req: InstanceRestartRequest
                do { req = try JSONDecoder().decode(InstanceRestartRequest.self, from: Data(body)) } catch {
                    throw APIError("badRequest", "the body is not a restart request ({\"binary\": \"/absolute/path/of/peer\"}): \(error)")
                }
                guard req.binary.hasPrefix("/"), req.binary.utf8.count <= 4096, !req.binary.contains("\0") else {
                    throw APIError("badRequest", "binary must be an absolute path on the provider's host, got \(req.binary.prefix(100).debugDescription)")
                }
                guard let restart = self.config.restartInstance else { throw APIError("notFound", "this peer runs no provisioner") }
                return (try await restart(try id.get(), req.binary).get(), .ok)
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

    static func changeRequest(_ body: [UInt8]) throws(APIError) -> InstanceChangeRequest {
        do {
            return body.isEmpty ? InstanceChangeRequest() : try JSONDecoder().decode(InstanceChangeRequest.self, from: Data(body))
        } catch {
            throw APIError("badRequest", "the body is not an instance request ({\"clientId\": ..., \"sequence\": ..., \"timeoutMs\": ...}, all optional): \(error)")
        }
    }

    /// Records the intent to add a new instance (the next free id) and wakes nobody: the
    /// leader's provisioner finds the intent on its next round (docs/adr/0013). 202 with the
    /// instance as it will be (state `joining`, intent `provision`).
    func addInstance(_ req: InstanceChangeRequest) async throws(APIError) -> (InstanceInfo, HTTPResponse.Status) {
        guard let provisioning = config.provisioning else {
            throw APIError("conflict", "this cluster has no provider: add `providers:` to the cluster file (docs/providers.md) to add instances")
        }
        let provider: Provisioning.Provider
        if let name = req.provider {
            guard let named = provisioning.providers.first(where: { $0.name == name }) else {
                throw APIError("badRequest", "no provider \(name); the cluster file's providers: \(provisioning.providers.map(\.name).joined(separator: ", "))")
            }
            provider = named
        } else {
            provider = provisioning.providers[0]
        }
        let timeout = req.timeoutMs ?? provider.addTimeoutMs
        guard (10_000...86_400_000).contains(timeout) else { throw APIError("badRequest", "timeoutMs must be 10000..86400000, got \(timeout)") }
        let seeds = config.members.keys.map { "\($0)" }
        let id: String
        do {
            id = try await node.read(linearizable: false) { InstanceLifecycle.nextInstanceID(state: $0, seedIDs: seeds) }
        } catch {
            throw Self.apiError(error)
        }
        // The intent's id carries a tag of the request, so a retry (same client and sequence,
        // which the log answers as a duplicate) finds the instance its first try added: the id
        // this retry chose anew may be the next one.
        let client = req.clientId ?? Self.freshClientID()
        let sequence = req.sequence ?? 1
        let tag = Self.requestTag(client: client, sequence: sequence)
        var c = PBRecordIntent()
        c.id = InstanceLifecycle.provisionIntentID(id) + "-" + tag
        c.kind = .provision
        c.instanceID = id
        c.deadlineMs = Self.nowMs() + timeout
        c.provider = provider.name
        let (result, first) = try await propose(.recordIntent(c), clientId: client, sequence: sequence) { state in
            state.allIntents.first { $0.kind == .provision && $0.id.hasSuffix("-" + tag) }
        }
        switch result {
        case .duplicate(.applied):
            guard let first else {
                throw APIError("conflict", "this request (client \(client), sequence \(sequence)) added an instance before, whose add has ended; `peer instances list` shows it")
            }
            var info = InstanceInfo(id: first.instanceID, address: "", role: "learner", state: "joining", version: "", activeTenants: 0, placements: 0)
            info.intent = "provision"
            info.intentDeadlineMs = first.deadlineMs
            info.provider = first.provider
            return (info, .accepted)
        case .applied:
            Failpoint.provisionAfterCommit.hit()
            var info = InstanceInfo(id: id, address: "", role: "learner", state: "joining", version: "", activeTenants: 0, placements: 0)
            info.intent = "provision"
            info.intentDeadlineMs = c.deadlineMs
            info.provider = c.provider
            return (info, .accepted)
        default:
            throw Self.apiError(result)
        }
    }

    /// 16 hex digits of FNV-1a over `client|sequence`: names one request in an intent id.
    static func requestTag(client: String, sequence: UInt64) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(client)|\(sequence)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Records the intent to remove instance `id`: the provisioner drains it, takes it out of
    /// the Raft configuration and has the provider destroy it. Refused at once when the cluster
    /// could not let it go (the last voter; below the voter target with no learner to promote).
    func removeInstance(_ id: String, _ req: InstanceChangeRequest) async throws(APIError) -> (InstanceInfo, HTTPResponse.Status) {
        let timeout = req.timeoutMs ?? 3_600_000
        guard (10_000...604_800_000).contains(timeout) else { throw APIError("badRequest", "timeoutMs must be 10000..604800000, got \(timeout)") }
        let status: NodeStatus
        do { status = try await node.status() } catch { throw Self.apiError(error) }
        let last = status.lastIndex
        let inputs = InstanceLifecycle.Inputs(
            voters: Set(status.voters.map { "\($0)" }), learners: Set(status.learners.map { "\($0)" }),
            caughtUp: Set(status.progress.filter { InstanceLifecycle.isCaughtUp(match: $0.match, lastIndex: last, recentlyActive: $0.recentActive) }.map { "\($0.id)" }),
            answering: [], provided: nil, nowMs: Self.nowMs())
        let refusal: String?
        do {
            refusal = try await node.read(linearizable: false) { state -> String? in
                guard let instance = state.instance(id) else { return "no instance \(id)" }
                if instance.state == .removed { return "instance \(id) is already removed" }
                return InstanceLifecycle.voterRemovalRefusal(id, state: state, inputs: inputs)
            }
        } catch {
            throw Self.apiError(error)
        }
        if let refusal {
            throw refusal.hasPrefix("no instance") ? APIError("notFound", refusal) : APIError("conflict", refusal)
        }
        var c = PBRecordIntent()
        c.id = InstanceLifecycle.decommissionIntentID(id)
        c.kind = .decommission
        c.instanceID = id
        c.deadlineMs = Self.nowMs() + timeout
        let (result, info) = try await propose(.recordIntent(c), clientId: req.clientId, sequence: req.sequence) { s in
            s.instance(id).map { InstanceInfo($0, state: s, active: s.activeTenantCountsByInstance) }
        }
        switch result {
        case .applied, .duplicate(.applied):
            Failpoint.decommissionAfterCommit.hit()
            guard let info else { throw APIError("notFound", "no instance \(id)") }
            return (info, .accepted)
        default:
            throw Self.apiError(result)
        }
    }

    func listInstances(consistent: Bool) async throws(APIError) -> [InstanceInfo] {
        do {
            return try await node.read(linearizable: consistent) { state in
                let active = state.activeTenantCountsByInstance
                return state.allInstances.map { InstanceInfo($0, state: state, active: active) }
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
        if let reason = req.reason, !reason.isEmpty {
            // A field of protocol version 2: set only once every member applies it (before, a
            // member of version 1 would ignore it and the replicas would differ).
            let version: UInt32
            do { version = try await node.read(linearizable: false) { max(1, $0.minProtocolVersion) } } catch { throw Self.apiError(error) }
            if version >= 2 { c.reason = reason }
        }
        let (result, info) = try await propose(.setInstanceState(c), clientId: req.clientId, sequence: req.sequence) { s in
            s.instance(id).map { InstanceInfo($0, state: s, active: s.activeTenantCountsByInstance) }
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
    /// `active`: `state.activeTenantCountsByInstance`, counted once for every instance listed.
    init(_ instance: Instance, state: ClusterState, active: [String: Int]) {
        self.init(
            id: instance.id, address: instance.address, role: Names.instanceRole(instance.role), state: Names.instanceState(instance.state),
            version: instance.version, activeTenants: active[instance.id] ?? 0,
            placements: state.placements(onInstance: instance.id).count, stateSinceMs: instance.stateSinceMs)
        apiAddress = instance.apiAddress.isEmpty ? nil : instance.apiAddress
        routerAddress = instance.routerAddress.isEmpty ? nil : instance.routerAddress
        componentsAddress = instance.componentsAddress.isEmpty ? nil : instance.componentsAddress
        provider = instance.provider.isEmpty ? nil : instance.provider
        stateReason = instance.stateReason.isEmpty ? nil : instance.stateReason
        protocolVersion = instance.protocolVersion
        if let intent = state.allIntents.first(where: { $0.instanceID == instance.id }) {
            self.intent = intent.kind == .provision ? "provision" : "decommission"
            intentDeadlineMs = intent.deadlineMs
        }
    }
}
