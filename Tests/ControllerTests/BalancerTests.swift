import ClusterModel
import Controller
import Testing

/// The balancer (issue 21) driven by load traces: each round a load per tenant, the instances'
/// load summed from where each tenant is active, the balancer's decision committed as the
/// leader's loop commits it, its moves carried out by the operation driver, and a provisioner
/// that adds or removes the instances the decisions ask for.
struct BalancerTrace {
    var w = World()
    var memory = BalancerMemory()
    var policy = BalancerPolicy(
        instanceRequestsPerSecond: 100, overloadWindowMs: 10_000, underloadWindowMs: 60_000, cooldownMs: 30_000,
        tenantCooldownMs: 120_000, minInstances: 1, maxInstances: 4, provider: "process")
    var liveness = InstanceLiveness.allLive
    /// Every decision committed, in order.
    var decisions: [Event] = []
    /// Every tenant move the balancer started.
    var movesStarted: [String] = []
    /// Rounds are this far apart.
    var roundMs: Int64 = 1_000
    /// Whether the test's provisioner carries out intents at once.
    var provisioner = true
    var seedIDs = ["1", "2"]

    init(instances: [String] = ["1", "2"]) {
        w.addActiveInstances(instances)
    }

    func observation(_ tenants: [String: Double], extra: [String: Double] = [:]) -> LoadObservation {
        var instances: [String: LoadObservation.InstanceLoad] = [:]
        for (tenant, rps) in tenants {
            guard let at = w.state.activeInstance(ofTenant: tenant) else { continue }
            instances[at, default: .init(requestsPerSecond: 0)].requestsPerSecond += rps
        }
        for (instance, rps) in extra { instances[instance, default: .init(requestsPerSecond: 0)].requestsPerSecond += rps }
        return LoadObservation(nowMs: w.nowMs, instances: instances, tenants: tenants)
    }

    /// One round: observe, decide, commit the decision and the moves, let the operation driver
    /// and the provisioner act, advance the clock.
    @discardableResult
    mutating func tick(_ tenants: [String: Double], observation given: LoadObservation? = nil) -> Balancer.Round {
        let o = given ?? observation(tenants)
        memory = Balancer.observe(memory, o, state: w.state, liveness: liveness, policy: policy)
        let round = Balancer.next(state: w.state, memory: memory, observation: o, liveness: liveness, placement: w.policy, policy: policy, seedIDs: seedIDs)
        if let record = round.event {
            let result = w.apply(Command(clientId: "balancer/\(record.event.id)", sequence: 1, leaderTimeMs: w.nowMs, .recordEvent(record)))
            #expect(result == .applied, "decision \(record.event.id) refused: \(result)")
            if let e = w.state.event(record.event.id) { decisions.append(e) }
        }
        for step in round.moves {
            #expect(w.apply(step.command(leaderTimeMs: w.nowMs)) == .applied, "\(step.why)")
            movesStarted.append(step.tenantId)
        }
        if provisioner { provision() }
        for result in w.round(liveness: liveness) { #expect(result == .applied) }
        w.nowMs += roundMs
        return round
    }

    mutating func run(seconds: Int, _ tenants: [String: Double]) {
        for _ in 0..<(seconds * 1000 / Int(roundMs)) { tick(tenants) }
    }

    /// What the provisioner and the drain driver do with intents, in one go.
    mutating func provision() {
        for intent in w.state.allIntents {
            switch intent.kind {
            case .provision:
                if w.state.instance(intent.instanceID) == nil {
                    var add = PBAddInstance()
                    add.id = intent.instanceID
                    add.address = "127.0.0.1:\(7200 + w.state.allInstances.count)"
                    add.role = .learner
                    add.version = "test"
                    add.protocolVersion = 1
                    add.provider = intent.provider
                    #expect(w.run(.addInstance(add)) == .applied)
                }
                if w.state.instance(intent.instanceID)?.state == .joining { setState(intent.instanceID, .active) }
                resolve(intent.id)
            case .decommission:
                let id = intent.instanceID
                if w.state.instance(id)?.state == .active { setState(id, .draining) }
                for step in DrainDriver.nextSteps(state: w.state, policy: w.policy, liveness: liveness).steps {
                    #expect(w.apply(step.command(leaderTimeMs: w.nowMs)) == .applied)
                }
                if w.state.instance(id)?.state == .drained {
                    setState(id, .removed)
                    resolve(intent.id)
                }
            default:
                break
            }
        }
    }

    mutating func setState(_ id: String, _ state: PBInstanceState) {
        var c = PBSetInstanceState()
        c.id = id
        c.state = state
        #expect(w.run(.setInstanceState(c)) == .applied)
    }

    mutating func resolve(_ id: String) {
        var c = PBResolveIntent()
        c.id = id
        #expect(w.run(.resolveIntent(c)) == .applied)
    }

    /// A tenant served on `instance` (moved there if placement put it elsewhere).
    mutating func tenant(_ id: String, on instance: String) {
        w.servedTenant(id)
        if w.activeInstance(id) != instance {
            #expect(w.move(id, to: instance) == .applied)
            for _ in 0..<20 where w.activeInstance(id) != instance || w.state.inProgressOperation(ofTenant: id) != nil {
                w.round()
                w.nowMs += Int64(w.state.settings.moveGraceMs)
            }
        }
        #expect(w.activeInstance(id) == instance)
    }

    func kinds() -> [String] { decisions.map { Balancer.kindName($0.kind) } }
}

@Suite struct BalancerTests {
    @Test func aBurstShorterThanTheWindowCausesNothing() {
        var t = BalancerTrace()
        t.tenant("hot", on: "1")
        t.tenant("calm", on: "2")
        t.run(seconds: 20, ["hot": 30, "calm": 30])
        // 9 s at 95 req/s on instance 1 (its mark is 80): shorter than the 10 s window.
        t.run(seconds: 9, ["hot": 95, "calm": 30])
        t.run(seconds: 20, ["hot": 30, "calm": 30])
        t.run(seconds: 9, ["hot": 95, "calm": 30])
        t.run(seconds: 5, ["hot": 30, "calm": 30])
        #expect(t.decisions.isEmpty, "\(t.kinds())")
        #expect(t.memory.overloadedSinceMs.isEmpty)
    }

