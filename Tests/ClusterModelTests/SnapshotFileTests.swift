import Crypto
import Testing
@testable import ClusterModel

/// `peer snapshot save` files: every byte checked, never a trap on bad bytes.
struct SnapshotFileTests {
    func sample() -> (SnapshotFile, ClusterState) {
        var r = Replica()
        r.run(Make.addInstance("1", port: 7101))
        for i in 0..<5 { r.run(Make.createTenant("t\(i)")) }
        let file = SnapshotFile(
            clusterID: "prod-eu", index: r.index, term: 7, savedAtMs: 1_790_000_000_000, savedBy: 1, version: "0.1.0-dev",
            voters: [1, 2, 3], learners: [4], state: r.state.encodeSnapshot())
        return (file, r.state)
    }

    @Test func aFileDecodesToTheSameHeaderAndState() throws {
        let (file, state) = sample()
        let back = try SnapshotFile(decoding: file.encoded())
        #expect(back == file)
        #expect(try back.decodedState().stateDigestHex == state.stateDigestHex)
        #expect(try back.decodedState().tenantCount == 5)
    }

    @Test func everyCutIsRefusedWithoutATrap() {
        let bytes = sample().0.encoded()
        for n in [0, 3, 8, 11, 12, 40, bytes.count / 2, bytes.count - 33, bytes.count - 1] {
            #expect(throws: SnapshotFile.Problem.self, "a file cut at \(n) of \(bytes.count) bytes was accepted") {
                try SnapshotFile(decoding: Array(bytes.prefix(n)))
            }
        }
    }

    @Test func everyFlippedByteIsCaught() {
        let bytes = sample().0.encoded()
        for i in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)) {
            var bad = bytes
            bad[i] ^= 0x01
            #expect(throws: SnapshotFile.Problem.self, "byte \(i) flipped was accepted") { _ = try SnapshotFile(decoding: bad).decodedState() }
        }
    }

    @Test func foreignBytesAndFutureFormatsAreNamed() {
        #expect(throws: SnapshotFile.Problem.notASnapshotFile) { try SnapshotFile(decoding: Array("PCS1 but not a peer snapshot file at all, really not".utf8)) }
        var future = sample().0.encoded()
        future[SnapshotFile.magic.count + 3] = 9
        #expect(throws: SnapshotFile.Problem.unsupportedFormat(9)) { try SnapshotFile(decoding: future) }
    }

    /// A file whose digest is right but whose state is not a valid state (made by hand): the
    /// state's own checks refuse it.
    @Test func aWellFramedFileWithABadStateIsRefused() {
        var (file, _) = sample()
        file.state = Array(file.state.dropLast(3))
        let bytes = file.encoded()
        #expect(throws: SnapshotFile.Problem.self) { _ = try SnapshotFile(decoding: bytes).decodedState() }
        file = sample().0
        file.index = 1
        #expect(throws: SnapshotFile.Problem.self, "a state newer than the header's index was accepted") { _ = try SnapshotFile(decoding: file.encoded()).decodedState() }
    }
}
