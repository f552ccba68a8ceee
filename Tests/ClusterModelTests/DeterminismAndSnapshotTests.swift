@testable import ClusterModel
import Crypto
import SwiftProtobuf
import Testing

/// Replicas agree (ARCHITECTURE §5) and snapshots are safe to load.
struct DeterminismAndSnapshotTests {
    /// A random but valid-looking command over a small id space, so many commands collide and
    /// every rejection path is reached too.
    static func randomBody(_ rng: inout SeededGenerator, now: Int64) -> Command.OneOf_Body {
        func pick(_ prefix: String, _ count: Int) -> String { "\(prefix)\(Int.random(in: 0..<count, using: &rng))" }
        switch Int.random(in: 0..<25, using: &rng) {
        case 0: return Make.addInstance(pick("i", 6), port: Int.random(in: 7000..<7008, using: &rng))
        case 1, 2: return Make.instanceState(pick("i", 6), [.active, .draining, .drained, .removed].randomElement(using: &rng)!)
        case 3: return Make.createTenant(pick("t", 12), components: [["dfc"], ["dfx-dev", "dfc"], ["dfx-dep"]].randomElement(using: &rng)!)
        case 4: return Make.tenantState(pick("t", 12), [.ready, .deprovisioning].randomElement(using: &rng)!)
        case 5: return Make.deleteTenant(pick("t", 12))
        case 6: return Make.place(pick("t", 12), on: pick("i", 6))
        case 7: return Make.place(pick("t", 12), on: pick("i", 6), active: true)
        case 8, 9: return Make.phase(pick("t", 12), on: pick("i", 6), [.active, .draining, .gone].randomElement(using: &rng)!)
        case 10: return Make.bind(pick("b", 10), tenant: pick("t", 12), token: pick("token", 20))
        case 11: return Make.unbind(pick("b", 10))
        case 12: return Make.startOperation(pick("op", 10), tenant: pick("t", 12))
        case 13: return Make.finishOperation(pick("op", 10), [.succeeded, .failed].randomElement(using: &rng)!)
        case 16: return BrokerCommandTests.provision(pick("t", 12), op: pick("op", 10))
        case 17: return BrokerCommandTests.deprovision(pick("t", 12), op: pick("op", 10))
        case 18: return BrokerCommandTests.change(pick("t", 12), op: pick("op", 10))
        case 19: return EventTests.record(pick("e", 8), [.rebalance, .alert, .paused, .resumed].randomElement(using: &rng)!, retain: 3)
        case 20: return EventTests.scaleUp(pick("e", 8), newInstance: pick("i", 8), intent: pick("n", 4), deadlineMs: now + 1_000, retain: 3)
        // The cluster version and version 2's state reason (issue 23): raised and lowered at
        // random (most raises are refused while an instance reports version 1), reasons set.
        case 21: return ClusterVersionTests.reportVersion(pick("i", 6), [1, 2].randomElement(using: &rng)!)
        case 22: return Make.minVersion([1, 2].randomElement(using: &rng)!)
        case 23: return ClusterVersionTests.lower(1)
        case 24: return ClusterVersionTests.drain(pick("i", 6), [.draining, .active].randomElement(using: &rng)!, reason: pick("why", 3))
        case 14: return Make.intent(pick("n", 4), [.provision, .decommission].randomElement(using: &rng)!, instance: pick("i", 8), deadlineMs: now + 1_000)
        default: return Make.resolve(pick("n", 4))
        }
    }

    /// Seeded random commands as entry bytes, with some retries mixed in.
    static func randomEntries(seed: UInt64, count: Int) -> [[UInt8]] {
        var rng = SeededGenerator(seed: seed)
        var entries: [[UInt8]] = []
        var sequences: [String: UInt64] = [:]
        var time: Int64 = 1_700_000_000_000
        for _ in 0..<count {
            time += Int64.random(in: -5...50, using: &rng)  // leader clocks may step back
            if let last = entries.last, Int.random(in: 0..<10, using: &rng) == 0 {
                entries.append(last)  // a client retry that got committed twice
                continue
            }
            let client = ["broker", "controller", "admin"].randomElement(using: &rng)!
            sequences[client, default: 0] += 1
            let command = Command(clientId: client, sequence: sequences[client]!, leaderTimeMs: time, randomBody(&rng, now: time))
            entries.append(command.entryBytes())
        }
        return entries
    }

    static func replay(_ entries: [[UInt8]], onto state: inout ClusterState, from first: UInt64 = 1) throws -> [ApplyResult] {
        var results: [ApplyResult] = []
        for (offset, entry) in entries.enumerated() {
            results.append(try state.apply(entry, at: first + UInt64(offset)))
        }
        return results
    }

    @Test(arguments: [1, 2, 3, 42, 2026] as [UInt64])
    func applyIsDeterministicAcrossReplicas(seed: UInt64) throws {
        let entries = Self.randomEntries(seed: seed, count: 3_000)
        var a = ClusterState()
        var b = ClusterState()
        let resultsA = try Self.replay(entries, onto: &a)
        let resultsB = try Self.replay(entries, onto: &b)
        #expect(resultsA == resultsB, "seed \(seed)")
        #expect(a.stateDigest == b.stateDigest, "seed \(seed)")
        #expect(a.canonicalBytes() == b.canonicalBytes(), "seed \(seed)")
        // The run must exercise both paths, or it proves little.
        #expect(resultsA.contains(.applied) && resultsA.contains { rejectionCode($0) != nil }, "seed \(seed)")
        #expect(resultsA.contains { if case .duplicate = $0 { return true } else { return false } }, "seed \(seed)")
        #expect(a.tenantCount > 0 || a.allInstances.count > 0, "seed \(seed)")
    }

