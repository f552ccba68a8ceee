@testable import ClusterModel
import Testing

/// Bytes from disk or the network never trap apply or snapshot decode (ARCHITECTURE §13.6).
struct BadBytesTests {
    static func mutate(_ bytes: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = bytes
        switch Int.random(in: 0..<4, using: &rng) {
        case 0 where !bytes.isEmpty:
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
        case 1 where !bytes.isEmpty:
            bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
        case 2:
            bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
        default:
            bytes = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        return bytes
    }

    @Test func mutatedEntriesNeverTrapAndReplicasStillAgree() throws {
        var rng = SeededGenerator(seed: 0xC0FFEE)
        let valid = DeterminismAndSnapshotTests.randomEntries(seed: 5, count: 1_500)
        let entries = valid.map { Int.random(in: 0..<3, using: &rng) == 0 ? Self.mutate($0, &rng) : $0 }
        var a = ClusterState()
        var b = ClusterState()
        var index: UInt64 = 0
        for entry in entries {
            index += 1
            // A mutation can turn into an unknown non-skippable tag: both replicas halt alike.
            let resultA = Result { () throws(ApplyHalt) in try a.apply(entry, at: index) }
            let resultB = Result { () throws(ApplyHalt) in try b.apply(entry, at: index) }
            #expect(resultA == resultB)
            if case .failure = resultA {
                // The driver would stop here; the test skips the entry with a no-op at this index.
                _ = try a.apply(Command(clientId: "skip", sequence: index, leaderTimeMs: 1, Make.resolve("none")).entryBytes(), at: index)
                _ = try b.apply(Command(clientId: "skip", sequence: index, leaderTimeMs: 1, Make.resolve("none")).entryBytes(), at: index)
            }
        }
        #expect(a.stateDigest == b.stateDigest)
    }

    @Test func mutatedSnapshotsAreRefusedNeverTrapped() {
        var rng = SeededGenerator(seed: 0xBEEF)
        var replica = Make.clusterWithServedTenant()
        replica.run(Make.bind("b1", tenant: "t1", token: "tok"))
        let good = replica.state.encodeSnapshot()
        for _ in 0..<2_000 {
            let bad = Self.mutate(good, &rng)
            if let state = try? ClusterState(snapshot: bad) {
                #expect(state.encodeSnapshot() == bad, "an accepted snapshot must be canonical")
            }
        }
    }

    @Test func snapshotFromANewerVersionIsRefusedWithItsFieldNumbers() throws {
        var wire = Make.clusterWithServedTenant().state.wireState()
        // Field 200, varint 1: a top-level collection a newer peer added.
        var bytes = try wire.serializedBytes() as [UInt8]
        bytes += [0xC0, 0x0C, 0x01]
        wire = try PBState(serializedBytes: bytes)
        #expect(throws: SnapshotError.newerFormat(fieldNumbers: [200])) {
            try ClusterState(snapshot: DeterminismAndSnapshotTests.framed(bytes))
        }
    }
}
