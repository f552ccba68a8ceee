@testable import ClusterModel
import Testing

/// Instance lifecycle, roles, versions and the min-version gate (ARCHITECTURE §12).
struct InstanceTests {
    @Test func instanceLifecycleFollowsDrainAndRejoin() {
        var replica = Replica()
        replica.expectApplied(Make.addInstance("i1", port: 7001))
        #expect(replica.state.instance("i1")?.state == .joining)
        replica.expectRejected(Make.instanceState("i1", .draining), .invalidTransition)
        replica.expectApplied(Make.instanceState("i1", .active))
        replica.expectRejected(Make.instanceState("i1", .removed), .invalidTransition)
        replica.expectApplied(Make.instanceState("i1", .draining))
        replica.expectApplied(Make.instanceState("i1", .drained))
        replica.expectApplied(Make.instanceState("i1", .active))  // rejoined after an upgrade
        replica.expectApplied(Make.instanceState("i1", .draining))
        replica.expectApplied(Make.instanceState("i1", .drained))
        replica.expectApplied(Make.instanceState("i1", .removed))
        replica.expectRejected(Make.instanceState("i1", .active), .invalidTransition)
        replica.expectRejected(Make.instanceState("i1", .unspecified), .invalidTransition)
    }

    @Test func removedInstanceIdsAreNeverReused() {
        var replica = Replica()
        replica.run(Make.addInstance("i1", port: 7001))
        replica.run(Make.instanceState("i1", .removed))
        replica.expectRejected(Make.addInstance("i1", port: 7002), .alreadyExists)
        // Its address is free again.
        replica.expectApplied(Make.addInstance("i2", port: 7001))
    }

    @Test func addInstanceValidatesEveryField() {
        var replica = Replica()
        replica.expectApplied(Make.addInstance("i1", port: 7001))
        replica.expectRejected(Make.addInstance("i2", port: 7001), .conflict)
        replica.expectRejected(Make.addInstance("", port: 7003), .invalidField)
        replica.expectRejected(Make.addInstance(String(repeating: "a", count: ClusterLimits.idBytesMax + 1), port: 7003), .invalidField)
        replica.expectRejected(Make.addInstance("i3", port: 7003, role: .unspecified), .invalidField)
        replica.expectRejected(Make.addInstance("i3", port: 7003, protocolVersion: 0), .invalidField)
        for address in ["", "no-port", "host:0", "host:70000", ":80", "a b:80", "host:\u{1}"] {
            guard case .addInstance(var c) = Make.addInstance("i3", port: 7003) else { return }
            c.address = address
            replica.expectRejected(.addInstance(c), .invalidField)
        }
        guard case .addInstance(var c) = Make.addInstance("i3", port: 7003) else { return }
        c.version = ""
        replica.expectRejected(.addInstance(c), .invalidField)
    }

    @Test func roleAndVersionUpdatesNeedALiveInstance() {
        var replica = Replica()
        replica.run(Make.addInstance("i1", port: 7001, role: .learner))
        var role = PBSetInstanceRole()
        role.id = "i1"
        role.role = .voter
        replica.expectApplied(.setInstanceRole(role))
        #expect(replica.state.instance("i1")?.role == .voter)
        role.role = .unspecified
        replica.expectRejected(.setInstanceRole(role), .invalidField)
        var report = PBReportInstanceVersion()
        report.id = "i1"
        report.version = "0.2.0"
        report.protocolVersion = 2
        replica.expectApplied(.reportInstanceVersion(report))
        #expect(replica.state.instance("i1")?.version == "0.2.0")
        report.id = "ghost"
        replica.expectRejected(.reportInstanceVersion(report), .notFound)
        replica.run(Make.instanceState("i1", .removed))
        role.role = .learner
        replica.expectRejected(.setInstanceRole(role), .invalidTransition)
        report.id = "i1"
        replica.expectRejected(.reportInstanceVersion(report), .invalidTransition)
    }

    @Test func minVersionGateOnlyRisesAndNeverAboveALiveMember() {
        var replica = Replica()
        replica.run(Make.addInstance("i1", port: 7001, protocolVersion: 2))
        replica.run(Make.addInstance("i2", port: 7002, protocolVersion: 1))
        replica.expectRejected(Make.minVersion(2), .belowMinVersion)  // i2 speaks only 1
        replica.expectApplied(Make.minVersion(1))
        var report = PBReportInstanceVersion()
        report.id = "i2"
        report.version = "0.2.0"
        report.protocolVersion = 2
        replica.expectApplied(.reportInstanceVersion(report))
        replica.expectApplied(Make.minVersion(2))
        #expect(replica.state.minProtocolVersion == 2)
        replica.expectRejected(Make.minVersion(1), .belowMinVersion)
        replica.expectRejected(Make.addInstance("i3", port: 7003, protocolVersion: 1), .belowMinVersion)
        report.protocolVersion = 1
        replica.expectRejected(.reportInstanceVersion(report), .belowMinVersion)
    }

    @Test func instanceCountIsBounded() {
        var replica = Replica()
        for n in 0..<ClusterLimits.instancesMax {
            replica.run(Make.addInstance("i\(n)", port: 1 + n))
        }
        replica.expectRejected(Make.addInstance("one-more", port: 60000), .limitReached)
    }
}
