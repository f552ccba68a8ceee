import ClusterModel

/// The broker's operation driver, as a pure function: given the applied state, the placement
/// policy and the leader's clock, the next command for every operation in progress
/// (ARCHITECTURE §11, "Broker"). The leader runs it in a loop and proposes what it returns; a new
/// leader runs the same function on the same replicated state, so it resumes exactly where the
/// last one stopped: an operation's progress is only ever what the log says.
///
/// One step per operation per round, each a committed command, each validated again by apply:
///
///     provision:   place on the instance with the most headroom  → placement active (once the
///                  target is ready), which makes the tenant ready and finishes the operation
///                  succeeded in the same entry (apply does it; two entries in all after the
///                  request's own). On an instance with nothing to prepare (no agent) the
///                  placement is made active at once: one entry after the request's.
///                  (no headroom, or never ready, for `provisionTimeoutMs`: withdraw the
///                  placement, then operation failed; the tenant stays for orphan mitigation)
///     deprovision: active placement draining, preparing/draining gone  → tenant deleted, which
///                  finishes the operation succeeded in the same entry
///     update:      the broker's updates finish in the entry that starts them; one found running
///                  (started by another proposer) is finished succeeded
///     move:        `MoveDriver` (a tenant move is an operation too, driven in the same rounds)
public enum OperationDriver {
    /// The next commands, oldest operation first. Waiting operations (no headroom yet, placement
    /// not ready yet) contribute nothing this round.
    /// At most this many operations advance per round (oldest first), so one round's proposals
    /// stay within the node's request queue; the rest advance in the next rounds.
    public static let stepsPerRoundMax = 512

    public static func nextSteps(
        state: ClusterState, policy: PlacementPolicy, readiness: PlacementReadiness = .immediate, routers: RouterAcks = .none,
        liveness: InstanceLiveness = .allLive, nowMs: Int64
    ) -> [DriverStep] {
        var capacity: CapacityLedger?  // computed only if some provision needs a placement
        var steps: [DriverStep] = []
        for operation in state.oldestInProgressOperations(stepsPerRoundMax) {
            let decision: Decision
            switch operation.kind {
            case .provision:
                decision = provisionStep(
                    operation, state: state, policy: policy, readiness: readiness, liveness: liveness, nowMs: nowMs, capacity: &capacity)
            case .deprovision:
                decision = deprovisionStep(operation, state: state)
            case .move:
                decision = MoveDriver.step(
                    operation, state: state, policy: policy, readiness: readiness, routers: routers, liveness: liveness, nowMs: nowMs)
            default:
                decision = .act(.finishOperation(finish(operation.id, .succeeded, "nothing left to do")), "finish the \(operation.kind) operation")
            }
            if case .act(let body, let why) = decision {
                steps.append(DriverStep(operation: operation, body: body, why: why, state: state))
            }
        }
        return steps
    }

    enum Decision {
        case act(Command.OneOf_Body, String)
        case wait
    }

