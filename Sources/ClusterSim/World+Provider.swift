import ClusterModel
import Providers
import Raft

/// What the simulated provider holds: instance id → running.
struct ProviderLedger {
    var running: Set<String> = []
    var destroyed: Set<String> = []
}

/// The provider port, one per process: calls from a dead process do nothing. Creates and
/// destroys fail before acting, fail after acting (the answer is lost: the caller retries an
/// instance that exists), or hang for tens of seconds, all from the seed.
struct SimProvider: InstanceProvider {
    let world: ClusterWorld
    let process: SimProcess
    var kind: String { "sim" }

    func create(_ request: ProvisionRequest) async throws(ProviderError) -> ProvidedInstance {
        try await world.providerCreate(process, request.instanceID)
    }

    func destroy(clusterID: String, instanceID: String) async throws(ProviderError) {
        try await world.providerDestroy(process, instanceID)
    }

    func list(clusterID: String) async throws(ProviderError) -> [ProvidedInstance] {
        try await world.providerList(process)
    }
}

extension ClusterWorld {
    enum ProviderFault { case none, failBefore, failAfter, hang }

    func providerFault() -> ProviderFault {
        guard faults else { return .none }
        let roll = Int(rng.next() % 1000)
        if roll < 80 { return .failBefore }
        if roll < 120 { return .failAfter }
        if roll < 160 { return .hang }
        return .none
    }

    func providerError(_ op: String, _ x: String?, _ why: String) -> ProviderError {
        ProviderError("sim", op, instance: x, .unavailable, why)
    }

    func provided(_ x: String) -> ProvidedInstance {
        ProvidedInstance(
            clusterID: "sim", instanceID: x,
            addresses: Self.addresses(of: x),
            state: provider.running.contains(x) ? .running : .stopped, handle: "sim \(x)")
    }

    /// A create or destroy up to its effect: the call's latency, its fault, and a hang or a
    /// failure before acting (thrown); returns the fault still to come (`failAfter`) or none.
    func providerCall(_ p: SimProcess, _ op: String, _ x: String, hangMaxMs: Int64) async throws(ProviderError) -> ProviderFault {
        await sleep(p, millis: Int(random(5...200)))
        let fault = providerFault()
        if fault == .hang {
            counters.providerHangs += 1
            await sleep(p, millis: Int(random(10_000...hangMaxMs)))
        }
        guard p.alive else { throw providerError(op, x, "the caller died") }
        if fault == .failBefore {
            counters.providerFailures += 1
            throw providerError(op, x, "simulated failure before acting")
        }
        return fault
    }

    func providerCreate(_ p: SimProcess, _ x: String) async throws(ProviderError) -> ProvidedInstance {
        let fault = try await providerCall(p, "create", x, hangMaxMs: 40_000)
        createEffect(x, by: p.node)
        if fault == .failAfter {
            counters.providerDuplicates += 1
            throw providerError("create", x, "simulated failure after acting (the answer was lost)")
        }
        return provided(x)
    }

    /// The instance exists from here: the checks of a create.
    func createEffect(_ x: String, by caller: NodeID) {
        guard !provider.running.contains(x) else { return }
        let known = order.contains { id in
            guard let n = nodes[id], n.isUp else { return false }
            return n.state.instance(x) != nil || n.state.allIntents.contains { $0.instanceID == x }
        }
        if !known {
            return fail("provision-without-intent", "node \(caller) had the provider create instance \(x), which no committed intent or instance names")
        }
        if provider.destroyed.contains(x) {
            return fail("provisioned-twice", "instance \(x) was created again after the provider destroyed it")
        }
        guard let id = NodeID(x) else { return fail("provision-without-intent", "instance id \(x) is not a node id") }
        provider.running.insert(x)
        counters.instancesCreated += 1
        note("provider creates \(x) (asked by \(caller))")
        if nodes[id] == nil { addNode(id, conf: ConfState(voters: [])) }
        let n = nodes[id]!
        if !n.isUp { n.startAtMs = nowMs + random(300...2_000) }
    }

    func providerDestroy(_ p: SimProcess, _ x: String) async throws(ProviderError) {
        let fault = try await providerCall(p, "destroy", x, hangMaxMs: 30_000)
        if provider.running.remove(x) != nil {
            provider.destroyed.insert(x)
            counters.instancesDestroyed += 1
            note("provider destroys \(x) (asked by \(p.node))")
            if let id = NodeID(x), let n = nodes[id] {
                n.destroyed = true
                crash(id, why: "destroyed by the provider")
            }
        }
        if fault == .failAfter {
            counters.providerDuplicates += 1
            throw providerError("destroy", x, "simulated failure after acting (the answer was lost)")
        }
    }

    func providerList(_ p: SimProcess) async throws(ProviderError) -> [ProvidedInstance] {
        await sleep(p, millis: Int(random(5...100)))
        guard p.alive else { throw providerError("list", nil, "the caller died") }
        if faults && chance(perMille: 50) {
            counters.providerFailures += 1
            throw providerError("list", nil, "simulated failure")
        }
        return provider.running.sorted().map { provided($0) }
    }
}