    @Test func aSustainedOverloadCausesExactlyOneScaleUpAndTheHotTenantMovesToTheNewInstance() throws {
        var t = BalancerTrace()
        t.tenant("hot", on: "1")
        t.tenant("warm", on: "1")
        t.tenant("busy", on: "2")
        // Instance 2 is at 70 (target 60): no room for hot (50) anywhere.
        t.run(seconds: 120, ["hot": 50, "warm": 40, "busy": 70])
        #expect(t.kinds() == ["scale-up"], "\(t.decisions.map(\.reason))")
        let e = try #require(t.decisions.first)
        #expect(e.instanceID == "1" && e.newInstanceID == "3")
        #expect(e.moves.map(\.tenantID) == ["hot"])
        #expect(!e.intentID.isEmpty)
        #expect(e.measures.contains { $0.name == "requests_per_second" && $0.value == 90 && $0.mark == 80 }, "\(e.measures)")
        // The overload was first seen 10 s (the window) before the decision.
        #expect(e.reason.contains("for 10000 ms"), "\(e.reason)")
        #expect(t.w.state.instance("3")?.state == .active)
        #expect(t.w.activeInstance("hot") == "3")
        #expect(t.w.activeInstance("warm") == "1")
        #expect(t.movesStarted == ["hot"])
        // Instance 1 is under its mark now: no streak.
        #expect(t.memory.overloadedSinceMs["1"] == nil)
    }

