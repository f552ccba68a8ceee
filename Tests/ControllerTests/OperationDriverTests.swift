import ClusterModel
@testable import Controller
import Testing

/// The broker's operation driver as a pure function: state in, next commands out. Every test
/// commits what the driver returns the way the leader's loop does, so the same run proves both
/// the decisions and that apply accepts them.
@Suite struct OperationDriverTests {
    @Test func provisionPlacesOnTheActiveInstanceWithTheMostHeadroomThenActivatesReadiesAndSucceeds() {
        var w = World()
        w.addActiveInstances(["i1", "i2", "i3"])
        w.servedTenant("a", plan: "dreamface-development")  // 4 units on i1 (all equal: smallest id)
        #expect(w.activeInstance("a") == "i1")
        w.servedTenant("b")  // 2 units: i2 and i3 have 100 free, i1 96: i2
        #expect(w.activeInstance("b") == "i2")
        #expect(w.provision("c") == .applied)
        let steps = w.steps()
        #expect(steps.count == 1)
        #expect(steps.first?.body.placeTarget == "i3", "i3 is the only instance with 100 units free")
        // Nothing to prepare on i3 (no agent): one step places it active, which also readies the
        // tenant and finishes the operation in the same entry.
        #expect(steps.first?.body.placeActive == true)
        #expect(w.round() == [.applied])
        let op = w.state.operation("op-p-c")
        #expect(op?.state == .succeeded)
        #expect(op?.description_p == "tenant c is served by instance i3")
        #expect(w.state.tenant("c")?.state == .ready)
        #expect(w.state.placements(ofTenant: "c").map(\.phase) == [.active])
        #expect(w.state.inProgressOperations.isEmpty)
        #expect(w.steps().isEmpty)
    }

    @Test func onAnInstanceWithAnAgentTheProvisionWaitsForItThenActivatingFinishesItInOneEntry() {
        var w = World()
        w.addActiveInstances(["i1", "i2"])
        #expect(w.provision("c") == .applied)
        let agents = PlacementReadiness.supervised(ready: [], supervised: ["i1"])
        #expect(w.round(readiness: agents) == [.applied])
        #expect(w.state.placements(ofTenant: "c").map(\.phase) == [.preparing], "i1 has an agent: it must start the tenant first")
        #expect(w.state.tenant("c")?.state == .provisioning)
        #expect(w.state.operation("op-p-c")?.state == .inProgress)
        #expect(w.steps(readiness: agents).isEmpty, "not reported serving yet: wait")
        let serving = PlacementReadiness.supervised(ready: [PlacementKey(tenant: "c", instance: "i1")], supervised: ["i1"])
        #expect(w.round(readiness: serving) == [.applied])
        #expect(w.state.placements(ofTenant: "c").map(\.phase) == [.active])
        #expect(w.state.tenant("c")?.state == .ready)
        #expect(w.state.operation("op-p-c")?.state == .succeeded)
        #expect(w.steps(readiness: serving).isEmpty)
        // An instance without an agent beside it: placed active at once.
        #expect(w.provision("d") == .applied)
        #expect(w.steps(readiness: agents).map(\.body.placeActive) == [true])
        #expect(w.steps(readiness: agents).first?.body.placeTarget == "i2")
    }

    @Test func tenantsPlacedInOneRoundDoNotCountOnTheSameFreeUnits() {
        var w = World()
        w.policy.instanceCapacityUnits = 4
        w.addActiveInstances(["i1", "i2"])
        #expect(w.provision("a", plan: "dreamface-development") == .applied)
        #expect(w.provision("b", plan: "dreamface-development") == .applied)
        #expect(w.provision("c", plan: "dreamface-development") == .applied)
        let targets = w.steps().compactMap(\.body.placeTarget)
        #expect(targets == ["i1", "i2"], "two instances of 4 units take one 4-unit tenant each; the third waits")
        w.settle()
        #expect(w.state.tenant("a")?.state == .ready && w.state.tenant("b")?.state == .ready)
        #expect(w.state.operation("op-p-c")?.state == .inProgress, "no headroom: the third waits, it does not fail early")
        #expect(w.state.placements(ofTenant: "c").isEmpty)
    }

    @Test func aProvisionWithoutHeadroomFailsAtItsTimeoutAndLeavesTheHalfCreatedTenantForDeprovision() {
        var w = World()
        w.policy.instanceCapacityUnits = 1
        w.addActiveInstances(["i1"])
        #expect(w.provision("big", plan: "dreamface-development") == .applied)
        #expect(w.steps().isEmpty, "it waits for headroom")
        w.nowMs += w.policy.provisionTimeoutMs
        w.settle()
        let op = w.state.operation("op-p-big")
        #expect(op?.state == .failed)
        #expect(op?.description_p.contains("no live active instance had 4 capacity units free") == true)
        #expect(w.state.tenant("big")?.state == .provisioning, "kept for the platform's orphan mitigation")
        // Orphan mitigation: the platform deletes it; the driver removes it.
        #expect(w.deprovision("big") == .applied)
        w.settle()
        #expect(w.state.tenant("big") == nil)
        #expect(w.state.operation("op-d-big")?.state == .succeeded)
        #expect(w.state.lastOperation(ofTenant: "big")?.id == "op-d-big")
    }

