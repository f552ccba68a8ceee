import Foundation
import Testing
@testable import PeerStore
import Raft

/// The `RaftStorage` contract: a `PeerStore` answers exactly as `MemoryStorage` does after the
/// same writes, including across close and reopen.
@Suite struct ContractTests {
    @Test func freshStoreLooksLikeAnEmptyMemoryStorage() throws {
        let dir = TempDir(); defer { dir.remove() }
        let store = try openStore(dir.file("peer.sqlite"))
        let mem = MemoryStorage(conf: testConf)
        try expectSame(store, mem, rng: SplitMix64(seed: 1))
        #expect(try store.integrityProblems().isEmpty)
    }

    @Test func appendTruncatesTheConflictingSuffixAtomically() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var store = try openStore(path)
        try store.persist(entries: entries(from: 1, count: 10, term: 1), hardState: HardState(term: 1, vote: 1, commit: 3))
        try store.persist(entries: entries(from: 6, count: 2, term: 2), hardState: HardState(term: 2, vote: 2, commit: 5))
        #expect(try store.lastIndex() == 7)
        #expect(try store.term(5) == 1)
        #expect(try store.term(6) == 2)
        try store.close()
        store = try openStore(path)
        #expect(try store.lastIndex() == 7)
        #expect(try allEntries(store) == entries(from: 1, count: 5, term: 1) + entries(from: 6, count: 2, term: 2))
        #expect(try store.initialState().0 == HardState(term: 2, vote: 2, commit: 5))
    }

    @Test func compactionKeepsTheSuffixAndAnswersCompactedBelowIt() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var store = try openStore(path)
        try store.persist(entries: entries(from: 1, count: 20, term: 3))
        try store.compact(upTo: 12, conf: ConfState(voters: [1, 2], learners: [4]), data: [7, 7, 7])
        try store.close()
        store = try openStore(path)
        #expect(try store.firstIndex() == 13)
        #expect(try store.term(12) == 3)
        #expect(throws: StorageError.compacted) { try store.term(11) }
        #expect(throws: StorageError.compacted) { try store.entries(12, 14, maxBytes: .max) }
        #expect(try store.snapshotMetadata() == SnapshotMetadata(index: 12, term: 3, conf: ConfState(voters: [1, 2], learners: [4])))
        #expect(try store.snapshotData() == [7, 7, 7])
        #expect(try store.initialState().1 == ConfState(voters: [1, 2], learners: [4]))
    }

    @Test func installedSnapshotReplacesTheWholeLog() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var store = try openStore(path)
        try store.persist(entries: entries(from: 1, count: 5, term: 1))
        let snap = Snapshot(metadata: SnapshotMetadata(index: 100, term: 9, conf: testConf), data: [1, 2])
        try store.persist(snapshotChunks: [SnapshotChunk.cut(from: snap, offset: 0, maxBytes: 100)], installSnapshot: snap.metadata,
                          entries: entries(from: 101, count: 2, term: 9), hardState: HardState(term: 9, vote: 0, commit: 100))
        try store.close()
        store = try openStore(path)
        #expect(try store.firstIndex() == 101)
        #expect(try store.lastIndex() == 102)
        #expect(try store.term(100) == 9)
        #expect(try store.snapshotMetadata() == snap.metadata)
        #expect(try store.snapshotData() == snap.data)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6])
    func randomOperationsMatchMemoryStorage(seed: UInt64) throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        // A tiny cache and snapshot rows on odd seeds: most reads go to SQLite and span rows.
        var options = PeerStore.Options()
        if seed % 2 == 1 { options.cacheEntriesMax = 3; options.cacheBytesMax = 200; options.snapshotRowBytesMax = 7 }
        var store = try openStore(path, options: options)
        let mem = MemoryStorage(conf: testConf)
        var rng = SplitMix64(seed: seed)
        var term: Term = 1
        for step in 0..<400 {
            let first = try mem.firstIndex(), last = try mem.lastIndex()
            switch rng.next() % 10 {
            case 0...4: // append, sometimes overwriting a suffix
                let lo = first + rng.next() % (last + 2 - first)
                if rng.next() % 4 == 0 { term += 1 }
                let batch = entries(from: lo, count: Int(rng.next() % 6) + 1, term: term, size: Int(rng.next() % 40))
                let newLast = batch.last!.index
                let hs = HardState(term: term, vote: rng.next() % 4, commit: rng.next() % (newLast + 1))
                let commit = min(hs.commit, newLast)
                let hsFixed = HardState(term: hs.term, vote: hs.vote, commit: max(commit, first - 1))
                try store.persist(entries: batch, hardState: hsFixed)
                mem.append(batch)
                mem.setHardState(hsFixed)
            case 5: // compaction
                if last >= first {
                    let at = first + rng.next() % (last - first + 1)
                    let conf = ConfState(voters: [1, 2, 3], learners: rng.next() % 2 == 0 ? [] : [9])
                    let data = payload(index: at, term: 0, size: Int(rng.next() % 100))
                    try store.compact(upTo: at, conf: conf, data: data)
                    mem.createSnapshot(at: at, conf: conf, data: data)
                }
            case 6: // snapshot from a leader, staged in chunks over several writes, then installed
                // The core installs only a snapshot beyond its commit index (else it has it).
                let at = max(first - 1, mem.hardState.commit) + 1 + rng.next() % 12
                let size = Int(rng.next() % 300)
                let snap = Snapshot(metadata: SnapshotMetadata(index: at, term: term, conf: testConf), data: payload(index: at, term: term, size: size))
                let chunkBytes = 1 + Int(rng.next() % 100)
                var offset: UInt64 = 0
                var done = false
                while !done {
                    // Up to three chunks per write; the last write also installs.
                    var chunks: [SnapshotChunk] = []
                    for _ in 0...(rng.next() % 3) where !done {
                        let c = SnapshotChunk.cut(from: snap, offset: offset, maxBytes: chunkBytes)
                        chunks.append(c)
                        offset += UInt64(c.data.count)
                        done = c.done
                    }
                    let hs = HardState(term: term, vote: 0, commit: at)
                    try store.persist(snapshotChunks: chunks, installSnapshot: done ? snap.metadata : nil, hardState: done ? hs : nil)
                    for c in chunks { mem.stageSnapshotChunk(c) }
                    if done {
                        mem.installStagedSnapshot(snap.metadata)
                        mem.setHardState(hs)
                    }
                    try expectSame(store, mem, rng: rng)
                }
            case 7: // reopen: what was acknowledged must survive
                try store.close()
                store = try openStore(path, options: options)
            default:
                break
            }
            try expectSame(store, mem, rng: rng)
            _ = rng.next()
        }
        #expect(try store.integrityProblems().isEmpty)
        try store.close()
    }

    /// Compares every observable answer of the two storages.
    func expectSame(_ store: PeerStore, _ mem: MemoryStorage, rng seed: SplitMix64) throws {
        var rng = seed
        #expect(try store.firstIndex() == mem.firstIndex())
        #expect(try store.lastIndex() == mem.lastIndex())
        let (shs, scs) = try store.initialState()
        let (mhs, mcs) = try mem.initialState()
        #expect(shs == mhs)
        #expect(scs == mcs)
        #expect(try store.snapshotMetadata() == mem.snapshotMetadata())
        #expect(try store.snapshotData() == mem.latestSnapshot.data)
        for _ in 0..<3 {
            let offset = rng.next() % (UInt64(mem.latestSnapshot.data.count) + 3)
            let maxBytes = 1 + Int(rng.next() % 64)
            #expect(try store.snapshotChunk(offset: offset, maxBytes: maxBytes) == mem.snapshotChunk(offset: offset, maxBytes: maxBytes),
                    "snapshotChunk(offset: \(offset), maxBytes: \(maxBytes))")
        }
        let first = try mem.firstIndex(), last = try mem.lastIndex()
        let lowest = first >= 2 ? first - 2 : 0
        for i in lowest...(last + 1) {
            #expect(result { try store.term(i) } == result { try mem.term(i) }, "term(\(i))")
        }
        for _ in 0..<5 {
            let lo = lowest + rng.next() % (last + 3 - lowest)
            let hi = lo + rng.next() % 8
            let maxBytes = Int(rng.next() % 200)
            #expect(result { try store.entries(lo, hi, maxBytes: maxBytes) } == result { try mem.entries(lo, hi, maxBytes: maxBytes) },
                    "entries(\(lo), \(hi), maxBytes: \(maxBytes))")
        }
    }
}

