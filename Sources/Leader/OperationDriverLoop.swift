import ClusterModel
import Controller
import Failpoints
import Logging
import PeerNode

/// The leader-only shell around `Controller.OperationDriver` and `Controller.DrainDriver`
/// (ARCHITECTURE §11, §12): while this peer leads, it reads the state linearizably, asks the pure
/// drivers for the next step of every operation in progress (broker operations and tenant
/// moves) and of every draining instance, proposes them all at once (one
/// group commit), waits for them to apply, and goes again. It sleeps when there is nothing to do
/// until something wakes it (the API started an operation) or `idleMillis` pass (operations a
/// previous leader left, timeouts).
///
/// It keeps no state of its own: everything it knows is read from the replicated state each
/// round, so a new leader's loop picks up exactly where the old one stopped.
public struct OperationDriverLoop: Sendable {
    let node: any LeaderNode
    let clock: any LeaderClock
    let policy: PlacementPolicy
    let readiness: @Sendable () -> PlacementReadiness
    let routers: @Sendable () -> RouterAcks
    let liveness: @Sendable (_ nowMs: Int64, _ term: UInt64) -> InstanceLiveness
    let waker: Waker
    let idleMillis: Int
    let intervalMillis: Int
    let logger: Logger

    /// - Parameters:
    ///   - idleMillis: how often it looks for work when nothing woke it.
    ///   - intervalMillis: its pause after a round that committed steps (`broker.driverIntervalMs`).
    public init(node: any LeaderNode, policy: PlacementPolicy, waker: Waker, clock: any LeaderClock = SystemClock(), idleMillis: Int = 50, intervalMillis: Int = 0, logger: Logger,
                readiness: @escaping @Sendable () -> PlacementReadiness = { .immediate },
                routers: @escaping @Sendable () -> RouterAcks = { .none },
                liveness: @escaping @Sendable (_ nowMs: Int64, _ term: UInt64) -> InstanceLiveness = { _, _ in .allLive }) {
        self.node = node
        self.clock = clock
        self.policy = policy
        self.readiness = readiness
        self.routers = routers
        self.liveness = liveness
        self.waker = waker
        self.idleMillis = idleMillis
        self.intervalMillis = intervalMillis
        self.logger = logger
    }

    /// Runs until the task is cancelled.
    public func run() async {
        var confirmedTerm: UInt64 = 0
        var blocked: [String: String] = [:]
        while !Task.isCancelled {
            let progressed = node.leaderHint.role == .leader ? await round(confirmedTerm: &confirmedTerm, blocked: &blocked) : false
            if !progressed {
                await waker.wait(timeoutMillis: idleMillis)
            } else if intervalMillis > 0 {
                await clock.sleep(millis: intervalMillis)
            }
        }
    }

    /// One round; true if some step applied (so the next round may follow at once).
    ///
    /// The first round of a leadership term reads linearizably (ReadIndex: everything the last
    /// leader committed is applied here before deciding); later rounds of the same term read the
    /// local state, which holds every entry this leader committed, its own steps included
    /// (a proposal returns after it applied here). What committed meanwhile is seen next round.
    /// `blocked`: the drains that could not progress last round and why; a reason is logged
    /// when it first appears or changes, not every round.
    func round(confirmedTerm: inout UInt64, blocked: inout [String: String]) async -> Bool {
        let policy = self.policy
        let readiness = self.readiness()
        let routers = self.routers()
        let now = clock.nowMs()
        let term = node.leaderHint.term
        let liveness = self.liveness(now, term)
        let decided: Decided
        let decide: @Sendable (ClusterState) -> Decided = { state in
            // O(instances) when nothing is in progress, as in most rounds of an idle leader.
            var decided = Decided(steps: [], blocked: [:])
            if state.hasInProgressOperations {
                decided.steps = OperationDriver.nextSteps(state: state, policy: policy, readiness: readiness, routers: routers, liveness: liveness, nowMs: now)
            }
            if state.hasDrainingInstances {
                let drains = DrainDriver.nextSteps(state: state, policy: policy, liveness: liveness)
                decided.steps += drains.steps
                decided.blocked = drains.blocked
            }
            return decided
        }
        do {
            if term == confirmedTerm {
                // One trip to the node per round once the term's first read was linearizable.
                decided = try await node.read(linearizable: false, decide)
            } else {
                // A cheap local check before paying for a ReadIndex round.
                guard try await node.read(linearizable: false, { $0.hasInProgressOperations || $0.hasDrainingInstances }) else { return false }
                decided = try await node.read(linearizable: true, decide)
                confirmedTerm = term
            }
        } catch {
            logger.debug("operation driver: cannot read the state: \(error)")
            return false
        }
        for (instance, why) in decided.blocked where blocked[instance] != why {
            logger.warning("drain of instance \(instance) waits: \(why)")
        }
        blocked = decided.blocked
        let steps = decided.steps
        guard !steps.isEmpty else { return false }
        let node = self.node
        let logger = self.logger
        let applied = await withTaskGroup(of: Bool.self) { group in
            for step in steps {
                group.addTask {
                    do {
                        step.failpointBefore?.hit()
                        let result = try await node.propose(step.command(leaderTimeMs: now).entryBytes())
                        switch result {
                        case .applied:
                            logger.debug("operation driver: \(step.operationId): \(step.why)")
                            for failpoint in step.failpointsAfter { failpoint.hit() }
                            return true
                        case .duplicate:
                            return true
                        default:
                            logger.info("operation driver: \(step.operationId) (\(step.why)) refused: \(result)")
                            return false
                        }
                    } catch {
                        logger.debug("operation driver: \(step.operationId) (\(step.why)): \(error)")
                        return false
                    }
                }
            }
            var any = false
            for await ok in group where ok { any = true }
            return any
        }
        return applied
    }
}

/// One round's decision: the steps to propose, and the drains that wait.
struct Decided: Sendable {
    var steps: [DriverStep]
    var blocked: [String: String]
}

/// Where the chaos tests make the leader die (`PEER_FAILPOINT`): named by what the step does.
extension DriverStep {
    var failpointBefore: Failpoint? {
        switch body {
        case .setInstanceState(let c) where c.state == .drained: .drainBeforeDrained
        case .setPlacementPhase(let c) where operationKind == .move && c.phase == .gone: .moveBeforePlacementGone
        default: nil
        }
    }

    /// A drain's move is a move too: either name stops there.
    var failpointsAfter: [Failpoint] {
        switch body {
        case .moveTenant where operationKind == nil: [.drainAfterMoveStarted, .moveAfterStarted]
        case .setPlacementPhase(let c) where operationKind == .move && c.phase == .active: [.moveAfterTargetActive]
        default: []
        }
    }
}
