@testable import ClusterModel

/// SplitMix64: a seeded generator so a failing random run is reproduced by its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Drives one replica the way the peer's driver does: consecutive indices, one client session.
struct Replica {
    var state = ClusterState()
    var index: UInt64 = 0
    var sequence: UInt64 = 0
    var timeMs: Int64 = 1_700_000_000_000
    let clientId: String

    init(clientId: String = "test-client") { self.clientId = clientId }

    /// Proposes a fresh command (new sequence) and applies it at the next index.
    @discardableResult
    mutating func run(_ body: Command.OneOf_Body) -> ApplyResult {
        sequence += 1
        timeMs += 10
        let command = Command(clientId: clientId, sequence: sequence, leaderTimeMs: timeMs, body)
        return apply(command)
    }

    @discardableResult
    mutating func apply(_ command: Command) -> ApplyResult {
        index += 1
        do {
            return try state.apply(command.entryBytes(), at: index)
        } catch {
            Issue.record("unexpected halt: \(error)")
            return .rejected(Rejection(.malformedCommand, "halted"))
        }
    }

    /// Expects a rejection with this code and the state unchanged but for the index/session.
    mutating func expectRejected(_ body: Command.OneOf_Body, _ code: RejectionCode, sourceLocation: SourceLocation = #_sourceLocation) {
        let before = state.contentWithoutBookkeeping
        let result = run(body)
        guard case .rejected(let rejection) = result else {
            Issue.record("expected \(code), got \(result)", sourceLocation: sourceLocation)
            return
        }
        #expect(rejection.code == code, "\(rejection)", sourceLocation: sourceLocation)
        #expect(state.contentWithoutBookkeeping == before, "a rejected command changed the state", sourceLocation: sourceLocation)
    }

    mutating func expectApplied(_ body: Command.OneOf_Body, sourceLocation: SourceLocation = #_sourceLocation) {
        let result = run(body)
        #expect(result == .applied, sourceLocation: sourceLocation)
    }
}

import Testing

extension ClusterState {
    /// The state minus the applied index, sessions and leader time, which every entry moves.
    var contentWithoutBookkeeping: PBState {
        var wire = wireState()
        wire.appliedIndex = 0
        wire.sessions = []
        wire.lastLeaderTimeMs = 0
        return wire
    }
}

// Small builders so tests read like the scenario they check.
enum Make {
    static func addInstance(_ id: String, port: Int = 0, role: PBInstanceRole = .voter, protocolVersion: UInt32 = 1) -> Command.OneOf_Body {
        var c = PBAddInstance()
        c.id = id
        c.address = "127.0.0.1:\(port == 0 ? 7000 + Int(id.utf8.reduce(UInt(0)) { $0 &* 31 &+ UInt($1) } % 1000) : port)"
        c.role = role
        c.version = "0.1.0"
        c.protocolVersion = protocolVersion
        return .addInstance(c)
    }

    static func instanceState(_ id: String, _ state: PBInstanceState) -> Command.OneOf_Body {
        var c = PBSetInstanceState()
        c.id = id
        c.state = state
        return .setInstanceState(c)
    }

    static func createTenant(_ id: String, plan: String = "development", components: [String] = ["dfx-dev", "dfc"]) -> Command.OneOf_Body {
        var c = PBCreateTenant()
        c.id = id
        c.plan = plan
        c.components = components
        c.quotas.requestsPerSecond = 100
        return .createTenant(c)
    }

    static func tenantState(_ id: String, _ state: PBTenantState) -> Command.OneOf_Body {
        var c = PBSetTenantState()
        c.id = id
        c.state = state
        return .setTenantState(c)
    }

    static func deleteTenant(_ id: String) -> Command.OneOf_Body {
        var c = PBDeleteTenant()
        c.id = id
        return .deleteTenant(c)
    }

    static func place(_ tenant: String, on instance: String, active: Bool = false) -> Command.OneOf_Body {
        var c = PBPlaceTenant()
        c.tenantID = tenant
        c.instanceID = instance
        c.active = active
        return .placeTenant(c)
    }

    static func phase(_ tenant: String, on instance: String, _ phase: PBPlacementPhase) -> Command.OneOf_Body {
        var c = PBSetPlacementPhase()
        c.tenantID = tenant
        c.instanceID = instance
        c.phase = phase
        return .setPlacementPhase(c)
    }

    static func bind(_ id: String, tenant: String, token: String) -> Command.OneOf_Body {
        var c = PBCreateBinding()
        c.id = id
        c.tenantID = tenant
        c.tokenSha256Hex = TokenHash.sha256Hex(of: Array(token.utf8))
        return .createBinding(c)
    }

    static func unbind(_ id: String) -> Command.OneOf_Body {
        var c = PBDeleteBinding()
        c.id = id
        return .deleteBinding(c)
    }

    static func startOperation(_ id: String, tenant: String, _ kind: PBOperationKind = .provision) -> Command.OneOf_Body {
        var c = PBStartOperation()
        c.id = id
        c.tenantID = tenant
        c.kind = kind
        return .startOperation(c)
    }

    static func finishOperation(_ id: String, _ state: PBOperationState, _ description: String = "") -> Command.OneOf_Body {
        var c = PBFinishOperation()
        c.id = id
        c.state = state
        c.description_p = description
        return .finishOperation(c)
    }

    static func intent(_ id: String, _ kind: PBIntentKind, instance: String, deadlineMs: Int64) -> Command.OneOf_Body {
        var c = PBRecordIntent()
        c.id = id
        c.kind = kind
        c.instanceID = instance
        c.deadlineMs = deadlineMs
        return .recordIntent(c)
    }

    static func resolve(_ id: String) -> Command.OneOf_Body {
        var c = PBResolveIntent()
        c.id = id
        return .resolveIntent(c)
    }

    static func minVersion(_ version: UInt32) -> Command.OneOf_Body {
        var c = PBSetMinVersion()
        c.protocolVersion = version
        return .setMinVersion(c)
    }

    static func settings(high: UInt32 = 800, low: UInt32 = 300, voters: UInt32 = 3) -> Command.OneOf_Body {
        var c = PBSetSettings()
        c.settings = ClusterState.defaultSettings
        c.settings.cpuHighPermille = high
        c.settings.cpuLowPermille = low
        c.settings.votersTarget = voters
        return .setSettings(c)
    }

    /// Two active instances and one ready tenant served on the first.
    static func clusterWithServedTenant() -> Replica {
        var replica = Replica()
        for id in ["i1", "i2", "i3"] {
            replica.run(addInstance(id, port: 7000 + Int(id.dropFirst())!))
            replica.run(instanceState(id, .active))
        }
        replica.run(createTenant("t1"))
        replica.run(place("t1", on: "i1"))
        replica.run(phase("t1", on: "i1", .active))
        replica.run(tenantState("t1", .ready))
        precondition(replica.state.activeInstance(ofTenant: "t1") == "i1")
        return replica
    }
}
