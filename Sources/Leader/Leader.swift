import Controller
import Logging

/// The leader's duties in one home (ARCHITECTURE §11, ADR 0010): the loops that feed the pure
/// `Controller` the replicated state, the data plane's reports and the clock, and carry out
/// what it decides. Every loop runs on every peer and acts only while that peer leads, so when
/// leadership moves, the new leader's loops pick up from the replicated state alone.
///
/// Today: the registrar (configured members become instances), the operation driver (broker
/// operations, tenant moves, drains), the data-plane watch (readiness and router acks for it,
/// and the failure detector) and the provisioner (instances added and removed through the
/// provider, learners promoted up to the voter target) and the balancer (tenants moved and
/// instances added or removed as the load asks, docs/balancer.md).
public final class Leader: Sendable {
    let node: any LeaderNode
    let registrar: Registrar
    let driver: OperationDriverLoop
    let watch: DataPlaneWatch
    let waker: Waker
    /// The provisioner: instances added and removed through the providers, learners promoted
    /// (nil: not wired, in tests of the other loops).
    public let instances: InstanceLifecycleLoop?
    /// The balancer (nil: the cluster file's `balancer.enabled` is false, or tests of the other loops).
    let balancer: BalancerLoop?

    /// - Parameters:
    ///   - waker: what the API wakes when it starts an operation (`wake()`).
    public init(node: any LeaderNode, registrar: Registrar, policy: PlacementPolicy, watch: DataPlaneWatch, waker: Waker = Waker(),
                instances: InstanceLifecycleLoop? = nil, balancer: BalancerLoop? = nil, driverIdleMillis: Int = 50, driverIntervalMillis: Int = 0, logger: Logger) {
        self.node = node
        self.instances = instances
        self.balancer = balancer
        self.registrar = registrar
        self.watch = watch
        self.waker = waker
        driver = OperationDriverLoop(
            node: node, policy: policy, waker: waker, clock: waker.clock, idleMillis: driverIdleMillis, intervalMillis: driverIntervalMillis, logger: logger,
            readiness: { watch.readiness() }, routers: { watch.routerAcks() }, liveness: { watch.liveness(nowMs: $0, term: $1) })
    }

    /// Makes the operation driver's next round start now (an operation was started).
    public func wake() { waker.wake() }

    /// Runs every loop until the task is cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.registrar.run() }
            group.addTask { await self.driver.run() }
            // Always: the watch is the failure detector too, not only the data plane's eyes.
            group.addTask { await self.watch.run(node: self.node) }
            if let instances = self.instances { group.addTask { await instances.run() } }
            if let balancer = self.balancer { group.addTask { await balancer.run() } }
        }
    }
}
