@testable import ClusterModel
import Testing

/// Placements and moves (ARCHITECTURE §10, issue 8).
struct PlacementTests {
    @Test func placementMovesAreMakeBeforeBreak() {
        var replica = Make.clusterWithServedTenant()
        replica.expectApplied(Make.place("t1", on: "i2"))
        // While the target prepares, the source still serves.
        #expect(replica.state.activeInstance(ofTenant: "t1") == "i1")
        #expect(replica.state.placements(ofTenant: "t1").map(\.phase) == [.active, .preparing])
        // One entry flips both: target active, source draining. Never zero active placements.
        replica.expectApplied(Make.phase("t1", on: "i2", .active))
        #expect(replica.state.activeInstance(ofTenant: "t1") == "i2")
        #expect(replica.state.placements(ofTenant: "t1").map(\.phase) == [.draining, .active])
        replica.expectApplied(Make.phase("t1", on: "i1", .gone))
        #expect(replica.state.placements(ofTenant: "t1").map(\.instanceID) == ["i2"])
        #expect(replica.state.placements(onInstance: "i1").isEmpty)
    }

    /// A provision's placement on an instance with nothing to prepare is made active at once;
    /// that entry also readies the tenant and finishes the provision. Activating a prepared one
    /// does the same. A tenant already placed gets a new placement only preparing.
    @Test func aProvisionEndsInTheEntryThatMakesItsFirstPlacementActive() throws {
        var replica = Make.clusterWithServedTenant()
        replica.expectApplied(BrokerCommandTests.provision("t2", op: "op2"))
        replica.expectApplied(Make.place("t2", on: "i2", active: true))
        #expect(replica.state.placements(ofTenant: "t2").map(\.phase) == [.active])
        #expect(replica.state.tenant("t2")?.state == .ready)
        #expect(replica.state.operation("op2")?.state == .succeeded)
        #expect(replica.state.operation("op2")?.description_p == "tenant t2 is served by instance i2")
        #expect(replica.state.inProgressOperations.isEmpty)
        #expect(try ClusterState(snapshot: replica.state.encodeSnapshot()) == replica.state)

        replica.expectApplied(BrokerCommandTests.provision("t3", op: "op3"))
        replica.expectApplied(Make.place("t3", on: "i3"))
        #expect(replica.state.operation("op3")?.state == .inProgress)
        replica.expectApplied(Make.phase("t3", on: "i3", .active))
        #expect(replica.state.tenant("t3")?.state == .ready)
        #expect(replica.state.operation("op3")?.state == .succeeded)

        // Served already (t1 on i1): active at once would break before make. Preparing (t4 on
        // i1): one placement in flight at a time.
        replica.expectRejected(Make.place("t1", on: "i2", active: true), .breakBeforeMake)
        replica.expectApplied(BrokerCommandTests.provision("t4", op: "op4"))
        replica.expectApplied(Make.place("t4", on: "i1"))
        replica.expectRejected(Make.place("t4", on: "i2", active: true), .conflict)
        #expect(replica.state.operation("op4")?.state == .inProgress)
    }

    /// The derived placement counts per instance and plan (the leader's capacity sums) follow
    /// placements, plan changes and removals, and a restored snapshot rebuilds the same counts.
    @Test func placementCountsPerInstanceAndPlanFollowEveryChange() throws {
        var replica = Make.clusterWithServedTenant()
        replica.run(Make.createTenant("t2", plan: "deployment"))
        replica.expectApplied(Make.place("t2", on: "i1"))
        replica.expectApplied(Make.place("t1", on: "i2"))
        #expect(replica.state.placementCountsByPlan(onInstance: "i1") == ["development": 1, "deployment": 1])
        #expect(replica.state.placementCountsByPlan(onInstance: "i2") == ["development": 1])
        var update = PBUpdateTenant()
        update.id = "t1"
        update.plan = "premium"
        update.components = ["dfx-dev"]
        replica.expectApplied(.updateTenant(update))
        #expect(replica.state.placementCountsByPlan(onInstance: "i1") == ["premium": 1, "deployment": 1])
        #expect(replica.state.placementCountsByPlan(onInstance: "i2") == ["premium": 1])
        let restored = try ClusterState(snapshot: replica.state.encodeSnapshot())
        #expect(restored.placementCountsByPlan(onInstance: "i1") == ["premium": 1, "deployment": 1])
        #expect(restored == replica.state)
        replica.expectApplied(Make.phase("t1", on: "i2", .gone))
        #expect(replica.state.placementCountsByPlan(onInstance: "i2").isEmpty)
        #expect(replica.state.placementCountsByPlan(onInstance: "i1") == ["premium": 1, "deployment": 1])
        // The counts equal a recount of the placements themselves.
        for instance in ["i1", "i2", "i3"] {
            let recount = Dictionary(grouping: replica.state.placements(onInstance: instance)) { replica.state.tenant($0.tenantID)!.plan }.mapValues(\.count)
            #expect(replica.state.placementCountsByPlan(onInstance: instance) == recount)
        }
    }