    @Test func deprovisionDrainsRemovesAndDeletesAndTheDeleteFinishesTheOperation() {
        var w = World()
        w.addActiveInstances(["i1", "i2"])
        w.servedTenant("t")
        #expect(w.deprovision("t") == .applied)
        #expect(w.state.tenant("t")?.state == .deprovisioning)
        // Active → draining, draining → gone, then the delete (which finishes the operation).
        #expect(w.settle() == 3)
        #expect(w.state.tenant("t") == nil)
        #expect(w.state.operation("op-d-t")?.state == .succeeded)
        #expect(w.state.inProgressOperations.isEmpty)
        #expect(w.state.placements(onInstance: "i1").isEmpty)
    }

    @Test func aDeprovisionDuringAProvisionAbortsItAndRemovesWhatItMade() {
        var w = World()
        w.addActiveInstances(["i1"])
        #expect(w.provision("t") == .applied)
        w.round(readiness: .reported([]))  // placed (preparing: an agent must start it)
        #expect(w.state.placements(ofTenant: "t").map(\.phase) == [.preparing])
        #expect(w.deprovision("t") == .applied)
        #expect(w.state.operation("op-p-t")?.state == .failed, "the provision is aborted in the deprovision's entry")
        w.settle()
        #expect(w.state.tenant("t") == nil)
        #expect(w.state.operation("op-d-t")?.state == .succeeded)
    }

    @Test func aPreparingPlacementWaitsForReadinessAndIsWithdrawnWhenItsTargetLeavesOrItTimesOut() {
        var w = World()
        w.addActiveInstances(["i1", "i2"])
        #expect(w.provision("t") == .applied)
        let notYet = PlacementReadiness.reported([])
        w.round(readiness: notYet)
        #expect(w.state.placements(ofTenant: "t").map(\.instanceID) == ["i1"])
        #expect(w.steps(readiness: notYet).isEmpty, "the agent has not reported it healthy: wait")
        // The target starts draining: the placement is withdrawn and the tenant placed again.
        var draining = PBSetInstanceState()
        draining.id = "i1"
        draining.state = .draining
        #expect(w.run(.setInstanceState(draining)) == .applied)
        w.round(readiness: notYet)
        #expect(w.state.placements(ofTenant: "t").isEmpty)
        w.round(readiness: notYet)
        #expect(w.state.placements(ofTenant: "t").map(\.instanceID) == ["i2"])
        let ready = PlacementReadiness.reported([PlacementKey(tenant: "t", instance: "i2")])
        w.settle(readiness: ready)
        #expect(w.activeInstance("t") == "i2")
        #expect(w.state.operation("op-p-t")?.state == .succeeded)
    }

    /// The failure detector (issue 19): a provision whose target is lost is placed again on a
    /// live instance at once, not left waiting for its timeout; no new tenant goes to a lost
    /// instance; and a provision that finds no live headroom says which instance was lost.
    @Test func aProvisionWhoseTargetIsLostIsPlacedAgainOnALiveInstance() {
        var w = World()
        w.addActiveInstances(["i1", "i2", "i3"])
        #expect(w.provision("t") == .applied)
        let notYet = PlacementReadiness.reported([])
        w.round(readiness: notYet)
        #expect(w.state.placements(ofTenant: "t").map(\.instanceID) == ["i1"], "all equal: the smallest id")
        let i1Lost = InstanceLiveness(lost: ["i1": "no report or answer from it for 5012 ms"])
        let withdraw = w.steps(readiness: notYet, liveness: i1Lost)
        #expect(withdraw.count == 1)
        #expect(withdraw.first?.why == "target i1 lost (no report or answer from it for 5012 ms): withdraw and place again", "\(withdraw)")
        w.round(readiness: notYet, liveness: i1Lost)
        #expect(w.state.placements(ofTenant: "t").isEmpty)
        w.round(readiness: notYet, liveness: i1Lost)
        #expect(w.state.placements(ofTenant: "t").map(\.instanceID) == ["i2"], "a live instance, not i1 again")
        let served = PlacementReadiness.reported([PlacementKey(tenant: "t", instance: "i2")])
        w.settle(readiness: served)
        #expect(w.activeInstance("t") == "i2")
        #expect(w.state.operation("op-p-t")?.state == .succeeded)
        // A new tenant is not placed on a lost instance, even with the most headroom.
        #expect(w.provision("u") == .applied)
        let i3Lost = InstanceLiveness(lost: ["i3": "silent"])
        #expect(w.steps(liveness: i3Lost).first?.body.placeTarget == "i1", "i3 has the most headroom but is lost")
    }

