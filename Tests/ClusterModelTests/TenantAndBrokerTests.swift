@testable import ClusterModel
import Testing

/// Tenants, bindings, broker operations, intents and settings (issues 7 and 11).
struct TenantAndBrokerTests {
    @Test func tenantLifecycleAndValidation() {
        var replica = Replica()
        replica.expectApplied(Make.createTenant("t1", components: ["dfc", "dfx-dev"]))
        #expect(replica.state.tenant("t1")?.components == ["dfc", "dfx-dev"])
        #expect(replica.state.tenant("t1")?.state == .provisioning)
        replica.expectRejected(Make.createTenant("t1"), .alreadyExists)
        for badId in ["", "-t", "t-", "t.x", "t_x", "T1", String(repeating: "t", count: 64)] {
            replica.expectRejected(Make.createTenant(badId), .invalidField)
        }
        replica.expectRejected(Make.createTenant("t2", plan: ""), .invalidField)
        replica.expectRejected(Make.createTenant("t2", components: []), .invalidField)
        replica.expectRejected(Make.createTenant("t2", components: ["dfc", "dfc"]), .invalidField)
        replica.expectRejected(Make.createTenant("t2", components: ["DFC"]), .invalidField)
        replica.expectRejected(Make.createTenant("t2", components: (0...ClusterLimits.componentsPerTenantMax).map { "c\($0)" }), .limitReached)
        replica.expectRejected(Make.tenantState("t1", .provisioning), .invalidTransition)
        replica.expectApplied(Make.tenantState("t1", .ready))
        var update = PBUpdateTenant()
        update.id = "t1"
        update.plan = "deployment"
        update.components = ["dfx-dep"]
        replica.expectApplied(.updateTenant(update))
        #expect(replica.state.tenant("t1")?.plan == "deployment")
        update.id = "ghost"
        replica.expectRejected(.updateTenant(update), .notFound)
        replica.expectApplied(Make.tenantState("t1", .deprovisioning))
        update.id = "t1"
        replica.expectRejected(.updateTenant(update), .invalidTransition)
        replica.expectRejected(Make.tenantState("t1", .ready), .invalidTransition)
        replica.expectApplied(Make.deleteTenant("t1"))
        replica.expectRejected(Make.deleteTenant("t1"), .notFound)
    }

    @Test func bindingsStoreOnlyTheTokenHash() {
        var replica = Make.clusterWithServedTenant()
        replica.expectApplied(Make.bind("b1", tenant: "t1", token: "user-token"))
        let hash = TokenHash.sha256Hex(of: Array("user-token".utf8))
        #expect(replica.state.binding(forTokenSHA256Hex: hash)?.tenantID == "t1")
        let snapshot = replica.state.encodeSnapshot()
        #expect(!contains(snapshot, Array("user-token".utf8)), "the token itself must never be replicated")
        replica.expectRejected(Make.bind("b1", tenant: "t1", token: "other"), .alreadyExists)
        replica.expectRejected(Make.bind("b2", tenant: "t1", token: "user-token"), .conflict)
        replica.expectRejected(Make.bind("b2", tenant: "ghost", token: "x"), .notFound)
        var bad = PBCreateBinding()
        bad.id = "b2"
        bad.tenantID = "t1"
        bad.tokenSha256Hex = "user-token"
        replica.expectRejected(.createBinding(bad), .invalidField)
        bad.tokenSha256Hex = hash.uppercased()
        replica.expectRejected(.createBinding(bad), .invalidField)
        replica.expectApplied(Make.unbind("b1"))
        #expect(replica.state.binding(forTokenSHA256Hex: hash) == nil)
        replica.expectRejected(Make.unbind("b1"), .notFound)
    }

    @Test func bindingsPerTenantAreBounded() {
        var replica = Make.clusterWithServedTenant()
        for n in 0..<ClusterLimits.bindingsPerTenantMax { replica.run(Make.bind("b\(n)", tenant: "t1", token: "tok\(n)")) }
        replica.expectRejected(Make.bind("one-more", tenant: "t1", token: "more"), .limitReached)
    }

