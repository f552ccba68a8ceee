import SwiftProtobuf

// The entry point of the state machine, Nomad `fsm.go` style: decode, check the client session,
// then a flat switch with one `applyX` per command. Each `applyX` validates everything first and
// mutates last, so a rejected command leaves the state untouched.

extension ClusterState {
    /// Applies one committed Raft entry's bytes. Bytes that are not a `Command` are rejected
    /// (deterministically, on every replica) and the index still advances.
    /// - Throws: `ApplyHalt` when the entry holds a command this version does not know and the
    ///   proposer did not flag it skippable; nothing changes and the caller must stop applying.
    public mutating func apply(_ bytes: [UInt8], at index: UInt64) throws(ApplyHalt) -> ApplyResult {
        let command: Command
        do {
            command = try Command(serializedBytes: bytes)
        } catch {
            advance(to: index)
            return .rejected(Rejection(.malformedCommand, "entry \(index) is not a Command: \(error)"))
        }
        return try apply(command, at: index)
    }

    /// Applies one decoded command committed at `index`.
    public mutating func apply(_ command: Command, at index: UInt64) throws(ApplyHalt) -> ApplyResult {
        precondition(index > appliedIndex, "apply index \(index) not after applied index \(appliedIndex)")
        guard command.hasRequest else {
            advance(to: index)
            return .rejected(Rejection(.malformedCommand, "command has no request id"))
        }
        let request = command.request
        do throws(Rejection) {
            try Validate.text(request.clientID, "request.client_id", max: ClusterLimits.clientIdBytesMax, required: true)
            guard request.sequence > 0 else { throw Rejection(.malformedCommand, "request.sequence must start at 1") }
            try Validate.time(command.leaderTimeMs, "leader_time_ms")
        } catch {
            advance(to: index)
            return .rejected(error)
        }
        if let session = sessions[request.clientID], request.sequence <= session.lastSequence {
            advance(to: index)
            if request.sequence == session.lastSequence, let previous = Outcome(wire: session.lastOutcome) {
                return .duplicate(previous: previous)
            }
            return .rejected(Rejection(.staleSequence, "client \(Validate.quoted(request.clientID)) sequence \(request.sequence) < last applied \(session.lastSequence)"))
        }
        let outcome: Outcome
        if let body = command.body, body.introducedInProtocolVersion > applierProtocolMax {
            // A release before this command applied it as an unknown field: it halts.
            throw .unsupportedCommand(index: index, fieldNumbers: [body.fieldNumber])
        } else if case .setMinVersion(let c)? = command.body, c.protocolVersion > applierProtocolMax, setMinVersionRefusal(c) == nil {
            // A raise every replica applies and this one cannot run in: it stops here. (One the
            // state refuses is refused here as everywhere.)
            throw .tooOld(index: index, clusterVersion: c.protocolVersion, supported: applierProtocolMax)
        } else if let body = command.body {
            lastLeaderTimeMs = max(lastLeaderTimeMs, command.leaderTimeMs)
            do throws(Rejection) {
                try applyBody(body, now: lastLeaderTimeMs, index: index)
                outcome = .applied
                if body.changesRouting { routingChange.index = index }
            } catch {
                outcome = .rejected(error)
            }
        } else {
            let unknown = UnknownFields.fieldNumbers(command.unknownFields)
            if unknown.isEmpty {
                outcome = .rejected(Rejection(.malformedCommand, "command has no body"))
            } else if command.skippableIfUnknown {
                outcome = .skipped(reason: "unknown command field \(unknown) flagged skippable")
            } else {
                throw .unsupportedCommand(index: index, fieldNumbers: unknown)
            }
        }
        advance(to: index)
        recordSession(request, outcome: outcome, index: index)
        return ApplyResult(outcome)
    }

    /// The rejection applying `body` to this state next would meet, nil if it would apply,
    /// leaving the state untouched: an API checks a write with the very rules of the apply
    /// before proposing it, so a write the applied state already refuses appends nothing. The
    /// apply of the committed entry stays the judge (the state may move in between). Costs a
    /// copy of each collection the command would touch.
    public func preview(_ body: Command.OneOf_Body, leaderTimeMs: Int64) -> Rejection? {
        var copy = self
        do throws(Rejection) {
            try copy.applyBody(body, now: max(lastLeaderTimeMs, leaderTimeMs), index: appliedIndex + 1)
            return nil
        } catch {
            return error
        }
    }

