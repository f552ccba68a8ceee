import ClusterModel

/// Drain (ARCHITECTURE §12), as a pure function: for every instance in state `draining`, the
/// next commands that empty it, make-before-break:
///
///     a ready tenant active there, no operation in progress → a move to the live, active
///         instance with the most headroom (at most `movesInFlightPerInstanceMax` at a time;
///         none while no instance has room: the drain waits and says so in `blocked`)
///     a tenant with an operation in progress (a move away, a provision, a deprovision)
///         → nothing: that operation's driver finishes it first
///     nothing placed there any more → the instance `drained`; its agent has stopped the
///         components (each tenant's placement went only after its move confirmed), so
///         nothing is served there
///
/// Every decision is a function of the replicated state (and the failure detector's view), so a
/// new leader continues a drain where the last one stopped. Each move is an ordinary move
/// operation with an id derived from the drain (instance, the time it began, tenant): a leader
/// that repeats the step gets the same operation, not a second move.
public enum DrainDriver {
    /// Moves away from one draining instance in flight at once: bounded churn, and room left
    /// in the driver's batch for other work.
    public static let movesInFlightPerInstanceMax = 4
    /// Moves of one tenant a drain tries before it reports the tenant as stuck.
    public static let attemptsMax = 5

    public struct Round: Sendable, Equatable {
        public var steps: [DriverStep]
        /// Draining instance id → why it made no progress this round (no room elsewhere).
        public var blocked: [String: String]
    }

    public static func nextSteps(state: ClusterState, policy: PlacementPolicy, liveness: InstanceLiveness = .allLive) -> Round {
        var capacity: CapacityLedger?
        var round = Round(steps: [], blocked: [:])
        for instance in state.instances(in: .draining) {
            let placements = state.placements(onInstance: instance.id)
            if placements.isEmpty {
                var body = PBSetInstanceState()
                body.id = instance.id
                body.state = .drained
                round.steps.append(DriverStep(
                    clientId: "drain/\(instance.id)", tenantId: "", operationId: "drain/\(instance.id)",
                    body: .setInstanceState(body), why: "nothing is placed on \(instance.id) any more: drained", state: state))
                continue
            }
            var inFlight = 0
            var movable: [Tenant] = []
            for placement in placements {
                if let op = state.inProgressOperation(ofTenant: placement.tenantID) {
                    if op.kind == .move && op.sourceInstanceID == instance.id { inFlight += 1 }
                    continue
                }
                guard placement.phase == .active, let tenant = state.tenant(placement.tenantID), tenant.state == .ready else { continue }
                movable.append(tenant)
            }
            for tenant in movable.prefix(max(0, movesInFlightPerInstanceMax - inFlight)) {
                if capacity == nil { capacity = CapacityLedger(state: state, policy: policy, liveness: liveness) }
                let units = policy.weightUnits(ofPlan: tenant.plan)
                guard let target = capacity!.reserveMostHeadroom(units: units) else {
                    round.blocked[instance.id] = "no live, active instance has \(units) free capacity units for tenant \(tenant.id); add an instance or activate one"
                    break
                }
                // A failed move (its target never served the tenant) is tried again under the
                // next attempt's id, up to `attemptsMax` in all.
                let base = operationId(instance: instance, tenant: tenant.id)
                guard let attempt = (1...attemptsMax).first(where: { state.operation(attemptId(base, $0)) == nil }) else {
                    round.blocked[instance.id] = "\(attemptsMax) moves of tenant \(tenant.id) failed (the last: \(state.operation(attemptId(base, attemptsMax))?.description_p ?? "?")); activate the instance, fix the cause, drain again"
                    continue
                }
                var move = PBMoveTenant()
                move.tenantID = tenant.id
                move.instanceID = target
                move.operationID = attemptId(base, attempt)
                move.originatingIdentity = "drain of instance \(instance.id)"
                round.steps.append(DriverStep(
                    clientId: DriverStep.clientId(forOperation: move.operationID), tenantId: tenant.id, operationId: move.operationID,
                    body: .moveTenant(move), why: "drain \(instance.id): move \(tenant.id) to \(target)", state: state))
            }
        }
        return round
    }

    /// `drain-<instance>-<drain start, base 36>-<tenant>`, or, when that exceeds the id limit,
    /// the same with the instance and tenant replaced by a hash of both. Deterministic: every
    /// leader derives the same id for the same drain and tenant.
    static func operationId(instance: Instance, tenant: String) -> String {
        let since = String(UInt64(max(0, instance.stateSinceMs)), radix: 36)
        let readable = "drain-\(instance.id)-\(since)-\(tenant)"
        // Room for an attempt suffix (`-5`).
        if readable.utf8.count <= ClusterLimits.idBytesMax - 2 { return readable }
        return "drain-\(since)-\(IdHash.fnv1a64Hex("\(instance.id)/\(tenant)"))"
    }

    static func attemptId(_ base: String, _ attempt: Int) -> String {
        attempt == 1 ? base : "\(base)-\(attempt)"
    }
}