    @Test func brokerOperationProgressIsReplicated() {
        var replica = Replica()
        replica.run(Make.createTenant("t1"))
        replica.expectApplied(Make.startOperation("op1", tenant: "t1"))
        #expect(replica.state.operation("op1")?.state == .inProgress)
        replica.expectRejected(Make.startOperation("op2", tenant: "t1", .update), .conflict)
        replica.expectRejected(Make.startOperation("op1", tenant: "t1"), .alreadyExists)
        replica.expectRejected(Make.startOperation("op2", tenant: "ghost"), .notFound)
        replica.expectRejected(Make.startOperation("op2", tenant: "t1", .unspecified), .invalidField)
        replica.expectRejected(Make.finishOperation("op1", .inProgress), .invalidField)
        replica.expectRejected(Make.finishOperation("op1", .failed, String(repeating: "x", count: ClusterLimits.descriptionBytesMax + 1)), .invalidField)
        replica.expectRejected(Make.finishOperation("ghost", .succeeded), .notFound)
        replica.expectApplied(Make.finishOperation("op1", .succeeded, "tenant ready"))
        replica.expectRejected(Make.finishOperation("op1", .failed), .invalidTransition)
        #expect(replica.state.operation("op1")?.description_p == "tenant ready")
        replica.expectApplied(Make.startOperation("op2", tenant: "t1", .deprovision))
    }

    @Test func intentsCarryLeaderDeadlines() {
        var replica = Make.clusterWithServedTenant()
        let now = replica.timeMs
        replica.expectApplied(Make.intent("p1", .provision, instance: "i4", deadlineMs: now + 60_000))
        replica.expectRejected(Make.intent("p2", .provision, instance: "i5", deadlineMs: now), .invalidField)
        replica.expectRejected(Make.intent("p2", .provision, instance: "i1", deadlineMs: now + 60_000), .alreadyExists)
        replica.expectRejected(Make.intent("p2", .provision, instance: "i4", deadlineMs: now + 60_000), .conflict)
        replica.expectRejected(Make.intent("p1", .decommission, instance: "i2", deadlineMs: now + 60_000), .alreadyExists)
        replica.expectRejected(Make.intent("p2", .decommission, instance: "ghost", deadlineMs: now + 60_000), .notFound)
        replica.expectRejected(Make.intent("p2", .unspecified, instance: "i2", deadlineMs: now + 60_000), .invalidField)
        replica.expectApplied(Make.intent("d1", .decommission, instance: "i3", deadlineMs: now + 60_000))
        #expect(replica.state.allIntents.map(\.id) == ["d1", "p1"])
        #expect(replica.state.intents(pastDeadlineAt: now + 59_999).isEmpty)
        #expect(replica.state.intents(pastDeadlineAt: now + 60_000).map(\.id) == ["d1", "p1"])
        replica.expectApplied(Make.resolve("p1"))
        replica.expectRejected(Make.resolve("p1"), .notFound)
    }

    @Test func settingsAreValidated() {
        var replica = Replica()
        replica.expectApplied(Make.settings(high: 900, low: 200, voters: 5))
        #expect(replica.state.settings.votersTarget == 5)
        replica.expectRejected(Make.settings(high: 200, low: 200), .invalidField)
        replica.expectRejected(Make.settings(high: 1001, low: 200), .invalidField)
        replica.expectRejected(Make.settings(voters: 4), .invalidField)
        replica.expectRejected(.setSettings(PBSetSettings()), .invalidField)
    }

    @Test func statusQueriesCountTenantsAndInstances() {
        var replica = Make.clusterWithServedTenant()
        replica.run(Make.createTenant("t2"))
        #expect(replica.state.tenantCount == 2)
        #expect(replica.state.tenantCountsByState == [.ready: 1, .provisioning: 1])
        #expect(replica.state.allInstances.map(\.id) == ["i1", "i2", "i3"])
        #expect(replica.state.instances(in: .active).count == 3)
        #expect(replica.state.activeTenantCountsByInstance == ["i1": 1])
        #expect(replica.state.activeInstance(ofTenant: "t2") == nil)
        #expect(replica.state.stateDigestHex.count == 64)
    }
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard needle.count <= haystack.count else { return false }
    return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
}