    /// The flat switch: one line per command, each to its own `applyX`.
    private mutating func applyBody(_ body: Command.OneOf_Body, now: Int64, index: UInt64) throws(Rejection) {
        try checkGate(body)
        switch body {
        case .addInstance(let c): try applyAddInstance(c, now: now)
        case .setInstanceState(let c): try applySetInstanceState(c, now: now)
        case .setInstanceRole(let c): try applySetInstanceRole(c)
        case .reportInstanceVersion(let c): try applyReportInstanceVersion(c)
        case .createTenant(let c): try applyCreateTenant(c, now: now)
        case .updateTenant(let c): try applyUpdateTenant(c)
        case .setTenantState(let c): try applySetTenantState(c)
        case .deleteTenant(let c): try applyDeleteTenant(c, now: now)
        case .placeTenant(let c): try applyPlaceTenant(c, now: now, index: index)
        case .setPlacementPhase(let c): try applySetPlacementPhase(c, now: now, index: index)
        case .moveTenant(let c): try applyMoveTenant(c, now: now, index: index)
        case .createBinding(let c): try applyCreateBinding(c, now: now)
        case .deleteBinding(let c): try applyDeleteBinding(c)
        case .startOperation(let c): try applyStartOperation(c, now: now, index: index)
        case .finishOperation(let c): try applyFinishOperation(c, now: now)
        case .provisionTenant(let c): try applyProvisionTenant(c, now: now, index: index)
        case .deprovisionTenant(let c): try applyDeprovisionTenant(c, now: now, index: index)
        case .changeTenantPlan(let c): try applyChangeTenantPlan(c, now: now, index: index)
        case .recordIntent(let c): try applyRecordIntent(c, now: now)
        case .resolveIntent(let c): try applyResolveIntent(c)
        case .recordEvent(let c): try applyRecordEvent(c, now: now, index: index)
        case .setSettings(let c): try applySetSettings(c)
        case .setMinVersion(let c): try applySetMinVersion(c)
        case .lowerMinVersion(let c): try applyLowerMinVersion(c)
        }
    }

    /// ARCHITECTURE §12: a command type is usable only once every member understands it.
    private func checkGate(_ body: Command.OneOf_Body) throws(Rejection) {
        try Self.checkGate(needed: body.introducedInProtocolVersion, minProtocolVersion: minProtocolVersion)
    }

    static func checkGate(needed: UInt32, minProtocolVersion: UInt32) throws(Rejection) {
        let gate = max(1, minProtocolVersion)
        guard needed <= gate else {
            throw Rejection(.commandGated, "command needs protocol version \(needed); the cluster's min protocol version is \(gate)")
        }
    }

    private mutating func advance(to index: UInt64) {
        precondition(index > appliedIndex, "apply index \(index) not after applied index \(appliedIndex)")
        appliedIndex = index
    }

    /// Raft thesis §6.3: remember the last outcome per client; when the table is full, expire
    /// the session used least recently (smallest index), which every replica picks alike.
    private mutating func recordSession(_ request: PBRequestId, outcome: Outcome, index: UInt64) {
        if let previous = sessions[request.clientID] {
            sessionClientIdsByLastIndex[previous.lastIndex] = nil
        } else if sessions.count >= ClusterLimits.clientSessionsMax,
                  let oldest = sessionClientIdsByLastIndex[sessionLastIndexFloor] {
            // The least recently used client: the one whose last write is the oldest.
            sessions[oldest] = nil
            sessionClientIdsByLastIndex[sessionLastIndexFloor] = nil
        }
        var session = PBSession()
        session.clientID = request.clientID
        session.lastSequence = request.sequence
        session.lastIndex = index
        session.lastOutcome = outcome.wire
        sessions[request.clientID] = session
        sessionClientIdsByLastIndex[index] = request.clientID
        advanceSessionFloor()
    }

