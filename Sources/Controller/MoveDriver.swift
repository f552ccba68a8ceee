import ClusterModel

/// The move driver, as a pure function: the next step of one tenant move (an operation of kind
/// `move`), from the replicated state, the router acknowledgements and the leader's clock. The
/// operation driver's rounds call it for every move in progress, so moves and broker operations
/// share one loop, one proposal batch and one client session per operation.
enum MoveDriver {
    /// A make-before-break move (ARCHITECTURE §10), decided from the replicated state alone:
    ///
    ///     target preparing  → (target serves the tenant) target active, source draining
    ///                       → (every live router runs that config, then the grace period)
    ///                         source gone  → operation succeeded
    ///     target not served within moveTimeoutMs, no longer active, or lost (the failure
    ///     detector): target gone → failed, the tenant stays on its source
    static func step(
        _ op: BrokerOperation, state: ClusterState, policy: PlacementPolicy, readiness: PlacementReadiness,
        routers: RouterAcks, liveness: InstanceLiveness = .allLive, nowMs: Int64
    ) -> OperationDriver.Decision {
        guard let tenant = state.tenant(op.tenantID) else {
            return .act(.finishOperation(OperationDriver.finish(op.id, .failed, "tenant \(op.tenantID) no longer exists")), "tenant gone")
        }
        let target = op.targetInstanceID
        let placements = state.placements(ofTenant: tenant.id)
        let onTarget = placements.first { $0.instanceID == target }
        let timedOut = nowMs - op.startedMs >= policy.moveTimeoutMs
        switch onTarget?.phase {
        case .preparing?:
            let preparing = onTarget!
            if state.instance(target)?.state != .active {
                return .act(.setPlacementPhase(OperationDriver.phase(preparing, .gone)), "target \(target) is no longer active: withdraw")
            }
            if let why = liveness.lost[target] {
                return .act(.setPlacementPhase(OperationDriver.phase(preparing, .gone)), "target \(target) lost (\(why)): withdraw")
            }
            if readiness.isReady(preparing) || policy.plantedBugs.contains(.moveActivatesBeforeReady) {
                return .act(.setPlacementPhase(OperationDriver.phase(preparing, .active)), "target \(target) serves \(tenant.id): activate, source drains")
            }
            if timedOut {
                return .act(.setPlacementPhase(OperationDriver.phase(preparing, .gone)), "target \(target) did not serve \(tenant.id) in time: withdraw")
            }
            return .wait
        case .active?:
            guard let draining = placements.first(where: { $0.phase == .draining }) else {
                return .act(
                    .finishOperation(OperationDriver.finish(op.id, .succeeded, "moved from \(op.sourceInstanceID) to \(target)")), "move done")
            }
            let active = onTarget!
            guard let graceStart = routers.graceStart(forIndex: active.phaseSinceIndex, appliedAtMs: active.phaseSinceMs) else { return .wait }
            let grace = Int64(state.settings.moveGraceMs)
            guard nowMs - graceStart >= grace else { return .wait }
            return .act(.setPlacementPhase(OperationDriver.phase(draining, .gone)), "routers confirmed index \(active.phaseSinceIndex), grace \(grace) ms passed: drop \(draining.instanceID)")
        default:
            let why: String
            if let lost = liveness.lost[target] {
                why = "instance \(target) was lost (\(lost)); the tenant stays on \(op.sourceInstanceID)"
            } else if timedOut {
                why = "instance \(target) did not serve tenant \(tenant.id) within \(policy.moveTimeoutMs / 1000) s; the tenant stays on \(op.sourceInstanceID)"
            } else {
                why = "the placement on \(target) was withdrawn (instance \(target) left the active set); the tenant stays on \(op.sourceInstanceID)"
            }
            return .act(.finishOperation(OperationDriver.finish(op.id, .failed, why)), "move failed")
        }
    }
}
