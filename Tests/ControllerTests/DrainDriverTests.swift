import ClusterModel
import Controller
import Testing

/// The drain driver (issue 20): every tenant moves off a draining instance make-before-break,
/// a bounded number at a time, to live instances with room; then the instance is drained. All
/// from the replicated state, so a new leader continues where the last one stopped.
@Suite struct DrainDriverTests {
    func setState(_ w: inout World, _ id: String, _ state: PBInstanceState) -> ApplyResult {
        var c = PBSetInstanceState()
        c.id = id
        c.state = state
        return w.run(.setInstanceState(c))
    }

    func drainSteps(_ w: World, liveness: InstanceLiveness = .allLive) -> DrainDriver.Round {
        DrainDriver.nextSteps(state: w.state, policy: w.policy, liveness: liveness)
    }

    /// Moves away from `instance` still holding a placement there (the source's placement goes
    /// before the operation's last step finishes it).
    func movesInFlight(_ w: World, from instance: String) -> Int {
        w.state.placements(onInstance: instance).filter { p in
            w.state.inProgressOperation(ofTenant: p.tenantID).map { $0.kind == .move && $0.sourceInstanceID == instance } ?? false
        }.count
    }

    @Test func aDrainMovesEveryTenantAwayAtMostFourAtATimeThenTheInstanceIsDrained() throws {
        var w = World()
        w.addActiveInstances(["1", "2", "3"])
        for i in 0..<15 { w.servedTenant("t\(i)") }
        let onTwo = w.state.placements(onInstance: "2").map(\.tenantID)
        #expect(onTwo.count == 5, "placement spreads 15 tenants over 3 instances: \(onTwo)")
        #expect(setState(&w, "2", .draining) == .applied)

        var rounds = 0
        var maxInFlight = 0
        while w.state.instance("2")?.state == .draining {
            rounds += 1
            guard rounds <= 100 else {
                Issue.record("the drain did not finish in 100 rounds")
                return
            }
            let drain = drainSteps(w)
            #expect(drain.blocked.isEmpty, "\(drain.blocked)")
            for step in drain.steps { #expect(w.apply(step.command(leaderTimeMs: w.nowMs)) == .applied, "\(step.why)") }
            maxInFlight = max(maxInFlight, movesInFlight(w, from: "2"))
            // The moves' own steps (no routers configured: the grace counts from the switch).
            for result in w.round() { #expect(result == .applied) }
            w.nowMs += Int64(w.state.settings.moveGraceMs)
        }
        #expect(w.state.instance("2")?.state == .drained)
        #expect(maxInFlight == DrainDriver.movesInFlightPerInstanceMax)
        #expect(w.state.placements(onInstance: "2").isEmpty)
        for tenant in onTwo {
            #expect(w.state.tenant(tenant)?.state == .ready)
            let now = try #require(w.activeInstance(tenant))
            #expect(now == "1" || now == "3")
            let op = try #require(w.state.lastOperation(ofTenant: tenant))
            #expect(op.kind == .move && op.state == .succeeded && op.id.hasPrefix("drain-2-"), "\(op)")
        }
        // Nothing more to do; the tenants elsewhere never moved.
        #expect(drainSteps(w).steps.isEmpty)
        #expect(w.state.placements(onInstance: "1").count + w.state.placements(onInstance: "3").count == 15)
    }

    @Test func aRepeatedStepOfANewLeaderStartsNoSecondMove() throws {
        var w = World()
        w.addActiveInstances(["1", "2"])
        w.servedTenant("acme")
        let source = try #require(w.activeInstance("acme"))
        #expect(setState(&w, source, .draining) == .applied)
        let steps = drainSteps(w).steps
        #expect(steps.count == 1)
        #expect(w.apply(steps[0].command(leaderTimeMs: w.nowMs)) == .applied)
        // The old leader committed it but died before it knew; the new one proposes it again.
        guard case .duplicate = w.apply(steps[0].command(leaderTimeMs: w.nowMs)) else {
            Issue.record("the repeated step applied again")
            return
        }
        #expect(w.state.inProgressOperations.count == 1)
        // And from the state, the new leader decides nothing new for that tenant.
        #expect(drainSteps(w).steps.isEmpty)
    }

    @Test func aDrainWithNoRoomElsewhereWaitsAndSaysWhy() throws {
        var w = World()
        w.policy.instanceCapacityUnits = 4
        w.addActiveInstances(["1", "2", "3"])
        for t in ["a", "b", "c", "d", "e", "f"] { w.servedTenant(t) }  // 2 units each: every instance full
        #expect(setState(&w, "3", .draining) == .applied)
        let round = drainSteps(w)
        #expect(round.steps.isEmpty)
        #expect(round.blocked["3"]?.contains("no live, active instance has 2 free capacity units") == true, "\(round.blocked)")

        // Room on instance 1, but the failure detector says it is lost: still no target.
        w.deprovision(try #require(w.state.placements(onInstance: "1").first?.tenantID))
        w.settle()
        let lost = InstanceLiveness(lost: ["1": "no answer for 5 s"])
        #expect(drainSteps(w, liveness: lost).steps.isEmpty)
        let moves = drainSteps(w).steps
        #expect(moves.count == 1 && moves.first.map { if case .moveTenant(let m) = $0.body { m.instanceID == "1" } else { false } } == true)
    }

    @Test func anEmptyInstanceIsDrainedAtOnceAndTheOnlyActiveInstanceCannotDrainItsTenants() throws {
        var w = World()
        w.addActiveInstances(["1"])
        w.servedTenant("acme")
        let refused = setState(&w, "1", .draining)
        guard case .rejected(let why) = refused else {
            Issue.record("draining the only active instance with tenants applied")
            return
        }
        #expect(why.detail.contains("only active instance and holds 1 placement(s)"), "\(why)")

        w.addActiveInstances(["2"])
        #expect(setState(&w, "2", .draining) == .applied)
        let steps = drainSteps(w).steps
        #expect(steps.count == 1 && steps[0].why == "nothing is placed on 2 any more: drained")
        #expect(w.apply(steps[0].command(leaderTimeMs: w.nowMs)) == .applied)
        #expect(w.state.instance("2")?.state == .drained)
        // Activate cancels or ends a drain: the instance takes tenants again.
        #expect(setState(&w, "2", .active) == .applied)
    }

    @Test func aMoveThatFailsIsTriedAgainUnderTheNextIdAndTheDrainStopsAfterFiveFailures() throws {
        var w = World()
        w.addActiveInstances(["1", "2"])
        w.servedTenant("acme")
        let source = try #require(w.activeInstance("acme"))
        let target = source == "1" ? "2" : "1"
        #expect(setState(&w, source, .draining) == .applied)
        // The target's agent never reports the tenant ready: each move times out and fails.
        let never = PlacementReadiness.supervised(ready: [], supervised: ["1", "2"])
        var ids: [String] = []
        for _ in 0..<DrainDriver.attemptsMax {
            let steps = drainSteps(w).steps
            #expect(steps.count == 1)
            guard let step = steps.first, case .moveTenant(let move) = step.body else { return }
            #expect(move.instanceID == target)
            ids.append(move.operationID)
            #expect(w.apply(step.command(leaderTimeMs: w.nowMs)) == .applied)
            w.nowMs += w.policy.moveTimeoutMs
            for _ in 0..<3 { for r in w.round(readiness: never) { #expect(r == .applied) } }
            #expect(w.state.operation(move.operationID)?.state == .failed)
        }
        #expect(ids.count == 5 && Set(ids).count == 5 && ids[1] == ids[0] + "-2", "\(ids)")
        let round = drainSteps(w)
        #expect(round.steps.isEmpty)
        #expect(round.blocked[source]?.contains("5 moves of tenant acme failed") == true, "\(round.blocked)")
        #expect(w.activeInstance("acme") == source, "the tenant is still served where it was")
    }
}
