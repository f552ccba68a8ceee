import ClusterModel
import Controller
import Leader
import Logging
import PeerNode
import Providers
import Raft

/// The node port: the leader's loops see a simulated node through the same protocol as `PeerNode`.
final class SimPort: LeaderNode, @unchecked Sendable {
    let world: ClusterWorld
    let process: SimProcess

    init(world: ClusterWorld, process: SimProcess) {
        self.world = world
        self.process = process
    }

    var leaderHint: (leader: NodeID, role: Role, term: Term) { world.hint(process) }

    func propose(_ bytes: [UInt8]) async throws(ProposeError) -> ApplyResult {
        let result = await withUnsafeContinuation { (c: UnsafeContinuation<Result<ApplyResult, ProposeError>, Never>) in
            world.propose(process, bytes) { c.resume(returning: $0) }
        }
        return try result.get()
    }

    func read<T: Sendable>(linearizable: Bool, _ body: @escaping @Sendable (ClusterState) -> T) async throws(ReadError) -> T {
        let result = await withUnsafeContinuation { (c: UnsafeContinuation<Result<T, ReadError>, Never>) in
            world.read(process, linearizable: linearizable, serve: { c.resume(returning: .success(body($0))) }, fail: { c.resume(returning: .failure($0)) })
        }
        return try result.get()
    }

    func status() async throws(ReadError) -> NodeStatus { try world.status(process).get() }

    func changeMembership(_ change: ConfChange) async throws(ProposeError) {
        let result = await withUnsafeContinuation { (c: UnsafeContinuation<Result<ApplyResult, ProposeError>, Never>) in
            world.propose(process, [], change: change) { c.resume(returning: $0) }
        }
        _ = try result.get()
    }
}

/// The clock port: the world's virtual time, offset by the node's skew.
struct SimClock: LeaderClock {
    let world: ClusterWorld
    let process: SimProcess

    func nowMs() -> Int64 { world.nowMs + (world.nodes[process.node]?.skewMs ?? 0) }

    func sleep(millis: Int) async { await world.sleep(process, millis: millis) }
}

extension ClusterWorld {
    static let protocolVersion: UInt32 = 1
    static let providerName = "sim"

    /// Instance `x`'s addresses (never dialled: the world carries every message itself).
    static func addresses(of x: String) -> InstanceAddresses {
        let n = UInt64(x) ?? 0
        let host = "10.77.\(n / 256 % 256).\(n % 256)"
        return InstanceAddresses(peer: "\(host):7000", api: "\(host):7001", router: "\(host):8080", components: "\(host):9000")
    }

    var placementPolicy: PlacementPolicy {
        var p = PlacementPolicy(
            instanceCapacityUnits: 40, weightUnitsByPlan: ["dreamface-development": 4, "dreamface-deployment": 2], provisionTimeoutMs: 30_000)
        p.moveTimeoutMs = 20_000
        p.plantedBugs = options.plantedBugs
        return p
    }

    var balancerPolicy: BalancerPolicy {
        var b = BalancerPolicy(
            instanceRequestsPerSecond: 50, overloadWindowMs: 5_000, underloadWindowMs: 20_000, cooldownMs: 15_000, tenantCooldownMs: 60_000,
            minInstances: options.nodes, maxInstances: options.nodes + 3, observationGapMs: 5_000, planTimeoutMs: 120_000, eventsRetain: 1_000,
            addTimeoutMs: 60_000, provider: Self.providerName)
        b.plantedBugs = options.plantedBugs
        return b
    }

    /// This process's leader: the same loops, wired as `peer` wires them, over simulated ports.
    func startLoops(_ process: SimProcess) {
        let id = process.node
        let port = SimPort(world: self, process: process)
        let clock = SimClock(world: self, process: process)
        let logger = Logger(label: "sim", factory: { _ in SwiftLogNoOpLogHandler() })
        let watch = DataPlaneWatch(
            members: { [unowned self] in self.members(of: process) },
            poll: { [unowned self] member, timeout in await self.poll(from: process, to: member, timeoutMillis: timeout) },
            intervalMillis: 200, timeoutMillis: 1_000, instanceLostAfterMs: 3_000, logger: logger, clock: clock)
        let founder = founders.contains(id)
        let registrar = Registrar(
            node: port, selfID: id,
            members: founder ? founders.map { f in
                let a = Self.addresses(of: "\(f)")
                return Registrar.Member(id: f, peerAddress: a.peer, apiAddress: a.api, routerAddress: a.router ?? "", componentsAddress: a.components ?? "")
            } : [],
            version: "sim", protocolVersion: Self.protocolVersion, intervalMillis: 500, clock: clock, logger: logger)
        var settings = InstanceLifecycleLoop.Settings(clusterID: "sim", selfID: id, version: "sim", protocolVersion: Self.protocolVersion)
        settings.orphanGraceMs = 10_000
        settings.createBackoffMaxMillis = 8_000
        settings.idleListIntervalMs = 5_000
        let instances = InstanceLifecycleLoop(
            settings: settings, node: port,
            providers: [.init(name: Self.providerName, provider: SimProvider(world: self, process: process))],
            bootstrap: { _, _ in [:] }, answering: { term in watch.answering(term: term) }, clock: clock, logger: logger)
        let waker = Waker(clock: clock)
        var balancerSettings = BalancerLoop.Settings()
        balancerSettings.seedIDs = founders.map { "\($0)" }
        let balancer = BalancerLoop(
            settings: balancerSettings, node: port, policy: balancerPolicy, placement: placementPolicy, watch: watch, waker: waker, clock: clock,
            instances: instances, logger: logger)
        let leader = Leader(
            node: port, registrar: registrar, policy: placementPolicy, watch: watch, waker: waker, instances: instances, balancer: balancer,
            logger: logger)
        process.task = Task(executorPreference: executor) { await leader.run() }
    }

    /// The members the watch polls: the instances this node's state knows, not removed.
    func members(of process: SimProcess) -> [NodeID: DataPlaneWatch.Member] {
        guard process.alive, let n = nodes[process.node] else { return [:] }
        var out: [NodeID: DataPlaneWatch.Member] = [:]
        for i in n.state.allInstances where i.state != .removed {
            if let id = NodeID(i.id) { out[id] = .init(supervised: true, routed: true) }
        }
        return out
    }

    /// One poll of a member's data plane: answered after a network latency if the member is up
    /// and reachable, else nothing within the timeout.
    func poll(from process: SimProcess, to member: NodeID, timeoutMillis: Int) async -> DataPlaneWatch.PollAnswer? {
        let latency = Int(random(2...30))
        await sleep(process, millis: latency)
        guard process.alive, !network.cutOff(process.node, member), let n = nodes[member], n.isUp else {
            await sleep(process, millis: max(1, timeoutMillis - latency))
            return nil
        }
        return .report(report(of: n))
    }
}