func result<T: Equatable>(_ f: () throws -> T) -> Result<T, StorageError> {
    do { return .success(try f()) } catch { return .failure(error as? StorageError ?? .failed("\(error)")) }
}

/// The driver-facing write API beyond the storage contract.
@Suite struct PersistReadyTests {
    @Test func persistOfAReadyStoresEntriesAndHardStateTogether() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var store = try openStore(path)
        var ready = Ready()
        ready.entries = entries(from: 1, count: 3, term: 1)
        ready.hardState = HardState(term: 1, vote: 2, commit: 1)
        ready.mustSync = true
        try store.persist(ready)
        // Only the commit index moved: the core says no fsync is needed.
        var commitOnly = Ready()
        commitOnly.hardState = HardState(term: 1, vote: 2, commit: 3)
        commitOnly.mustSync = false
        try store.persist(commitOnly)
        #expect(try store.initialState().0.commit == 3)
        try store.close()
        store = try openStore(path)
        #expect(try store.initialState().0 == HardState(term: 1, vote: 2, commit: 3))
        #expect(try allEntries(store) == entries(from: 1, count: 3, term: 1))
    }
}

/// The cache holds a bounded, contiguous suffix of durable entries.
@Suite struct EntryCacheTests {
    @Test func cacheEvictsOldestEntriesBeyondItsEntryAndByteLimits() {
        var cache = EntryCache(entriesMax: 4, bytesMax: 1000)
        cache.append(entries(from: 1, count: 10, term: 1, size: 10))
        #expect(cache.count == 4)
        #expect(cache.firstIndex == 7)
        #expect(cache.entry(6) == nil)
        #expect(cache.entry(10)?.index == 10)
        cache.append(entries(from: 11, count: 1, term: 1, size: 2000))
        #expect(cache.count == 0)  // an entry over the byte limit alone is not cached at all
        #expect(cache.bytes == 0)
    }

    @Test func cacheTruncationAndCompactionFollowTheLog() {
        var cache = EntryCache(entriesMax: 100, bytesMax: 1 << 20)
        cache.append(entries(from: 1, count: 10, term: 1))
        cache.append(entries(from: 6, count: 2, term: 2))
        #expect(cache.entry(5)?.term == 1)
        #expect(cache.entry(6)?.term == 2)
        #expect(cache.entry(8) == nil)
        cache.dropPrefix(through: 6)
        #expect(cache.firstIndex == 7)
        // Not contiguous (a snapshot jumped ahead): the cache restarts there.
        cache.append(entries(from: 50, count: 1, term: 3))
        #expect(cache.firstIndex == 50 && cache.count == 1)
    }
}