    @Test func activePlacementCannotDrainWhileTheTenantStays() {
        var replica = Make.clusterWithServedTenant()
        replica.expectRejected(Make.phase("t1", on: "i1", .draining), .breakBeforeMake)
        replica.expectRejected(Make.phase("t1", on: "i1", .gone), .invalidTransition)
        #expect(replica.state.activeInstance(ofTenant: "t1") == "i1")
    }

    @Test func oneMoveInFlightPerTenant() {
        var replica = Make.clusterWithServedTenant()
        replica.expectApplied(Make.place("t1", on: "i2"))
        replica.expectRejected(Make.place("t1", on: "i3"), .conflict)
        replica.expectRejected(Make.place("t1", on: "i2"), .alreadyExists)
        // Aborting the move frees the slot.
        replica.expectApplied(Make.phase("t1", on: "i2", .gone))
        replica.expectApplied(Make.place("t1", on: "i3"))
    }

    @Test func placingNeedsAnActiveInstanceAndALiveTenant() {
        var replica = Make.clusterWithServedTenant()
        replica.run(Make.addInstance("i9", port: 7009))
        replica.expectRejected(Make.place("t1", on: "i9"), .invalidTransition)  // still joining
        replica.expectRejected(Make.place("t1", on: "nope"), .notFound)
        replica.expectRejected(Make.place("ghost", on: "i2"), .notFound)
        replica.expectRejected(Make.place("t1", on: "I2!"), .invalidField)
        replica.expectRejected(Make.phase("t1", on: "i3", .active), .notFound)
    }

    @Test func deprovisionDrainsThenDeletesTheTenant() {
        var replica = Make.clusterWithServedTenant()
        replica.run(Make.bind("b1", tenant: "t1", token: "secret"))
        replica.expectRejected(Make.deleteTenant("t1"), .invalidTransition)
        replica.expectApplied(Make.tenantState("t1", .deprovisioning))
        replica.expectRejected(Make.place("t1", on: "i2"), .invalidTransition)
        replica.expectRejected(Make.deleteTenant("t1"), .notEmpty)
        replica.expectApplied(Make.phase("t1", on: "i1", .draining))
        replica.expectApplied(Make.phase("t1", on: "i1", .gone))
        replica.expectApplied(Make.deleteTenant("t1"))
        #expect(replica.state.tenant("t1") == nil)
        #expect(replica.state.binding("b1") == nil)
        #expect(replica.state.binding(forTokenSHA256Hex: TokenHash.sha256Hex(of: Array("secret".utf8))) == nil)
    }

    @Test func drainLeavesAnInstanceOnlyWhenItServesNoTenant() {
        var replica = Make.clusterWithServedTenant()
        replica.expectApplied(Make.instanceState("i1", .draining))
        replica.expectRejected(Make.instanceState("i1", .drained), .notEmpty)
        replica.expectRejected(Make.place("t1", on: "i1"), .invalidTransition)  // no new tenant on a draining instance
        replica.expectApplied(Make.place("t1", on: "i2"))
        replica.expectApplied(Make.phase("t1", on: "i2", .active))
        replica.expectApplied(Make.phase("t1", on: "i1", .gone))
        replica.expectApplied(Make.instanceState("i1", .drained))
        #expect(replica.state.instance("i1")?.state == .drained)
    }
}
