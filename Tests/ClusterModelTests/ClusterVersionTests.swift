import Testing
@testable import ClusterModel

/// The cluster version (docs/cluster-model.md §Versioning): raised by SetMinVersion once every
/// instance runs it, lowered by LowerMinVersion (protocol version 2), and a replica of the
/// previous release (`applierProtocolMax` 1) applies exactly as that release did.
struct ClusterVersionTests {
    static func reportVersion(_ id: String, _ protocolVersion: UInt32) -> Command.OneOf_Body {
        var c = PBReportInstanceVersion()
        c.id = id
        c.version = "0.\(protocolVersion).0-dev"
        c.protocolVersion = protocolVersion
        return .reportInstanceVersion(c)
    }

    static func lower(_ to: UInt32) -> Command.OneOf_Body {
        var c = PBLowerMinVersion()
        c.protocolVersion = to
        return .lowerMinVersion(c)
    }

    static func drain(_ id: String, _ state: PBInstanceState, reason: String) -> Command.OneOf_Body {
        var c = PBSetInstanceState()
        c.id = id
        c.state = state
        c.reason = reason
        return .setInstanceState(c)
    }

    /// Two active instances that run protocol version 2.
    func cluster() -> Replica {
        var r = Replica()
        for id in ["1", "2"] {
            r.run(Make.addInstance(id, port: id == "1" ? 7101 : 7102))
            r.run(Make.instanceState(id, .active))
            r.run(Self.reportVersion(id, 2))
        }
        return r
    }

    @Test func theRaiseWaitsForEveryInstanceAndTheLowerIsAVersionTwoCommand() {
        var r = Replica()
        r.run(Make.addInstance("1", port: 7101))
        r.run(Make.addInstance("2", port: 7102))
        r.run(Self.reportVersion("1", 2))
        r.expectRejected(Make.minVersion(2), .belowMinVersion)  // instance 2 runs version 1
        r.expectRejected(Self.lower(1), .commandGated)  // version 2's command before the cluster runs it
        r.run(Self.reportVersion("2", 2))
        #expect(r.run(Make.minVersion(2)) == .applied)
        #expect(r.state.minProtocolVersion == 2)
        r.expectRejected(Self.reportVersion("2", 1), .belowMinVersion)  // a member too old cannot report in
        r.expectRejected(Self.lower(2), .invalidField)
        r.expectRejected(Self.lower(0), .invalidField)
        #expect(r.run(Self.lower(1)) == .applied)
        #expect(r.state.minProtocolVersion == 1)
    }

    @Test func theStateReasonIsIgnoredBelowVersionTwoKeptThroughTheDrainAndDroppedByTheLower() {
        var r = cluster()
        #expect(r.run(Self.drain("2", .draining, reason: "upgrade to 0.2.0")) == .applied)
        #expect(r.state.instance("2")?.stateReason == "", "version 1 peers ignore the field, so every replica does")
        r.run(Make.instanceState("2", .active))
        #expect(r.run(Make.minVersion(2)) == .applied)
        #expect(r.run(Self.drain("2", .draining, reason: "upgrade to 0.3.0")) == .applied)
        r.run(Make.instanceState("2", .drained))  // the drain driver's step, no reason
        #expect(r.state.instance("2")?.stateReason == "upgrade to 0.3.0")
        r.run(Make.instanceState("2", .active))
        #expect(r.state.instance("2")?.stateReason == "")
        r.run(Self.drain("2", .draining, reason: "maintenance"))
        #expect(r.run(Self.lower(1)) == .applied)
        #expect(r.state.instance("2")?.stateReason == "", "the lower drops what only version 2 keeps")
    }

    /// A replica of the previous release: version 2's command halts it as an unknown one would,
    /// a raise above it says it is too old, and it ignores version 2's field.
    @Test func aReplicaOfThePreviousReleaseAppliesAsThatReleaseDid() throws {
        var old = ClusterState()
        old.applierProtocolMax = 1
        var index: UInt64 = 0
        func bytes(_ body: Command.OneOf_Body, _ seq: UInt64) -> [UInt8] {
            Command(clientId: "c", sequence: seq, leaderTimeMs: 1_700_000_000_000, body).entryBytes()
        }
        index += 1
        _ = try old.apply(bytes(Make.addInstance("1", port: 7101), 1), at: index)
        #expect(throws: ApplyHalt.unsupportedCommand(index: 2, fieldNumbers: [72])) { try old.apply(bytes(Self.lower(1), 2), at: 2) }
        // A raise the state refuses (instance 1 reports version 1) is refused here as on every
        // replica; one that applies stops this replica: it cannot run in the raised cluster.
        #expect(try old.apply(bytes(Make.minVersion(2), 2), at: 2) == .rejected(Rejection(.belowMinVersion, "instance \"1\" speaks protocol version 1 < 2")))
        _ = try old.apply(bytes(Self.reportVersion("1", 2), 3), at: 3)
        #expect(throws: ApplyHalt.tooOld(index: 4, clusterVersion: 2, supported: 1)) { try old.apply(bytes(Make.minVersion(2), 4), at: 4) }
        #expect(old.appliedIndex == 3, "a halted entry is not applied")
    }

    @Test func aSnapshotKeepsTheReasonAndTheVersion() throws {
        var r = cluster()
        r.run(Make.minVersion(2))
        r.run(Self.drain("1", .draining, reason: "disk swap"))
        let back = try ClusterState(snapshot: r.state.encodeSnapshot())
        #expect(back == r.state)
        #expect(back.instance("1")?.stateReason == "disk swap" && back.minProtocolVersion == 2)
    }

    /// Autopilot's event kind is version 2's: a replica of version 1 refuses it, so every
    /// replica does until the cluster runs version 2; the lower drops those kept.
    @Test func theAutopilotEventKindIsVersionTwos() {
        var r = cluster()
        r.expectRejected(EventTests.record("a1", .autopilot, retain: 10), .invalidField)
        #expect(r.run(Make.minVersion(2)) == .applied)
        #expect(r.run(EventTests.record("a1", .autopilot, retain: 10)) == .applied)
        #expect(r.run(EventTests.record("p1", .paused, retain: 10)) == .applied)
        #expect(r.run(Self.lower(1)) == .applied)
        #expect(r.state.allEvents.map(\.id) == ["p1"])
        #expect(r.run(EventTests.record("a1", .autopilot, retain: 10)) != .applied, "the dropped id must not be usable at version 1 either")
    }
}
