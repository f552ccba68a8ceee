@testable import ClusterModel
import Testing

/// The broker's composite commands (issue 7): each one entry, so no failover splits it.
struct BrokerCommandTests {
    static let digest = String(repeating: "ab", count: 32)

    static func provision(_ tenant: String, op: String, plan: String = "dreamface-deployment", digest: String = digest, identity: String = "cf eyJ1IjoxfQ==") -> Command.OneOf_Body {
        var create = PBCreateTenant()
        create.id = tenant
        create.plan = plan
        create.components = ["dfx-dep"]
        var c = PBProvisionTenant()
        c.tenant = create
        c.operationID = op
        c.originatingIdentity = identity
        c.attributesSha256Hex = digest
        return .provisionTenant(c)
    }

    static func deprovision(_ tenant: String, op: String) -> Command.OneOf_Body {
        var c = PBDeprovisionTenant()
        c.tenantID = tenant
        c.operationID = op
        return .deprovisionTenant(c)
    }

    static func change(_ tenant: String, op: String, plan: String = "dreamface-development", components: [String] = ["dfx-dev", "dfc"]) -> Command.OneOf_Body {
        var c = PBChangeTenantPlan()
        c.tenantID = tenant
        c.plan = plan
        c.components = components
        c.operationID = op
        return .changeTenantPlan(c)
    }

    @Test func provisionCreatesTheTenantAndStartsItsOperationInOneEntry() {
        var replica = Replica()
        replica.expectApplied(Self.provision("t1", op: "op1"))
        let tenant = replica.state.tenant("t1")
        #expect(tenant?.state == .provisioning && tenant?.attributesSha256Hex == Self.digest)
        let op = replica.state.operation("op1")
        #expect(op?.kind == .provision && op?.state == .inProgress && op?.originatingIdentity == "cf eyJ1IjoxfQ==")
        #expect(op?.startedIndex == replica.index)
        #expect(replica.state.inProgressOperation(ofTenant: "t1")?.id == "op1")
        #expect(replica.state.lastOperation(ofTenant: "t1")?.id == "op1")
        #expect(replica.state.inProgressOperations.map(\.id) == ["op1"])
        replica.expectRejected(Self.provision("t1", op: "op2"), .alreadyExists)
        replica.expectRejected(Self.provision("t2", op: "op1"), .alreadyExists)
        replica.expectRejected(Self.provision("t2", op: "Bad Op"), .invalidField)
        replica.expectRejected(Self.provision("t2", op: "op2", digest: "xyz"), .invalidField)
        replica.expectRejected(Self.provision("t2", op: "op2", identity: "cf \u{1}"), .invalidField)
        replica.expectRejected(Self.provision("t2", op: "op2", identity: String(repeating: "a", count: ClusterLimits.originatingIdentityBytesMax + 1)), .invalidField)
        replica.expectRejected(Self.provision("T2", op: "op2"), .invalidField)
        replica.expectRejected(Self.provision("t2", op: "op2", plan: ""), .invalidField)
        var noTenant = PBProvisionTenant()
        noTenant.operationID = "op2"
        replica.expectRejected(.provisionTenant(noTenant), .invalidField)
    }

    @Test func deprovisionAbortsARunningProvisionAndStartsInTheSameEntry() {
        var replica = Replica()
        replica.run(Self.provision("t1", op: "p1"))
        replica.expectRejected(Self.deprovision("ghost", op: "d1"), .notFound)
        replica.expectRejected(Self.deprovision("t1", op: "p1"), .alreadyExists)
        replica.expectRejected(Self.deprovision("t1", op: "D1"), .invalidField)
        replica.expectApplied(Self.deprovision("t1", op: "d1"))
        #expect(replica.state.operation("p1")?.state == .failed)
        #expect(replica.state.operation("p1")?.description_p.hasPrefix("aborted") == true)
        #expect(replica.state.tenant("t1")?.state == .deprovisioning)
        #expect(replica.state.inProgressOperation(ofTenant: "t1")?.id == "d1")
        #expect(replica.state.lastOperation(ofTenant: "t1")?.id == "d1")
        replica.expectRejected(Self.deprovision("t1", op: "d2"), .conflict)
        // The delete finishes the deprovision in its own entry.
        replica.expectApplied(Make.deleteTenant("t1"))
        #expect(replica.state.operation("d1")?.state == .succeeded)
        #expect(replica.state.inProgressOperations.isEmpty)
        #expect(replica.state.lastOperation(ofTenant: "t1")?.id == "d1", "the record outlives the tenant")
        // The id can be provisioned again; the new operation is the last one.
        replica.expectApplied(Self.provision("t1", op: "p2"))
        #expect(replica.state.lastOperation(ofTenant: "t1")?.id == "p2")
    }