    @Test func twoHotTenantsOnOneInstanceAreBothNamed() throws {
        var t = BalancerTrace(instances: ["1", "2", "3"])
        for (tenant, at) in [("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("x", "2")] { t.tenant(tenant, on: at) }
        // Instance 1 at 120 (mark 80, target 60): a (35) and b (30) must both go, c and d stay.
        t.run(seconds: 15, ["a": 35, "b": 30, "c": 30, "d": 25, "x": 10])
        let e = try #require(t.decisions.first)
        #expect(t.kinds() == ["rebalance"])
        #expect(Set(e.moves.map(\.tenantID)) == ["a", "b"], "\(e.moves)")
        // Each goes where there is room below target (60): instance 3 (0) takes a, then 2 (10) b.
        #expect(Set(e.moves.map(\.targetInstanceID)).isSubset(of: ["2", "3"]))
        t.run(seconds: 5, ["a": 35, "b": 30, "c": 30, "d": 25, "x": 10])
        #expect(t.w.activeInstance("c") == "1" && t.w.activeInstance("d") == "1")
        #expect(t.w.activeInstance("a") != "1" && t.w.activeInstance("b") != "1")
        #expect(t.w.state.allInstances.count == 3, "no instance was added")
    }

    @Test func anOscillatingLoadCausesNoFlapping() {
        var t = BalancerTrace()
        t.tenant("a", on: "1")
        t.tenant("b", on: "2")
        // Around the high mark: 4 s above, 4 s below, for 5 minutes.
        for _ in 0..<38 {
            t.run(seconds: 4, ["a": 90, "b": 20])
            t.run(seconds: 4, ["a": 70, "b": 20])
        }
        // Between target and high mark for a long time: nothing to do.
        t.run(seconds: 120, ["a": 75, "b": 70])
        #expect(t.decisions.isEmpty, "\(t.kinds())")
    }

    @Test func afterAScaleUpAnOscillatingLoadNeitherScalesDownNorUpAgain() {
        var t = BalancerTrace()
        t.policy.underloadWindowMs = 30_000
        t.tenant("hot", on: "1")
        t.tenant("warm", on: "1")
        t.tenant("busy", on: "2")
        t.run(seconds: 60, ["hot": 50, "warm": 40, "busy": 70])
        #expect(t.kinds() == ["scale-up"])
        // The hot tenant calms down to a level where a scale-down would put some instance above
        // target: no scale-down, no second scale-up.
        for _ in 0..<20 {
            t.run(seconds: 6, ["hot": 40, "warm": 40, "busy": 70])
            t.run(seconds: 6, ["hot": 10, "warm": 40, "busy": 70])
        }
        #expect(t.kinds() == ["scale-up"], "\(t.decisions.map(\.reason))")
    }

    @Test func lowUsageRemovesAnInstanceButNeverGoesBelowMinInstances() throws {
        var t = BalancerTrace()
        t.policy.minInstances = 2
        t.tenant("hot", on: "1")
        t.tenant("warm", on: "1")
        t.tenant("busy", on: "2")
        t.run(seconds: 60, ["hot": 50, "warm": 40, "busy": 70])
        #expect(t.kinds() == ["scale-up"])
        #expect(t.w.state.instances(in: .active).count == 3)
        // Everything quiet for 10 minutes: one instance goes (the one the provider made), not two.
        t.run(seconds: 600, ["hot": 2, "warm": 2, "busy": 2])
        #expect(t.kinds() == ["scale-up", "scale-down"], "\(t.decisions.map(\.reason))")
        let down = try #require(t.decisions.last)
        #expect(down.instanceID == "3", "only the provider-made instance can be destroyed")
        #expect(t.w.state.instance("3")?.state == .removed)
        #expect(t.w.state.instances(in: .active).count == 2)
        for tenant in ["hot", "warm", "busy"] { #expect(["1", "2"].contains(t.w.activeInstance(tenant) ?? "")) }
    }

    @Test func scaleDownStopsAtMinInstancesWhenEveryInstanceIsProviderMade() {
        var t = BalancerTrace(instances: [])
        t.seedIDs = []
        t.policy.minInstances = 2
        for id in ["1", "2", "3", "4"] {
            var add = PBAddInstance()
            add.id = id
            add.address = "127.0.0.1:\(7300 + Int(id)!)"
            add.role = id == "1" ? .voter : .learner
            add.version = "test"
            add.protocolVersion = 1
            add.provider = "process"
            #expect(t.w.run(.addInstance(add)) == .applied)
            t.setState(id, .active)
        }
        t.tenant("a", on: "1")
        t.run(seconds: 900, ["a": 1])
        #expect(t.kinds() == ["scale-down", "scale-down"], "\(t.decisions.map(\.reason))")
        #expect(t.w.state.instances(in: .active).count == 2)
        #expect(t.w.state.instance("1")?.state == .active, "the voter stays")
    }

    @Test func aHotTenantThatFitsNowhereGetsAnInstanceOfItsOwnAndAloneItRaisesAnAlertNotAnotherScaleUp() throws {
        var t = BalancerTrace()
        t.tenant("giant", on: "1")
        t.tenant("small", on: "1")
        t.tenant("other", on: "2")
        // giant alone is 70 % of an instance (dedicatedShare 50 %): it goes to a new instance.
        t.run(seconds: 40, ["giant": 70, "small": 20, "other": 30])
        #expect(t.kinds() == ["scale-up"])
        let up = try #require(t.decisions.first)
        #expect(up.moves.map(\.tenantID) == ["giant"])
        #expect(t.w.activeInstance("giant") == "3")
        // Now it alone overloads its own instance: an alert, once per streak, and nothing else.
        t.run(seconds: 120, ["giant": 95, "small": 20, "other": 30])
        #expect(t.kinds() == ["scale-up", "alert"], "\(t.decisions.map(\.reason))")
        #expect(t.decisions.last?.instanceID == "3")
        #expect(t.w.state.allInstances.count == 3)
    }

    @Test func atMaxInstancesAnOverloadRaisesAnAlert() throws {
        var t = BalancerTrace()
        t.policy.maxInstances = 2
        t.tenant("hot", on: "1")
        t.tenant("warm", on: "1")
        t.tenant("busy", on: "2")
        t.run(seconds: 60, ["hot": 50, "warm": 40, "busy": 70])
        #expect(t.kinds() == ["alert"], "\(t.decisions.map(\.reason))")
        #expect(t.decisions.first?.reason.contains("maxInstances 2") == true)
        #expect(t.w.state.allInstances.count == 2)
    }

    @Test func theTenantsOfALostInstanceArePlacedOnLiveInstancesAtOnce() throws {
        var t = BalancerTrace(instances: ["1", "2", "3"])
        t.tenant("a", on: "2")
        t.tenant("b", on: "2")
        t.tenant("c", on: "3")
        t.run(seconds: 5, ["a": 10, "b": 10, "c": 10])
        t.liveness = InstanceLiveness(lost: ["2": "no report or answer from it for 5000 ms"])
        t.tick(["a": 10, "b": 10, "c": 10])
        #expect(t.kinds() == ["failover"])
        let e = try #require(t.decisions.first)
        #expect(e.instanceID == "2" && Set(e.moves.map(\.tenantID)) == ["a", "b"])
        t.run(seconds: 3, ["a": 10, "b": 10, "c": 10])
        #expect(t.w.activeInstance("a") != "2" && t.w.activeInstance("b") != "2")
        #expect(t.kinds() == ["failover"], "one decision for one loss")
    }

    @Test func belowMinInstancesAReplacementIsAdded() throws {
        var t = BalancerTrace(instances: ["1", "2"])
        t.policy.minInstances = 2
        t.tenant("a", on: "1")
        t.liveness = InstanceLiveness(lost: ["2": "silent"])
        t.run(seconds: 3, ["a": 10])
        #expect(t.kinds() == ["replace"], "\(t.decisions.map(\.reason))")
        #expect(t.w.state.instance("3")?.state == .active)
    }

    @Test func aClusterStillFormingIsNotShortOfInstances() {
        // The cluster file names three members; none is registered yet (the registrar's first
        // round), then they come one by one: no replacement at any point.
        var t = BalancerTrace(instances: [])
        t.seedIDs = ["1", "2", "3"]
        t.policy.minInstances = 3
        t.tick([:])
        for id in ["1", "2", "3"] {
            t.w.addActiveInstances([id])
            t.tick([:])
        }
        t.run(seconds: 5, [:])
        #expect(t.decisions.isEmpty, "\(t.decisions.map(\.reason))")
        // Before its first counted observation a new leader replaces nothing either.
        t.liveness = InstanceLiveness(lost: ["3": "silent"])
        t.memory = BalancerMemory()
        var o = t.observation([:])
        o.incomplete = "member 3's router has not reported within 3000 ms"
        t.tick([:], observation: o)
        #expect(t.decisions.isEmpty)
        t.tick([:])
        #expect(t.kinds() == ["replace"])
    }

    @Test func aNewLeaderContinuesADecisionAndNeverDoublesIt() throws {
        var t = BalancerTrace()
        t.provisioner = false
        t.tenant("hot", on: "1")
        t.tenant("warm", on: "1")
        t.tenant("busy", on: "2")
        t.run(seconds: 15, ["hot": 50, "warm": 40, "busy": 70])
        #expect(t.kinds() == ["scale-up"])
        // The leader dies; the new one starts with no memory and watches the same overload for
        // minutes while the new instance is still being added: no second scale-up.
        t.memory = BalancerMemory()
        t.run(seconds: 60, ["hot": 50, "warm": 40, "busy": 70])
        #expect(t.kinds() == ["scale-up"])
        #expect(t.w.state.allIntents.count == 1)
        // The instance comes; the move starts once, under the event's operation id.
        t.provisioner = true
        t.run(seconds: 12, ["hot": 50, "warm": 40, "busy": 70])
        #expect(t.w.activeInstance("hot") == "3")
        #expect(t.movesStarted == ["hot"])
        let op = try #require(t.w.state.lastOperation(ofTenant: "hot"))
        #expect(op.id == Balancer.moveOperationId(event: t.decisions[0].id, tenant: "hot") && op.state == .succeeded)
    }

    @Test func aPausedBalancerDecidesNothingAndStartsNoMove() throws {
        var t = BalancerTrace()
        t.tenant("hot", on: "1")
        t.tenant("warm", on: "1")
        t.tenant("busy", on: "2")
        var pause = PBRecordEvent()
        pause.event.id = "paused-test"
        pause.event.kind = .paused
        pause.event.reason = "maintenance"
        pause.retain = 100
        #expect(t.w.run(.recordEvent(pause)) == .applied)
        #expect(t.w.state.isBalancerPaused)
        t.run(seconds: 60, ["hot": 50, "warm": 40, "busy": 70])
        #expect(t.kinds().isEmpty)
        var resume = pause
        resume.event.id = "resumed-test"
        resume.event.kind = .resumed
        #expect(t.w.run(.recordEvent(resume)) == .applied)
        t.run(seconds: 5, ["hot": 50, "warm": 40, "busy": 70])
        #expect(t.kinds() == ["scale-up"], "the overload was watched throughout the pause")
    }

    @Test func incompleteAbsurdOrInterruptedReportsAreNeverActedOn() {
        var t = BalancerTrace()
        t.tenant("hot", on: "1")
        t.tenant("busy", on: "2")
        for second in 0..<60 {
            var o = t.observation(["hot": 95, "busy": 70])
            // Every 8th round a router's report is missing, every 9th one is absurd.
            if second % 8 == 7 { o.incomplete = "member 2's router has not reported within 3000 ms" }
            if second % 9 == 8 { o.instances["1"]?.requestsPerSecond = -5 }
            t.tick([:], observation: o)
        }
        #expect(t.decisions.isEmpty, "\(t.kinds())")
        #expect(t.memory.ignored == nil && t.memory.overloadedSinceMs["1"] != nil)
        // A gap (a leader that stopped polling) starts the window again too.
        t.w.nowMs += 6_000
        t.tick(["hot": 95, "busy": 70])
        #expect(t.memory.overloadedSinceMs["1"] == t.w.nowMs - t.roundMs)
    }

    @Test func anOverloadThatOutlastsARebalanceIsJudgedAgainFromThatDecisionAsANewEvent() throws {
        var t = BalancerTrace(instances: ["1", "2", "3", "4"])
        t.policy.cooldownMs = 5_000
        for tenant in ["a", "b", "c", "d"] { t.tenant(tenant, on: "1") }
        t.tenant("quiet", on: "2")
        // 120 req/s on instance 1: the first rebalance moves two of the four.
        for _ in 0..<20 where t.decisions.isEmpty { t.tick(["a": 31, "b": 30, "c": 30, "d": 29, "quiet": 1]) }
        #expect(t.kinds() == ["rebalance"])
        let first = try #require(t.decisions.first)
        #expect(first.moves.count == 2)
        // At once the two that stay grow: instance 1 never leaves its overload; it is judged
        // again from the decision on, and the next decision is a new event (not the first's id
        // again, which apply would refuse as existing).
        t.run(seconds: 30, ["a": 31, "b": 30, "c": 50, "d": 49, "quiet": 1])
        #expect(t.kinds() == ["rebalance", "rebalance"], "\(t.decisions.map(\.reason))")
        let second = try #require(t.decisions.last)
        #expect(second.id != first.id && second.instanceID == "1" && second.moves.map(\.tenantID) == ["c"])
        #expect(second.atMs - first.atMs >= t.policy.overloadWindowMs && second.atMs - first.atMs < t.policy.overloadWindowMs + 3_000, "\(first.atMs) \(second.atMs)")
    }

    @Test func aTenantMovedIsNotMovedAgainWithinItsCooldown() {
        var t = BalancerTrace(instances: ["1", "2", "3"])
        t.tenant("hot", on: "1")
        t.tenant("other", on: "1")
        t.tenant("quiet", on: "2")
        t.run(seconds: 15, ["hot": 46, "other": 44, "quiet": 5])
        #expect(t.kinds() == ["rebalance"])
        #expect(t.decisions.first?.moves.map(\.tenantID) == ["hot"], "the hotter one goes")
        let first = t.w.activeInstance("hot")
        #expect(first != "1")
        // Its new instance overloads (hot and a newcomer, 45 each) within hot's cooldown: the
        // newcomer moves, hot stays.
        t.tenant("new", on: first!)
        t.run(seconds: 60, ["hot": 46, "new": 45, "other": 44, "quiet": 5])
        #expect(t.kinds() == ["rebalance", "rebalance"], "\(t.decisions.map(\.reason))")
        #expect(t.decisions.last?.moves.map(\.tenantID) == ["new"])
        #expect(t.w.activeInstance("hot") == first)
        #expect(t.decisions.filter { $0.moves.contains { $0.tenantID == "hot" } }.count == 1)
    }
}
