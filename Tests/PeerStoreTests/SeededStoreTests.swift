import Foundation
import PeerStore
import Raft
import Testing

/// A store created from a snapshot (`peer snapshot restore`, `peer recover`): it opens as a log
/// compacted up to the snapshot, with the snapshot's configuration and the given hard state.
struct SeededStoreTests {
    @Test func aSeededStoreOpensAtTheSnapshotWithItsConfigurationAndData() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.file("raft.sqlite")
        let data = (0..<(3 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 31) }  // more than one 1 MiB row
        let meta = SnapshotMetadata(index: 4_321, term: 9, conf: ConfState(voters: [2]))
        try PeerStore.create(path: path, clusterID: testCluster, peerID: 2, seed: PeerStore.Seed(metadata: meta, data: data, hardState: HardState(term: 9, commit: 4_321)))
        let store = try openStore(path, peer: 2)
        #expect(try store.snapshotMetadata() == meta)
        #expect(try store.snapshotData() == data)
        #expect(try store.firstIndex() == 4_322)
        #expect(try store.lastIndex() == 4_321)
        #expect(try store.term(4_321) == 9)
        let (hs, conf) = try store.initialState()
        #expect(hs == HardState(term: 9, commit: 4_321))
        #expect(conf == ConfState(voters: [2]))
        // The log goes on after the snapshot.
        try store.persist(entries: entries(from: 4_322, count: 3, term: 10), hardState: HardState(term: 10, commit: 4_321))
        #expect(try store.lastIndex() == 4_324)
        try store.close()
    }

    @Test func aSeededStoreIsNeverWrittenOverAnExistingOne() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let path = dir.file("raft.sqlite")
        try openStore(path).close()
        let before = dir.contents()
        let seed = PeerStore.Seed(metadata: SnapshotMetadata(index: 5, term: 1, conf: testConf), data: [1, 2, 3], hardState: HardState(term: 1, commit: 5))
        #expect(throws: PeerStoreError.self) { try PeerStore.create(path: path, clusterID: testCluster, peerID: 1, seed: seed) }
        #expect(dir.contents() == before, "a refused seeded create changed the directory")
    }
}
