import Foundation
import GRDB
import Testing
@testable import PeerStore
import Raft

/// Snapshots in bounded rows: staged chunks stay invisible until the install, the install
/// replaces snapshot and log in one transaction, an old (schema v1) store keeps its snapshot,
/// and damaged snapshot rows are reported, never served.
@Suite struct SnapshotStoreTests {
    let conf = testConf

    func snapshot(index: LogIndex, term: Term, size: Int) -> Snapshot {
        Snapshot(metadata: SnapshotMetadata(index: index, term: term, conf: conf), data: payload(index: index, term: term, size: size))
    }

    func chunks(of snap: Snapshot, bytes: Int) -> [SnapshotChunk] {
        var out: [SnapshotChunk] = []
        var offset: UInt64 = 0
        repeat {
            let c = SnapshotChunk.cut(from: snap, offset: offset, maxBytes: bytes)
            out.append(c)
            offset += UInt64(c.data.count)
        } while !out.last!.done
        return out
    }

    @Test func stagedChunksAreInvisibleUntilTheInstallReplacesSnapshotAndLog() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var options = PeerStore.Options()
        options.snapshotRowBytesMax = 100
        var store = try openStore(path, options: options)
        try store.persist(entries: entries(from: 1, count: 10, term: 1), hardState: HardState(term: 1, vote: 1, commit: 4))
        try store.compact(upTo: 3, conf: conf, data: [9, 9])
        let snap = snapshot(index: 50, term: 2, size: 1000)
        let parts = chunks(of: snap, bytes: 256)
        #expect(parts.count == 4)
        try store.persist(snapshotChunks: Array(parts[0..<2]))
        try store.persist(snapshotChunks: [parts[2]], hardState: HardState(term: 2, vote: 1, commit: 4))
        // Nothing of the staged snapshot is visible yet, not even after a reopen.
        #expect(try store.snapshotMetadata().index == 3 && store.snapshotData() == [9, 9])
        #expect(try store.lastIndex() == 10 && store.term(10) == 1)
        try store.persist(snapshotChunks: [parts[3]], installSnapshot: snap.metadata,
                          entries: entries(from: 51, count: 2, term: 2), hardState: HardState(term: 2, vote: 1, commit: 50))
        #expect(try store.snapshotMetadata() == snap.metadata)
        #expect(try store.firstIndex() == 51 && store.lastIndex() == 52)
        #expect(throws: StorageError.compacted) { try store.term(10) }
        try store.close()
        store = try openStore(path, options: options)
        #expect(try store.snapshotMetadata() == snap.metadata)
        #expect(try store.snapshotData() == snap.data)
        #expect(store.snapshotBytes == 1000)
        #expect(try store.snapshotChunk(offset: 190, maxBytes: 120).data == Array(snap.data[190..<310]), "a chunk spanning rows")
        #expect(try store.integrityProblems().isEmpty)
        try store.close()
    }

    /// A snapshot this peer takes itself, written in pieces (`stageCompaction`) so the node
    /// loop never writes the whole state at once: invisible until `finishCompaction`, which
    /// makes it current and drops the log it covers; a restart while staging keeps the old one.
    @Test func localSnapshotWrittenInPiecesBecomesCurrentOnlyWhenFinished() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var options = PeerStore.Options()
        options.snapshotRowBytesMax = 100
        var store = try openStore(path, options: options)
        try store.persist(entries: entries(from: 1, count: 20, term: 1), hardState: HardState(term: 1, vote: 1, commit: 20))
        try store.compact(upTo: 3, conf: conf, data: [9, 9])
        let first = snapshot(index: 8, term: 1, size: 1000)
        let parts = chunks(of: first, bytes: 300)
        #expect(parts.count == 4)
        for p in parts[0..<2] { try store.stageCompaction(p) }
        // A restart in the middle: the old snapshot and the whole log are there.
        try store.close()
        store = try openStore(path, options: options)
        #expect(try store.snapshotMetadata().index == 3 && store.snapshotData() == [9, 9])
        #expect(try store.firstIndex() == 4 && store.lastIndex() == 20)
        // Staging starts over at offset 0; each piece is visible to nobody until the finish.
        for p in parts[0..<3] { try store.stageCompaction(p) }
        #expect(try store.snapshotMetadata().index == 3 && store.firstIndex() == 4)
        try store.stageCompaction(parts[3])
        #expect(try store.finishCompaction(first.metadata))
        #expect(try store.snapshotMetadata() == first.metadata && store.snapshotData() == first.data)
        #expect(try store.firstIndex() == 9 && store.lastIndex() == 20 && store.term(20) == 1)
        #expect(throws: StorageError.compacted) { try store.term(7) }
        try store.close()
        store = try openStore(path, options: options)
        #expect(try store.snapshotMetadata() == first.metadata && store.snapshotData() == first.data)
        #expect(try store.firstIndex() == 9 && store.lastIndex() == 20)
        #expect(try store.integrityProblems().isEmpty)
        // A newer snapshot arrives (here: compacted directly) while one is staged: the finish
        // changes nothing and says so.
        let stale = snapshot(index: 12, term: 1, size: 200)
        for p in chunks(of: stale, bytes: 300) { try store.stageCompaction(p) }
        try store.compact(upTo: 15, conf: conf, data: [1, 2, 3])
        #expect(try store.finishCompaction(stale.metadata) == false)
        #expect(try store.snapshotMetadata().index == 15 && store.snapshotData() == [1, 2, 3])
        #expect(try store.firstIndex() == 16)
        try store.close()
    }

    /// The log a compaction covers is not deleted in its finishing transaction (over 100 ms
    /// for tens of thousands of entries) but `staleEntriesPerStep` rows per `reclaimSpace`
    /// call, oldest first, across restarts and further compactions; nothing reads those rows.
    @Test func aCompactedLogIsDeletedInPiecesAcrossRestarts() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var options = PeerStore.Options()
        options.staleEntriesPerStep = 3
        var store = try openStore(path, options: options)
        func rows(_ s: PeerStore, through index: Int) throws -> Int {
            try s.dbQueue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM entry WHERE idx <= ?", arguments: [index])! }
        }
        try store.persist(entries: entries(from: 1, count: 30, term: 1), hardState: HardState(term: 1, vote: 1, commit: 30))
        let first = snapshot(index: 10, term: 1, size: 100)
        for p in chunks(of: first, bytes: 300) { try store.stageCompaction(p) }
        #expect(try store.finishCompaction(first.metadata))
        #expect(try store.firstIndex() == 11 && store.lastIndex() == 30)
        #expect(throws: StorageError.compacted) { try store.term(7) }
        #expect(throws: StorageError.compacted) { try store.entries(5, 12, maxBytes: 1 << 20) }
        #expect(try rows(store, through: 10) == 10, "the compacted log waits to be deleted")
        #expect(try store.reclaimSpace())
        #expect(try rows(store, through: 10) == 7, "entries 1-3 went first")
        // A restart finds the rest, below the snapshot: not part of the log, still to delete.
        try store.close()
        store = try openStore(path, options: options)
        #expect(try store.firstIndex() == 11 && store.lastIndex() == 30 && store.term(11) == 1)
        #expect(try store.entries(11, 31, maxBytes: 1 << 20).map(\.index) == Array(11...30))
        // Another compaction before they are gone: deleting continues from the oldest.
        let second = snapshot(index: 20, term: 1, size: 100)
        for p in chunks(of: second, bytes: 300) { try store.stageCompaction(p) }
        #expect(try store.finishCompaction(second.metadata))
        #expect(try rows(store, through: 20) == 17)
        var calls = 0
        while try store.reclaimSpace() { calls += 1; #expect(calls < 100) }
        #expect(try rows(store, through: 20) == 0)
        #expect(calls >= 6, "17 rows, 3 per call, and the two replaced snapshots' rows")
        #expect(try store.entries(21, 31, maxBytes: 1 << 20).map(\.index) == Array(21...30))
        #expect(try store.integrityProblems().isEmpty)
        try store.close()
        store = try openStore(path, options: options)
        #expect(try store.firstIndex() == 21 && store.lastIndex() == 30)
        try store.close()
    }

    /// The replaced snapshot's rows are not freed in the replacing transaction (that held the
    /// writer 160 ms for 20 MB) but a row per `reclaimSpace` call, across restarts.
    @Test func aReplacedSnapshotIsFreedARowAtATimeAcrossRestarts() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var options = PeerStore.Options()
        options.snapshotRowBytesMax = 100
        var store = try openStore(path, options: options)
        try store.persist(entries: entries(from: 1, count: 20, term: 1), hardState: HardState(term: 1, vote: 1, commit: 20))
        #expect(try store.reclaimSpace() == false, "nothing to free in a new store")
        let first = snapshot(index: 5, term: 1, size: 1000)
        for p in chunks(of: first, bytes: 300) { try store.stageCompaction(p) }
        #expect(try store.finishCompaction(first.metadata))
        _ = try? store.reclaimSpace()  // the empty initial snapshot
        while try store.reclaimSpace() {}
        let second = snapshot(index: 10, term: 1, size: 1000)
        for p in chunks(of: second, bytes: 300) { try store.stageCompaction(p) }
        #expect(try store.finishCompaction(second.metadata))
        #expect(try store.reclaimSpace(), "first the compacted log (entries 6-10), in one step of up to 2,048")
        func trashRows(_ s: PeerStore) throws -> Int? {
            try s.dbQueue.read { db in
                try db.tableExists("snapshot_trash") ? Int.fetchOne(db, sql: "SELECT count(*) FROM snapshot_trash") : nil
            }
        }
        #expect(try trashRows(store) == 10, "the first snapshot's ten rows wait to be freed")
        #expect(try store.reclaimSpace() && store.reclaimSpace())
        #expect(try trashRows(store) == 8)
        try store.close()
        store = try openStore(path, options: options)
        #expect(try store.snapshotMetadata() == second.metadata && store.snapshotData() == second.data)
        var calls = 0
        while try store.reclaimSpace() { calls += 1; #expect(calls < 100) }
        #expect(calls == 7, "eight rows: seven calls leave more, the eighth empties and drops the table")
        #expect(try trashRows(store) == nil)
        #expect(try store.snapshotData() == second.data)
        #expect(try store.integrityProblems().isEmpty)
        try store.close()
    }

    @Test func restartDuringStagingKeepsTheOldSnapshotAndANewStagingStartsAtZero() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var store = try openStore(path)
        try store.persist(entries: entries(from: 1, count: 5, term: 1), hardState: HardState(term: 1, vote: 1, commit: 5))
        let first = snapshot(index: 20, term: 1, size: 300)
        try store.persist(snapshotChunks: Array(chunks(of: first, bytes: 100).prefix(2)))
        try store.close()  // the peer stops mid-transfer; its core forgets the staging
        store = try openStore(path)
        #expect(try store.snapshotMetadata().index == 0 && store.lastIndex() == 5)
        // The leader starts over (here with a newer snapshot): offset 0 drops the leftover rows.
        let second = snapshot(index: 30, term: 2, size: 150)
        try store.persist(snapshotChunks: chunks(of: second, bytes: 100), installSnapshot: second.metadata,
                          hardState: HardState(term: 2, vote: 0, commit: 30))
        #expect(try store.snapshotData() == second.data, "no byte of the abandoned staging is in the installed snapshot")
        let stagingRows = try store.dbQueue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM snapshot_staging") }
        #expect(stagingRows == 0)
        try store.close()
    }

    @Test func emptySnapshotIsStagedAndInstalled() throws {
        let dir = TempDir(); defer { dir.remove() }
        let store = try openStore(dir.file("peer.sqlite"))
        let empty = Snapshot(metadata: SnapshotMetadata(index: 7, term: 1, conf: conf), data: [])
        try store.persist(snapshotChunks: chunks(of: empty, bytes: 10), installSnapshot: empty.metadata, hardState: HardState(term: 1, vote: 0, commit: 7))
        #expect(try store.snapshotChunk(offset: 0, maxBytes: 10) == SnapshotChunk(metadata: empty.metadata, offset: 0, totalBytes: 0, data: [], done: true))
        try store.close()
    }

    @Test func version1StoreIsMigratedAndKeepsItsSnapshot() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        // What issue 4's binary left: schema v1, the snapshot in one blob, a log after it.
        let blob = payload(index: 40, term: 3, size: 2_500_000)
        let q = try DatabaseQueue(path: path)
        try q.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        try Schema.migrator.migrate(q, upTo: "v1-log-hardstate-snapshot-meta")
        try q.write { db in
            try db.execute(sql: "INSERT INTO peer_meta (id, cluster_id, peer_id, schema_version) VALUES (1, ?, 1, 1)", arguments: [testCluster])
            try db.execute(sql: "INSERT INTO hard_state (id, term, vote, commit_index) VALUES (1, 3, 2, 42)")
            try db.execute(sql: "INSERT INTO snapshot (id, snap_index, snap_term, voters, learners, data) VALUES (1, 40, 3, '1,2,3', '', ?)", arguments: [Data(blob)])
            for e in entries(from: 41, count: 3, term: 3) {
                try db.execute(sql: "INSERT INTO entry (idx, term, kind, data) VALUES (?, ?, 0, ?)", arguments: [Int64(e.index), Int64(e.term), Data(e.data)])
            }
        }
        try q.close()
        let store = try openStore(path)
        #expect(try store.snapshotMetadata() == SnapshotMetadata(index: 40, term: 3, conf: conf))
        #expect(store.snapshotBytes == UInt64(blob.count))
        #expect(try store.snapshotData() == blob)
        #expect(try store.snapshotChunk(offset: 1_048_000, maxBytes: 1000).data == Array(blob[1_048_000..<1_049_000]))
        #expect(try allEntries(store) == entries(from: 41, count: 3, term: 3))
        #expect(try store.initialState().0 == HardState(term: 3, vote: 2, commit: 42))
        let (version, rows) = try store.dbQueue.read { db in
            (try Int.fetchOne(db, sql: "SELECT schema_version FROM peer_meta"), try Int.fetchOne(db, sql: "SELECT count(*) FROM snapshot_data"))
        }
        #expect(version == Schema.version && rows == 3, "the v1 blob is split into 1 MiB rows")
        #expect(try store.integrityProblems().isEmpty)
        try store.close()
    }

    /// Makes a store whose snapshot spans several rows, closed, with its WAL removed so damage
    /// to the database file is what a reopen reads.
    func makeStoreWithSnapshot(_ path: String) throws -> Snapshot {
        var options = PeerStore.Options()
        options.snapshotRowBytesMax = 100
        let store = try openStore(path, options: options)
        try store.persist(entries: entries(from: 1, count: 10, term: 1), hardState: HardState(term: 1, vote: 1, commit: 10))
        let data = payload(index: 10, term: 1, size: 450)
        try store.compact(upTo: 10, conf: conf, data: data)
        try store.close()
        try FileManager.default.removeItem(atPath: path + "-wal")
        return Snapshot(metadata: SnapshotMetadata(index: 10, term: 1, conf: conf), data: data)
    }

    func damage(_ path: String, _ sql: String) throws {
        let q = try DatabaseQueue(path: path)
        try q.write { db in try db.execute(sql: sql) }
        try q.close()
    }

    @Test func missingSnapshotRowIsReportedAsCorruptWhenReadAndHaltsTheStore() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        _ = try makeStoreWithSnapshot(path)
        try damage(path, "DELETE FROM snapshot_data WHERE byte_offset = 200")
        let store = try openStore(path)  // not searched at open: that would read the snapshot
        #expect(try store.snapshotChunk(offset: 0, maxBytes: 150).data.count == 150, "bytes before the hole are served")
        let read = result { try store.snapshotChunk(offset: 150, maxBytes: 100) }
        guard case .failure(.failed(let why)) = read else { Issue.record("read over a hole returned \(read)"); return }
        #expect(why.contains(path) && why.contains("corrupt") && why.contains("[200, 250)"), "\(why)")
        #expect(store.failure != nil, "the store halts")
        #expect { try store.snapshotData() } throws: { error in
            if case .halted = error as? PeerStoreError { return true } else { return false }
        }
    }

    @Test func snapshotSizeBeyondItsRowsIsCorrupt() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        _ = try makeStoreWithSnapshot(path)
        try damage(path, "UPDATE snapshot SET data_bytes = 1000")
        let store = try openStore(path)
        #expect { try store.snapshotData() } throws: { error in
            guard case .corrupt(let p, let detail) = error as? PeerStoreError else { return false }
            return p == path && detail.contains("[450, 1000)")
        }
    }

    @Test func negativeSnapshotSizeIsRefusedAtOpen() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        _ = try makeStoreWithSnapshot(path)
        try damage(path, "UPDATE snapshot SET data_bytes = -5")
        #expect { try openStore(path) } throws: { error in
            guard case .corrupt(let p, let detail) = error as? PeerStoreError else { return false }
            return p == path && detail.contains("negative")
        }
    }
}