    @Test func deletingATenantFinishesAnyOperationItHasInProgress() {
        var replica = Replica()
        replica.run(Self.provision("t1", op: "p1"))
        replica.run(Make.tenantState("t1", .deprovisioning))  // the admin API's delete path
        replica.expectApplied(Make.deleteTenant("t1"))
        #expect(replica.state.operation("p1")?.state == .failed)
        #expect(replica.state.inProgressOperation(ofTenant: "t1") == nil)
    }

    @Test func changePlanNeedsAReadyTenantWithNothingRunningAndRecordsAFinishedUpdate() {
        var replica = Replica()
        replica.run(Self.provision("t1", op: "p1"))
        replica.expectRejected(Self.change("t1", op: "u1"), .conflict)
        replica.run(Make.finishOperation("p1", .succeeded))
        replica.expectRejected(Self.change("t1", op: "u1"), .invalidTransition)
        replica.run(Make.tenantState("t1", .ready))
        replica.expectRejected(Self.change("ghost", op: "u1"), .notFound)
        replica.expectRejected(Self.change("t1", op: "p1"), .alreadyExists)
        replica.expectRejected(Self.change("t1", op: "u1", plan: ""), .invalidField)
        replica.expectRejected(Self.change("t1", op: "u1", components: []), .invalidField)
        replica.expectApplied(Self.change("t1", op: "u1"))
        #expect(replica.state.tenant("t1")?.plan == "dreamface-development")
        #expect(replica.state.tenant("t1")?.components == ["dfc", "dfx-dev"])
        let op = replica.state.operation("u1")
        #expect(op?.kind == .update && op?.state == .succeeded)
        #expect(op?.description_p == "plan changed from dreamface-deployment to dreamface-development")
        #expect(replica.state.lastOperation(ofTenant: "t1")?.id == "u1")
        replica.run(Self.deprovision("t1", op: "d1"))
        replica.expectRejected(Self.change("t1", op: "u2"), .conflict)
    }

    @Test func bindingsRecordTheirAttributesAndOriginatingIdentity() {
        var replica = Make.clusterWithServedTenant()
        var c = PBCreateBinding()
        c.id = "b1"
        c.tenantID = "t1"
        c.tokenSha256Hex = TokenHash.sha256Hex(of: Array("tok".utf8))
        c.attributesSha256Hex = Self.digest
        c.originatingIdentity = "k8s eyJ9"
        replica.expectApplied(.createBinding(c))
        #expect(replica.state.binding("b1")?.attributesSha256Hex == Self.digest)
        #expect(replica.state.binding("b1")?.originatingIdentity == "k8s eyJ9")
        c.id = "b2"
        c.tokenSha256Hex = TokenHash.sha256Hex(of: Array("tok2".utf8))
        c.attributesSha256Hex = "ABC"
        replica.expectRejected(.createBinding(c), .invalidField)
        c.attributesSha256Hex = ""
        c.originatingIdentity = "x\u{7F}"
        replica.expectRejected(.createBinding(c), .invalidField)
    }

    @Test func snapshotsKeepTheLastOperationOfEveryTenant() throws {
        var replica = Replica()
        replica.run(Self.provision("t1", op: "p1"))
        replica.run(Self.deprovision("t1", op: "d1"))
        replica.run(Make.deleteTenant("t1"))
        replica.run(Self.provision("t2", op: "p2"))
        let restored = try ClusterState(snapshot: replica.state.encodeSnapshot())
        #expect(restored == replica.state)
        #expect(restored.lastOperation(ofTenant: "t1")?.id == "d1")
        #expect(restored.inProgressOperation(ofTenant: "t2")?.id == "p2")
    }
}