    @Test func invariantsHoldAfterEveryRandomEntry() throws {
        var state = ClusterState()
        for (offset, entry) in Self.randomEntries(seed: 7, count: 2_000).enumerated() {
            _ = try state.apply(entry, at: UInt64(offset + 1))
            for tenant in state.allTenants {
                let phases = state.placements(ofTenant: tenant.id).map(\.phase)
                #expect(phases.count { $0 == .active } <= 1)
                #expect(phases.count { $0 == .preparing } <= 1)
            }
            #expect(state.placements.keys.allSatisfy { state.tenant($0) != nil })
            if offset % 250 == 0 {
                // Derived indexes kept by apply equal the ones rebuilt from a snapshot.
                #expect(try ClusterState(snapshot: state.encodeSnapshot()) == state, "entry \(offset + 1)")
            }
        }
    }

    @Test func snapshotRoundTripPreservesDigest() throws {
        let entries = Self.randomEntries(seed: 99, count: 2_000)
        var original = ClusterState()
        _ = try Self.replay(Array(entries[..<1_000]), onto: &original)
        var restored = try ClusterState(snapshot: original.encodeSnapshot())
        #expect(restored == original)
        #expect(restored.stateDigest == original.stateDigest)
        #expect(restored.appliedIndex == 1_000)
        // A follower restored from the snapshot keeps agreeing with one that never restarted.
        let rest = Array(entries[1_000...])
        #expect(try Self.replay(rest, onto: &original, from: 1_001) == Self.replay(rest, onto: &restored, from: 1_001))
        #expect(restored.stateDigest == original.stateDigest)
    }

    @Test func emptyStateHasAStableDigest() {
        #expect(ClusterState().stateDigestHex == ClusterState().stateDigestHex)
        #expect(try! ClusterState(snapshot: ClusterState().encodeSnapshot()) == ClusterState())
    }

    @Test func malformedSnapshotBytesAreRefusedWithSpecificErrors() throws {
        let good = Make.clusterWithServedTenant().state.encodeSnapshot()
        #expect(throws: SnapshotError.truncated(byteCount: 10)) { try ClusterState(snapshot: Array(good[..<10])) }
        #expect(throws: SnapshotError.badMagic) { try ClusterState(snapshot: [0x58] + Array(good.dropFirst())) }
        var flipped = good
        flipped[flipped.count - 1] ^= 0x01
        #expect(throws: SnapshotError.digestMismatch) { try ClusterState(snapshot: flipped) }
        #expect(throws: SnapshotError.digestMismatch) { try ClusterState(snapshot: good + [0]) }
        let garbage: [UInt8] = [0x0A, 0xFF, 0xFF, 0xFF, 0x0F]
        do throws(SnapshotError) {
            _ = try ClusterState(snapshot: Self.framed(garbage))
            Issue.record("garbage decoded")
        } catch {
            guard case .undecodable = error else { Issue.record("\(error)"); return }
        }
    }

    @Test func snapshotBreakingAModelRuleIsRefusedWithTheObjectNamed() throws {
        let wire = Make.clusterWithServedTenant().state.wireState()
        var twoActive = wire
        var second = twoActive.placements[0]
        second.instanceID = "i2"
        twoActive.placements.append(second)
        try expectInvalid(twoActive, mentioning: "two")
        var unsorted = wire
        unsorted.instances.reverse()
        try expectInvalid(unsorted, mentioning: "canonical")
        var dangling = wire
        dangling.placements[0].instanceID = "ghost"
        try expectInvalid(dangling, mentioning: "unknown instance")
        var badId = wire
        badId.tenants[0].id = "BAD ID"
        try expectInvalid(badId, mentioning: "tenant id")
        var duplicate = wire
        duplicate.instances.append(duplicate.instances[0])
        try expectInvalid(duplicate, mentioning: "twice")
        var badSettings = wire
        badSettings.settings.votersTarget = 2
        try expectInvalid(badSettings, mentioning: "voters_target")
        var futureSession = wire
        futureSession.sessions[0].lastIndex = wire.appliedIndex + 1
        try expectInvalid(futureSession, mentioning: "applied index")
    }

    private func expectInvalid(_ wire: PBState, mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let bytes = Self.framed(try wire.serializedBytes())
        do throws(SnapshotError) {
            _ = try ClusterState(snapshot: bytes)
            Issue.record("accepted an invalid state", sourceLocation: sourceLocation)
        } catch {
            guard case .invalidState(let reason) = error else { Issue.record("\(error)", sourceLocation: sourceLocation); return }
            #expect(reason.contains(text), "\(reason)", sourceLocation: sourceLocation)
        }
    }

    static func framed(_ body: [UInt8]) -> [UInt8] {
        ClusterState.snapshotMagic + Array(SHA256.hash(data: body)) + body
    }
}
