@testable import ClusterModel
import Testing

/// Client sessions (Raft thesis §6.3) and the command envelope.
struct SessionTests {
    @Test func retriedCommandAppliesOnce() {
        var replica = Replica()
        let command = Command(clientId: "broker", sequence: 1, leaderTimeMs: 1_000, Make.createTenant("t1"))
        #expect(replica.apply(command) == .applied)
        let digest = replica.state.contentWithoutBookkeeping
        #expect(replica.apply(command) == .duplicate(previous: .applied))
        #expect(replica.state.contentWithoutBookkeeping == digest)
        #expect(replica.state.tenantCount == 1)
    }

    @Test func retriedRejectedCommandAnswersWithTheFirstRejection() {
        var replica = Replica()
        let command = Command(clientId: "broker", sequence: 1, leaderTimeMs: 1_000, Make.deleteTenant("nobody"))
        guard case .rejected(let first) = replica.apply(command) else { Issue.record("not rejected"); return }
        // Even if the tenant now exists, the retry answers what the first attempt did.
        replica.run(Make.createTenant("nobody"))
        #expect(replica.apply(command) == .duplicate(previous: .rejected(first)))
    }

    @Test func olderSequenceIsRejectedAsStale() {
        var replica = Replica()
        replica.apply(Command(clientId: "c", sequence: 5, leaderTimeMs: 1_000, Make.createTenant("t5")))
        let result = replica.apply(Command(clientId: "c", sequence: 4, leaderTimeMs: 1_001, Make.createTenant("t4")))
        guard case .rejected(let rejection) = result else { Issue.record("\(result)"); return }
        #expect(rejection.code == .staleSequence)
        #expect(replica.state.tenant("t4") == nil)
    }

    @Test func sessionsSurviveSnapshotSoRetriesAfterRestoreStillApplyOnce() throws {
        var replica = Replica()
        let command = Command(clientId: "broker", sequence: 1, leaderTimeMs: 1_000, Make.createTenant("t1"))
        replica.apply(command)
        replica.state = try ClusterState(snapshot: replica.state.encodeSnapshot())
        #expect(replica.apply(command) == .duplicate(previous: .applied))
    }

    @Test func fullSessionTableExpiresTheLeastRecentlyUsedClient() {
        var state = ClusterState()
        var index: UInt64 = 0
        for client in 0...ClusterLimits.clientSessionsMax {
            index += 1
            let command = Command(clientId: "client-\(client)", sequence: 1, leaderTimeMs: 1_000, Make.settings())
            _ = try? state.apply(command, at: index)
        }
        #expect(state.sessions.count == ClusterLimits.clientSessionsMax)
        #expect(state.lastSequence(ofClient: "client-0") == nil)
        #expect(state.lastSequence(ofClient: "client-1") == 1)
    }

    /// The eviction index against a reference: a plain table that scans for the least recently
    /// used client. Random clients (new ones and returning ones), a snapshot round trip now and
    /// then; after every step both agree on who is kept, and a restored state equals the live one.
    @Test(arguments: [7, 2026] as [UInt64])
    func sessionEvictionMatchesAScanningReference(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        var state = ClusterState()
        var reference: [String: UInt64] = [:]  // client → last index
        var sequences: [String: UInt64] = [:]
        let clients = ClusterLimits.clientSessionsMax + ClusterLimits.clientSessionsMax / 2
        for index in UInt64(1)...UInt64(3 * ClusterLimits.clientSessionsMax) {
            let client = "client-\(Int.random(in: 0..<clients, using: &rng))"
            let sequence = (reference[client] == nil ? 0 : sequences[client]!) + 1
            sequences[client] = sequence
            _ = try state.apply(Command(clientId: client, sequence: sequence, leaderTimeMs: 1_000, Make.settings()), at: index)
            if reference[client] == nil, reference.count >= ClusterLimits.clientSessionsMax {
                let oldest = reference.min { $0.value < $1.value }!.key
                reference[oldest] = nil
            }
            reference[client] = index
            if index % 1_500 == 0 {
                let restored = try ClusterState(snapshot: state.encodeSnapshot())
                #expect(restored == state, "a restored state differs from the live one at index \(index)")
                state = restored
            }
        }
        #expect(state.sessions.count == reference.count)
        for (client, last) in reference {
            #expect(state.sessions[client]?.lastIndex == last, "client \(client)")
        }
        #expect(state.sessionLastIndexFloor == reference.values.min())
    }

