// The balancer's decisions and the operator's pause/resume, as events kept in the state
// (docs/balancer.md). An event may carry the intent it decides (a scale-up's provision, a
// scale-down's decommission): both are recorded by one entry, so no leader can die between a
// decision and its intent, and a new leader finds the decision with everything it needs.

extension ClusterState {
    mutating func applyRecordEvent(_ c: PBRecordEvent, now: Int64, index: UInt64) throws(Rejection) {
        guard c.hasEvent else { throw Rejection(.invalidField, "event is required") }
        try Self.validateEvent(c.event, minProtocolVersion: minProtocolVersion)
        guard (1...ClusterLimits.eventsMax).contains(Int(c.retain)) else {
            throw Rejection(.invalidField, "retain must be 1...\(ClusterLimits.eventsMax), got \(c.retain)")
        }
        guard !eventIds.contains(c.event.id) else { throw Rejection(.alreadyExists, "event \(Validate.quoted(c.event.id)) exists") }
        if c.hasIntent {
            guard [.scaleUp, .replace, .scaleDown].contains(c.event.kind) else {
                throw Rejection(.invalidField, "only a scale-up, replace or scale-down event records an intent, not \(c.event.kind)")
            }
            let wanted: PBIntentKind = c.event.kind == .scaleDown ? .decommission : .provision
            let instance = c.event.kind == .scaleDown ? c.event.instanceID : c.event.newInstanceID
            guard c.intent.kind == wanted, c.intent.instanceID == instance else {
                throw Rejection(.invalidField, "a \(c.event.kind) event records a \(wanted) intent for instance \(Validate.quoted(instance)), not \(c.intent.kind) of \(Validate.quoted(c.intent.instanceID))")
            }
            // Validates everything, then mutates: the last check that can throw.
            try applyRecordIntent(c.intent, now: now)
        }
        var event = c.event
        event.index = index
        event.atMs = now
        event.intentID = c.hasIntent ? c.intent.id : ""
        switch event.kind {
        case .paused: balancerPaused = true
        case .resumed: balancerPaused = false
        default: break
        }
        events.append(event)
        eventIds.insert(event.id)
        let excess = events.count - Int(c.retain)
        if excess > 0 {
            for dropped in events.prefix(excess) { eventIds.remove(dropped.id) }
            events.removeFirst(excess)
        }
    }

    /// The rules an event meets in apply and in a snapshot alike.
    static func validateEvent(_ e: PBEvent, minProtocolVersion: UInt32) throws(Rejection) {
        try Validate.id(e.id, "event id")
        // `autopilot` (9) is a kind of protocol version 2: a replica of version 1 refuses it, so
        // every replica does until the cluster runs version 2.
        let kinds = minProtocolVersion >= 2 ? 1...9 : 1...8
        guard kinds.contains(e.kind.rawValue) else { throw Rejection(.invalidField, "event \(Validate.quoted(e.id)) has kind \(e.kind)") }
        if !e.instanceID.isEmpty { try Validate.id(e.instanceID, "event instance id") }
        if !e.newInstanceID.isEmpty { try Validate.id(e.newInstanceID, "event new instance id") }
        try Validate.text(e.reason, "event reason", max: ClusterLimits.descriptionBytesMax, required: true)
        guard e.measures.count <= ClusterLimits.eventMeasuresMax else {
            throw Rejection(.invalidField, "event \(Validate.quoted(e.id)) has \(e.measures.count) measures, max \(ClusterLimits.eventMeasuresMax)")
        }
        for m in e.measures {
            try Validate.id(m.name, "measure name")
            guard m.value.isFinite, m.mark.isFinite else { throw Rejection(.invalidField, "measure \(m.name) is not a finite number") }
        }
        guard e.moves.count <= ClusterLimits.eventMovesMax else {
            throw Rejection(.invalidField, "event \(Validate.quoted(e.id)) moves \(e.moves.count) tenants, max \(ClusterLimits.eventMovesMax)")
        }
        for move in e.moves {
            try Validate.tenantId(move.tenantID)
            if move.targetInstanceID.isEmpty {
                guard !e.newInstanceID.isEmpty else {
                    throw Rejection(.invalidField, "event \(Validate.quoted(e.id)) moves \(move.tenantID) to its new instance but names none")
                }
            } else {
                try Validate.id(move.targetInstanceID, "move target instance id")
            }
        }
    }
}

// MARK: - Queries

extension ClusterState {
    /// The kept events, oldest first (by index).
    public var allEvents: [Event] { events }

    /// At most `limit` events, newest first, with an index below `before` (nil: from the newest).
    public func events(newestFirstBefore before: UInt64? = nil, limit: Int) -> [Event] {
        var result: [Event] = []
        for event in events.reversed() where before.map({ event.index < $0 }) ?? true {
            guard result.count < limit else { break }
            result.append(event)
        }
        return result
    }

    /// Events with an index above `after`, oldest first, at most `limit` (`peer events --follow`).
    public func events(after: UInt64, limit: Int) -> [Event] {
        // Binary search: events are sorted by index.
        var low = 0, high = events.count
        while low < high {
            let mid = (low + high) / 2
            if events[mid].index <= after { low = mid + 1 } else { high = mid }
        }
        return Array(events[low..<min(events.count, low + limit)])
    }

    public func event(_ id: String) -> Event? {
        guard eventIds.contains(id) else { return nil }
        return events.last { $0.id == id }
    }

    /// Whether the operator paused the balancer (`peer balancer pause`).
    public var isBalancerPaused: Bool { balancerPaused }
}
