import ClusterModel
import Controller
import Testing

/// A replicated state driven the way the peer drives it: consecutive indices, leader times.
struct World {
    var state = ClusterState()
    var index: UInt64 = 0
    var nowMs: Int64 = 1_800_000_000_000
    var sequence: UInt64 = 0
    var policy = PlacementPolicy(
        instanceCapacityUnits: 100, weightUnitsByPlan: ["dreamface-development": 4, "dreamface-deployment": 2],
        provisionTimeoutMs: 60_000)

    /// Applies an operator/broker command under the test's own client session.
    @discardableResult
    mutating func run(_ body: Command.OneOf_Body) -> ApplyResult {
        sequence += 1
        return apply(Command(clientId: "test", sequence: sequence, leaderTimeMs: nowMs, body))
    }

    @discardableResult
    mutating func apply(_ command: Command) -> ApplyResult {
        index += 1
        do {
            return try state.apply(command.entryBytes(), at: index)
        } catch {
            Issue.record("halted: \(error)")
            return .rejected(Rejection(.malformedCommand, "halted"))
        }
    }

    func steps(readiness: PlacementReadiness = .immediate, routers: RouterAcks = .none, liveness: InstanceLiveness = .allLive) -> [DriverStep] {
        OperationDriver.nextSteps(state: state, policy: policy, readiness: readiness, routers: routers, liveness: liveness, nowMs: nowMs)
    }

    /// One driver round: compute, then commit every step (as the leader's loop does).
    @discardableResult
    mutating func round(
        readiness: PlacementReadiness = .immediate, routers: RouterAcks = .none, liveness: InstanceLiveness = .allLive
    ) -> [ApplyResult] {
        steps(readiness: readiness, routers: routers, liveness: liveness).map { apply($0.command(leaderTimeMs: nowMs)) }
    }

    /// `peer tenants move`.
    @discardableResult
    mutating func move(_ tenant: String, to target: String, operation: String? = nil) -> ApplyResult {
        var c = PBMoveTenant()
        c.tenantID = tenant
        c.instanceID = target
        c.operationID = operation ?? "op-m-\(tenant)-\(index)"
        return run(.moveTenant(c))
    }

    /// Rounds until the driver has nothing to do (bounded); returns how many rounds ran.
    @discardableResult
    mutating func settle(roundsMax: Int = 50, readiness: PlacementReadiness = .immediate) -> Int {
        for n in 0..<roundsMax {
            if steps(readiness: readiness).isEmpty { return n }
            for result in round(readiness: readiness) { #expect(result == .applied, "a driver step was refused: \(result)") }
        }
        Issue.record("the driver did not settle in \(roundsMax) rounds")
        return roundsMax
    }

    mutating func addActiveInstances(_ ids: [String]) {
        let known = state.allInstances.count
        for (i, id) in ids.enumerated() {
            var add = PBAddInstance()
            add.id = id
            add.address = "127.0.0.1:\(7100 + known + i)"
            add.role = .voter
            add.version = "test"
            add.protocolVersion = 1
            #expect(run(.addInstance(add)) == .applied)
            var active = PBSetInstanceState()
            active.id = id
            active.state = .active
            #expect(run(.setInstanceState(active)) == .applied)
        }
    }

    /// The broker's provision command.
    @discardableResult
    mutating func provision(_ tenant: String, plan: String = "dreamface-deployment", operation: String? = nil) -> ApplyResult {
        var create = PBCreateTenant()
        create.id = tenant
        create.plan = plan
        create.components = plan == "dreamface-development" ? ["dfc", "dfx-dev"] : ["dfx-dep"]
        var c = PBProvisionTenant()
        c.tenant = create
        c.operationID = operation ?? "op-p-\(tenant)"
        c.attributesSha256Hex = String(repeating: "a", count: 64)
        c.originatingIdentity = "test eyJ1c2VyIjoidCJ9"
        return run(.provisionTenant(c))
    }

    @discardableResult
    mutating func deprovision(_ tenant: String, operation: String? = nil) -> ApplyResult {
        var c = PBDeprovisionTenant()
        c.tenantID = tenant
        c.operationID = operation ?? "op-d-\(tenant)"
        return run(.deprovisionTenant(c))
    }

    /// A tenant provisioned to the end (placed, active, ready, operation succeeded).
    mutating func servedTenant(_ tenant: String, plan: String = "dreamface-deployment") {
        #expect(provision(tenant, plan: plan) == .applied)
        settle()
        #expect(state.tenant(tenant)?.state == .ready)
    }

    func activeInstance(_ tenant: String) -> String? { state.activeInstance(ofTenant: tenant) }
}

extension Command.OneOf_Body {
    var placeTarget: String? {
        if case .placeTenant(let p) = self { return p.instanceID }
        return nil
    }

    var placeActive: Bool? {
        if case .placeTenant(let p) = self { return p.active }
        return nil
    }
}