    @Test func commandWithoutRequestIdOrTimeIsRejectedAsMalformed() {
        var replica = Replica()
        var noRequest = Command()
        noRequest.leaderTimeMs = 1_000
        noRequest.body = Make.createTenant("t1")
        #expect(rejectionCode(replica.apply(noRequest)) == .malformedCommand)
        #expect(rejectionCode(replica.apply(Command(clientId: "c", sequence: 0, leaderTimeMs: 1_000, Make.createTenant("t1")))) == .malformedCommand)
        #expect(rejectionCode(replica.apply(Command(clientId: "", sequence: 1, leaderTimeMs: 1_000, Make.createTenant("t1")))) == .invalidField)
        #expect(rejectionCode(replica.apply(Command(clientId: "c", sequence: 1, leaderTimeMs: 0, Make.createTenant("t1")))) == .invalidField)
        var noBody = Command(clientId: "c", sequence: 2, leaderTimeMs: 1_000, Make.createTenant("t1"))
        noBody.body = nil
        #expect(rejectionCode(replica.apply(noBody)) == .malformedCommand)
        #expect(replica.state.tenantCount == 0)
        #expect(replica.state.appliedIndex == 5)
    }

    @Test func garbageEntryBytesAreRejectedAndTheIndexAdvances() throws {
        var state = ClusterState()
        for (offset, bytes) in [[0xFF], [0x0A, 0x7F], [0x08, 0x80, 0x80], Array(repeating: 0xFF, count: 64)].enumerated() {
            let result = try state.apply(bytes.map(UInt8.init), at: UInt64(offset + 1))
            #expect(rejectionCode(result) == .malformedCommand)
        }
        #expect(state.appliedIndex == 4)
        #expect(state.contentWithoutBookkeeping == ClusterState().contentWithoutBookkeeping)
    }

    @Test func leaderTimeNeverGoesBackwardsInTheState() {
        var replica = Replica()
        replica.apply(Command(clientId: "a", sequence: 1, leaderTimeMs: 5_000, Make.createTenant("t1")))
        // A new leader whose clock is behind: the state keeps the larger time.
        replica.apply(Command(clientId: "b", sequence: 1, leaderTimeMs: 4_000, Make.createTenant("t2")))
        #expect(replica.state.lastLeaderTimeMs == 5_000)
        #expect(replica.state.tenant("t2")?.createdMs == 5_000)
    }
}

func rejectionCode(_ result: ApplyResult) -> RejectionCode? {
    if case .rejected(let rejection) = result { return rejection.code }
    return nil
}

/// Every outcome survives the session's wire form, so a retry after a snapshot answers alike.
struct OutcomeWireTests {
    @Test(arguments: RejectionCode.allCases)
    func everyRejectionCodeRoundTripsThroughTheSession(code: RejectionCode) {
        let outcome = Outcome.rejected(Rejection(code, "why"))
        #expect(Outcome(wire: outcome.wire) == outcome)
    }

    @Test func unknownOutcomeCodeIsNotDecoded() {
        var wire = PBOutcome()
        wire.code = 99
        #expect(Outcome(wire: wire) == nil)
        #expect(Outcome(wire: Outcome.applied.wire) == .applied)
        #expect(Outcome(wire: Outcome.skipped(reason: "r").wire) == .skipped(reason: "r"))
    }
}
