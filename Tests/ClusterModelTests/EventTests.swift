import ClusterModel
import Testing

/// The balancer's events in the state (issue 21): kept newest, trimmed alike on every replica,
/// recorded with their intent in one entry or not at all, and the pause flag follows them.
@Suite struct EventTests {
    static func event(_ id: String, _ kind: PBEventKind, instance: String = "", reason: String = "because") -> PBEvent {
        var e = PBEvent()
        e.id = id
        e.kind = kind
        e.instanceID = instance
        e.reason = reason
        return e
    }

    static func record(_ id: String, _ kind: PBEventKind, retain: UInt32 = 100) -> Command.OneOf_Body {
        var c = PBRecordEvent()
        c.event = event(id, kind)
        c.retain = retain
        return .recordEvent(c)
    }

    static func scaleUp(_ id: String, newInstance: String, intent: String, deadlineMs: Int64, retain: UInt32 = 100, tenant: String = "acme") -> Command.OneOf_Body {
        var c = PBRecordEvent()
        c.event = event(id, .scaleUp, instance: "i0", reason: "overloaded")
        c.event.newInstanceID = newInstance
        var move = PBEventMove()
        move.tenantID = tenant
        c.event.moves = [move]
        c.intent.id = intent
        c.intent.kind = .provision
        c.intent.instanceID = newInstance
        c.intent.deadlineMs = deadlineMs
        c.retain = retain
        return .recordEvent(c)
    }

    @Test func eventsAreKeptNewestLastWithTheirIndexAndTimeAndTrimmedToRetain() throws {
        var r = Replica()
        for i in 0..<5 { r.expectApplied(Self.record("e\(i)", .alert, retain: 3)) }
        let events = r.state.allEvents
        #expect(events.map(\.id) == ["e2", "e3", "e4"])
        #expect(events.map(\.index) == [3, 4, 5])
        #expect(events.last?.atMs == r.timeMs)
        #expect(r.state.event("e1") == nil && r.state.event("e4") != nil)
        #expect(r.state.events(newestFirstBefore: nil, limit: 2).map(\.id) == ["e4", "e3"])
        #expect(r.state.events(newestFirstBefore: 4, limit: 10).map(\.id) == ["e2"])
        #expect(r.state.events(after: 3, limit: 10).map(\.id) == ["e3", "e4"])
        // A dropped id may come again; a kept one may not.
        r.expectApplied(Self.record("e1", .alert, retain: 3))
        r.expectRejected(Self.record("e4", .alert, retain: 3), .alreadyExists)
        #expect(try ClusterState(snapshot: r.state.encodeSnapshot()) == r.state)
    }

    @Test func aDecisionAndItsIntentAreOneEntry() throws {
        var r = Replica()
        r.expectApplied(Make.addInstance("i0"))
        r.expectApplied(Self.scaleUp("up-1", newInstance: "i1", intent: "provision-i1", deadlineMs: r.timeMs + 60_000))
        let e = try #require(r.state.event("up-1"))
        #expect(e.intentID == "provision-i1" && e.newInstanceID == "i1")
        #expect(r.state.allIntents.map(\.id) == ["provision-i1"])
        // An intent that cannot be recorded (the instance has one) leaves no event either.
        r.expectRejected(Self.scaleUp("up-2", newInstance: "i1", intent: "provision-i1b", deadlineMs: r.timeMs + 60_000), .conflict)
        #expect(r.state.event("up-2") == nil)
        // An intent of the wrong kind or instance for the event is refused.
        var wrong = PBRecordEvent()
        wrong.event = Self.event("down-1", .scaleDown, instance: "i0")
        wrong.intent.id = "provision-i9"
        wrong.intent.kind = .provision
        wrong.intent.instanceID = "i9"
        wrong.intent.deadlineMs = r.timeMs + 60_000
        wrong.retain = 10
        r.expectRejected(.recordEvent(wrong), .invalidField)
    }

    @Test func pauseAndResumeSetTheFlag() throws {
        var r = Replica()
        #expect(!r.state.isBalancerPaused)
        r.expectApplied(Self.record("p", .paused))
        #expect(r.state.isBalancerPaused)
        #expect(try ClusterState(snapshot: r.state.encodeSnapshot()).isBalancerPaused)
        r.expectApplied(Self.record("r", .resumed))
        #expect(!r.state.isBalancerPaused)
    }

    @Test func malformedEventsAreRefusedAndChangeNothing() {
        var r = Replica()
        var c = PBRecordEvent()
        c.event = Self.event("ok", .alert)
        c.retain = 0
        r.expectRejected(.recordEvent(c), .invalidField)
        c.retain = 100_001
        r.expectRejected(.recordEvent(c), .invalidField)
        c.retain = 10
        c.event.reason = ""
        r.expectRejected(.recordEvent(c), .invalidField)
        c.event = Self.event("Bad Id", .alert)
        r.expectRejected(.recordEvent(c), .invalidField)
        c.event = Self.event("k", PBEventKind(rawValue: 42)!)
        r.expectRejected(.recordEvent(c), .invalidField)
        c.event = Self.event("m", .alert)
        var m = PBMeasure()
        m.name = "rps"
        m.value = .nan
        c.event.measures = [m]
        r.expectRejected(.recordEvent(c), .invalidField)
        c.event = Self.event("mv", .rebalance)
        var move = PBEventMove()
        move.tenantID = "acme"
        c.event.moves = [move]
        r.expectRejected(.recordEvent(c), .invalidField)  // "" target and no new instance
        c.event.moves = Array(repeating: move, count: ClusterLimits.eventMovesMax + 1)
        r.expectRejected(.recordEvent(c), .invalidField)
        var noEvent = PBRecordEvent()
        noEvent.retain = 10
        r.expectRejected(.recordEvent(noEvent), .invalidField)
    }
}