    static func provisionStep(
        _ op: BrokerOperation, state: ClusterState, policy: PlacementPolicy, readiness: PlacementReadiness,
        liveness: InstanceLiveness = .allLive, nowMs: Int64, capacity: inout CapacityLedger?
    ) -> Decision {
        guard let tenant = state.tenant(op.tenantID) else {
            // Apply finishes a tenant's operation when it deletes the tenant; kept for safety.
            return .act(.finishOperation(finish(op.id, .failed, "tenant \(op.tenantID) no longer exists")), "tenant gone")
        }
        guard tenant.state != .deprovisioning else {
            return .act(.finishOperation(finish(op.id, .failed, "tenant \(op.tenantID) is being deprovisioned")), "tenant deprovisioning")
        }
        let placements = state.placements(ofTenant: tenant.id)
        let timedOut = nowMs - op.startedMs >= policy.provisionTimeoutMs
        if let active = placements.first(where: { $0.phase == .active }) {
            // Apply finishes the provision in the entry that activates the placement; these two
            // steps only finish one that reached this state otherwise (kept for safety).
            if tenant.state == .provisioning {
                return .act(.setTenantState(tenantState(tenant.id, .ready)), "tenant served by \(active.instanceID): ready")
            }
            return .act(.finishOperation(finish(op.id, .succeeded, "tenant \(tenant.id) is served by instance \(active.instanceID)")), "provision done")
        }
        if let preparing = placements.first(where: { $0.phase == .preparing }) {
            let target = state.instance(preparing.instanceID)
            if target?.state != .active {
                return .act(.setPlacementPhase(phase(preparing, .gone)), "target \(preparing.instanceID) is no longer active: withdraw and place again")
            }
            if let why = liveness.lost[preparing.instanceID] {
                return .act(.setPlacementPhase(phase(preparing, .gone)), "target \(preparing.instanceID) lost (\(why)): withdraw and place again")
            }
            if readiness.isReady(preparing) {
                return .act(.setPlacementPhase(phase(preparing, .active)), "target \(preparing.instanceID) ready: activate")
            }
            if timedOut {
                return .act(.setPlacementPhase(phase(preparing, .gone)), "target \(preparing.instanceID) not ready in time: withdraw")
            }
            return .wait
        }
        if timedOut {
            let units = policy.weightUnits(ofPlan: tenant.plan)
            let lost = liveness.lost.keys.sorted().map { "\($0): \(liveness.lost[$0]!)" }
            let also = lost.isEmpty ? "" : "; lost: " + lost.joined(separator: "; ")
            return .act(
                .finishOperation(finish(op.id, .failed, Self.cut("no live active instance had \(units) capacity units free for plan \(tenant.plan) within \(policy.provisionTimeoutMs / 1000) s\(also)"))),
                "provision timed out")
        }
        let units = policy.weightUnits(ofPlan: tenant.plan)
        if capacity == nil { capacity = CapacityLedger(state: state, policy: policy, liveness: liveness) }
        guard let target = capacity?.reserveMostHeadroom(units: units) else { return .wait }
        var place = PBPlaceTenant()
        place.tenantID = tenant.id
        place.instanceID = target
        // Nothing to prepare there (no agent): active at once, which also finishes the provision.
        place.active = placements.isEmpty && !readiness.needsPreparation(onInstance: target)
        return .act(.placeTenant(place), place.active ? "place on \(target) (most headroom), active: nothing to prepare" : "place on \(target) (most headroom)")
    }

    static func deprovisionStep(_ op: BrokerOperation, state: ClusterState) -> Decision {
        guard let tenant = state.tenant(op.tenantID) else {
            // Apply finishes the operation in the entry that deletes the tenant; kept for safety.
            return .act(.finishOperation(finish(op.id, .succeeded, "tenant \(op.tenantID) deleted")), "tenant gone")
        }
        guard tenant.state == .deprovisioning else {
            return .act(.finishOperation(finish(op.id, .failed, "tenant \(op.tenantID) is \(tenant.state), not deprovisioning")), "not deprovisioning")
        }
        // Next: a draining placement goes only once its agent has stopped its components.
        for placement in state.placements(ofTenant: tenant.id) {
            switch placement.phase {
            case .active: return .act(.setPlacementPhase(phase(placement, .draining)), "drain \(placement.instanceID)")
            case .preparing, .draining: return .act(.setPlacementPhase(phase(placement, .gone)), "remove from \(placement.instanceID)")
            default: continue
            }
        }
        var delete = PBDeleteTenant()
        delete.id = tenant.id
        return .act(.deleteTenant(delete), "no placement left: delete")
    }

    /// A failure description naming lost instances is cut to this (well inside the state's bound).
    static let failureDescriptionBytesMax = 480

    /// At most `failureDescriptionBytesMax` bytes of UTF-8, cut at a character boundary.
    static func cut(_ text: String) -> String {
        var bytes = 0
        return String(text.prefix { c in
            bytes += c.utf8.count
            return bytes <= failureDescriptionBytesMax
        })
    }

    static func finish(_ id: String, _ state: PBOperationState, _ description: String) -> PBFinishOperation {
        var c = PBFinishOperation()
        c.id = id
        c.state = state
        // Built from ids (<= 64 bytes) and plan names (<= 64 bytes): far below descriptionBytesMax.
        c.description_p = description
        return c
    }

    static func tenantState(_ id: String, _ state: PBTenantState) -> PBSetTenantState {
        var c = PBSetTenantState()
        c.id = id
        c.state = state
        return c
    }

    static func phase(_ placement: Placement, _ phase: PBPlacementPhase) -> PBSetPlacementPhase {
        var c = PBSetPlacementPhase()
        c.tenantID = placement.tenantID
        c.instanceID = placement.instanceID
        c.phase = phase
        return c
    }
}
