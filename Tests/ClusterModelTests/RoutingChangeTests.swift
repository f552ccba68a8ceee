import ClusterModel
import Testing

/// `routingChangeIndex`: the data plane's O(1) "anything to do?" check.
@Suite struct RoutingChangeTests {
    @Test func onlyEntriesThatChangeRoutingInputsMoveTheMarkerAndARestoreSetsItToTheSnapshotIndex() throws {
        var state = ClusterState()
        var index: UInt64 = 0
        func run(_ body: Command.OneOf_Body) throws -> ApplyResult {
            index += 1
            return try state.apply(Command(clientId: "t", sequence: index, leaderTimeMs: 1_800_000_000_000, body), at: index)
        }
        var add = PBAddInstance()
        add.id = "1"
        add.address = "127.0.0.1:7101"
        add.role = .voter
        add.protocolVersion = 1
        add.version = "test"
        #expect(try run(.addInstance(add)) == .applied)
        #expect(state.routingChangeIndex == 1)
        var settings = PBSetSettings()
        settings.settings = ClusterState.defaultSettings
        #expect(try run(.setSettings(settings)) == .applied)
        #expect(state.routingChangeIndex == 1, "settings do not change routing")
        var create = PBCreateTenant()
        create.id = "acme"
        create.plan = "p"
        create.components = ["dfx-dep"]
        #expect(try run(.createTenant(create)) == .applied)
        #expect(state.routingChangeIndex == 3)
        // A rejected command changes nothing, so the marker stays.
        #expect(try run(.createTenant(create)) != .applied)
        #expect(state.routingChangeIndex == 3)
        let restored = try ClusterState(snapshot: state.encodeSnapshot())
        #expect(restored.routingChangeIndex == state.appliedIndex)
        #expect(restored == state, "the marker is not part of the state's identity")
    }
}