    /// Moves `sessionLastIndexFloor` to the smallest `lastIndex` held. Every index it steps over
    /// is one no session holds any more and it never steps back while sessions exist, so the
    /// total work is bounded by the number of applied entries.
    mutating func advanceSessionFloor() {
        if sessions.isEmpty {
            sessionLastIndexFloor = 0
            return
        }
        if sessions.count == 1 {  // the first session after none: the floor was 0
            sessionLastIndexFloor = sessionClientIdsByLastIndex.keys.first!
            return
        }
        while sessionClientIdsByLastIndex[sessionLastIndexFloor] == nil { sessionLastIndexFloor += 1 }
    }
}

extension Command.OneOf_Body {
    /// Whether applying it may change what routers and agents act on (ClusterState.routingChangeIndex).
    var changesRouting: Bool {
        switch self {
        case .addInstance, .setInstanceState, .createTenant, .updateTenant, .setTenantState, .deleteTenant,
             .placeTenant, .setPlacementPhase, .moveTenant, .provisionTenant, .deprovisionTenant, .changeTenantPlan:
            return true
        case .setInstanceRole, .reportInstanceVersion, .createBinding, .deleteBinding, .startOperation, .finishOperation,
             .recordIntent, .resolveIntent, .recordEvent, .setSettings, .setMinVersion, .lowerMinVersion:
            return false
        }
    }

    /// The protocol version that introduced each command. A new command gets the next version
    /// here (docs/cluster-model.md, checklist), so it is refused until the gate reaches it.
    public var introducedInProtocolVersion: UInt32 {
        switch self {
        case .addInstance, .setInstanceState, .setInstanceRole, .reportInstanceVersion,
             .createTenant, .updateTenant, .setTenantState, .deleteTenant,
             .placeTenant, .setPlacementPhase, .createBinding, .deleteBinding,
             .startOperation, .finishOperation, .recordIntent, .resolveIntent,
             .setSettings, .setMinVersion:
            return 1
        // The broker's commands (issue 7) join version 1: no release has shipped version 1 yet,
        // so no member can run without them (docs/adr/0006-broker.md).
        case .provisionTenant, .deprovisionTenant, .changeTenantPlan:
            return 1
        // The move (issue 8) joins version 1 for the same reason.
        case .moveTenant:
            return 1
        // The balancer's events (issue 21) join version 1 too: still no release of version 1.
        case .recordEvent:
            return 1
        // `peer downgrade` (issue 23): the first command of version 2.
        case .lowerMinVersion:
            return 2
        }
    }

    /// Its tag in `Command.body` (what a release that does not know it reports).
    var fieldNumber: UInt64 {
        switch self {
        case .addInstance: 10
        case .setInstanceState: 11
        case .setInstanceRole: 12
        case .reportInstanceVersion: 13
        case .createTenant: 20
        case .updateTenant: 21
        case .setTenantState: 22
        case .deleteTenant: 23
        case .placeTenant: 30
        case .setPlacementPhase: 31
        case .moveTenant: 32
        case .createBinding: 40
        case .deleteBinding: 41
        case .startOperation: 50
        case .finishOperation: 51
        case .provisionTenant: 52
        case .deprovisionTenant: 53
        case .changeTenantPlan: 54
        case .recordIntent: 60
        case .resolveIntent: 61
        case .recordEvent: 62
        case .setSettings: 70
        case .setMinVersion: 71
        case .lowerMinVersion: 72
        }
    }
}

/// Reads the field numbers out of a message's unknown fields (protobuf wire format), so a halt
/// can name the command tag that this version does not know.
enum UnknownFields {
    static func fieldNumbers(_ storage: UnknownStorage) -> [UInt64] {
        let bytes = [UInt8](storage.data)
        var numbers: [UInt64] = []
        var position = 0
        while position < bytes.count {
            guard let key = varint(bytes, &position) else { break }
            let number = key >> 3
            if !numbers.contains(number) { numbers.append(number) }
            switch key & 7 {
            case 0: guard varint(bytes, &position) != nil else { return numbers }
            case 1: position += 8
            case 2:
                guard let length = varint(bytes, &position), length <= UInt64(bytes.count - position) else { return numbers }
                position += Int(length)
            case 5: position += 4
            default: return numbers
            }
        }
        return numbers
    }

    private static func varint(_ bytes: [UInt8], _ position: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.count, shift < 64 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }
}