    @Test func aProvisionWithOnlyLostInstancesFailsAtItsTimeoutNamingThem() {
        var w = World()
        w.addActiveInstances(["i1"])
        #expect(w.provision("t") == .applied)
        let lost = InstanceLiveness(lost: ["i1": "no report or answer from it for 7000 ms (timing.instanceLostAfterMs 5000)"])
        #expect(w.steps(liveness: lost).isEmpty, "no live instance: wait")
        w.nowMs += w.policy.provisionTimeoutMs
        w.round(liveness: lost)
        let op = w.state.operation("op-p-t")
        #expect(op?.state == .failed)
        #expect(op?.description_p == "no live active instance had 2 capacity units free for plan dreamface-deployment within 60 s; lost: i1: no report or answer from it for 7000 ms (timing.instanceLostAfterMs 5000)", "\(op?.description_p ?? "")")
    }

    @Test func aPlacementNeverReportedReadyIsWithdrawnAtTheTimeoutAndTheProvisionFails() {
        var w = World()
        w.addActiveInstances(["i1"])
        #expect(w.provision("t") == .applied)
        let never = PlacementReadiness.reported([])
        w.round(readiness: never)
        w.nowMs += w.policy.provisionTimeoutMs
        w.settle(readiness: never)
        #expect(w.state.placements(ofTenant: "t").isEmpty)
        #expect(w.state.operation("op-p-t")?.state == .failed)
    }

    /// A new leader recomputes from the replicated state alone. If the old leader's last step is
    /// committed after the new leader computed its own (same operation, same sequence), the
    /// second is a duplicate: no second placement, no second effect.
    @Test func aStepRepeatedByANewLeaderAppliesOnce() {
        var w = World()
        w.addActiveInstances(["i1", "i2"])
        #expect(w.provision("t") == .applied)
        let oldLeader = w.steps()
        let newLeader = w.steps()
        #expect(oldLeader == newLeader, "the decision is a function of the state: every leader computes the same step")
        #expect(w.apply(oldLeader[0].command(leaderTimeMs: w.nowMs)) == .applied)
        let before = w.state.placements(ofTenant: "t")
        let repeated = w.apply(newLeader[0].command(leaderTimeMs: w.nowMs + 5))
        guard case .duplicate(.applied) = repeated else {
            Issue.record("expected the first outcome back, got \(repeated)")
            return
        }
        #expect(w.state.placements(ofTenant: "t") == before)
        w.settle()
        #expect(w.state.operation("op-p-t")?.state == .succeeded)
        #expect(w.state.placements(ofTenant: "t").count == 1)
    }

    /// A stale step computed before another placement committed (a different sequence, e.g.
    /// after the session expired) is refused by apply's one-move-in-flight rule.
    @Test func aStalePlacementIsRefusedByApply() {
        var w = World()
        w.addActiveInstances(["i1", "i2"])
        #expect(w.provision("t") == .applied)
        w.round(readiness: .reported([]))
        var stale = PBPlaceTenant()
        stale.tenantID = "t"
        stale.instanceID = "i2"
        guard case .rejected(let why) = w.run(.placeTenant(stale)) else {
            Issue.record("a second preparing placement was accepted")
            return
        }
        #expect(why.code == .conflict)
    }

    @Test func stepsPerRoundAreBoundedOldestFirst() {
        var w = World()
        w.policy.instanceCapacityUnits = 1_000_000
        w.addActiveInstances(["i1"])
        let count = OperationDriver.stepsPerRoundMax + 10
        for i in 0..<count { #expect(w.provision("t\(i)") == .applied) }
        let steps = w.steps()
        #expect(steps.count == OperationDriver.stepsPerRoundMax)
        #expect(steps.first?.tenantId == "t0")
        #expect(!steps.contains { $0.tenantId == "t\(count - 1)" })
    }

    @Test func anUpdateFoundRunningIsFinished() {
        var w = World()
        w.addActiveInstances(["i1"])
        w.servedTenant("t")
        var start = PBStartOperation()
        start.id = "op-u"
        start.tenantID = "t"
        start.kind = .update
        #expect(w.run(.startOperation(start)) == .applied)
        w.settle()
        #expect(w.state.operation("op-u")?.state == .succeeded)
    }

    @Test func capacityCountsEveryPlacementPhaseAndUnknownPlans() {
        var w = World()
        w.policy.instanceCapacityUnits = 5
        w.addActiveInstances(["i1"])
        var admin = PBCreateTenant()
        admin.id = "legacy"
        admin.plan = "no-such-plan"
        admin.components = ["dfc"]
        #expect(w.run(.createTenant(admin)) == .applied)
        var place = PBPlaceTenant()
        place.tenantID = "legacy"
        place.instanceID = "i1"
        #expect(w.run(.placeTenant(place)) == .applied)  // preparing: counts, 1 unit (unknown plan)
        #expect(w.provision("d", plan: "dreamface-development") == .applied)
        #expect(w.steps().first?.body.placeTarget == "i1", "4 of 5 units are free")
        #expect(w.provision("e") == .applied)
        w.round()
        #expect(w.state.placements(ofTenant: "e").isEmpty, "5 of 5 units are taken")
    }
}
