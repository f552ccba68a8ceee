import Foundation
import GRDB
import Testing
@testable import PeerStore
import Raft

/// A peer must refuse to start on a file that is not its own or not sound, say which file and
/// why, and leave every byte on disk as it was.
@Suite struct BadDiskInputTests {
    /// Makes a valid store with a few entries and closes it. The close checkpointed everything
    /// into the database file; the kept WAL is removed so that damage done to the database
    /// file is not masked by page copies still in the WAL (SQLite reads those first).
    func makeStore(_ path: String, entryCount: Int = 50, size: Int = 100) throws {
        let s = try openStore(path)
        try s.persist(entries: entries(from: 1, count: entryCount, term: 2, size: size), hardState: HardState(term: 2, vote: 1, commit: 10))
        try s.close()
        try FileManager.default.removeItem(atPath: path + "-wal")
    }

    /// Opens `path` expecting a refusal; checks the directory is byte-for-byte unchanged.
    func expectRefusal(_ dir: TempDir, _ path: String, cluster: String = testCluster, peer: NodeID = 1,
                       _ check: (PeerStoreError) -> Bool) {
        let before = dir.contents()
        do {
            let s = try openStore(path, cluster: cluster, peer: peer)
            Issue.record("open succeeded on a bad file: \(s.path)")
        } catch {
            #expect(check(error), "unexpected error: \(error)")
            #expect(error.description.contains(path), "message does not name the file: \(error)")
        }
        #expect(dir.contents() == before, "the refused open changed files on disk")
    }

    @Test func databaseOfAnotherClusterIsRefusedAndLeftUnchanged() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        try makeStore(path)
        expectRefusal(dir, path, cluster: "other-cluster") {
            $0 == .wrongCluster(path: path, expected: "other-cluster", found: testCluster)
        }
    }

    @Test func databaseOfAnotherPeerIsRefusedAndLeftUnchanged() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        try makeStore(path)
        expectRefusal(dir, path, peer: 2) { $0 == .wrongPeer(path: path, expected: 2, found: 1) }
    }

    @Test func newerSchemaVersionIsRefusedAndLeftUnchanged() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        try makeStore(path)
        // What a future binary would leave: an unknown migration and a higher version.
        let q = try DatabaseQueue(path: path)
        try q.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')")
            try db.execute(sql: "UPDATE peer_meta SET schema_version = ?", arguments: [Schema.version + 1])
        }
        try q.close()
        expectRefusal(dir, path) { $0 == .newerSchema(path: path, found: Schema.version + 1, supported: Schema.version) }
    }

    @Test func fileWithAGarbageHeaderIsRefusedAsCorrupt() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        try makeStore(path)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        for i in 0..<16 { bytes[i] = 0xA5 }
        try bytes.write(to: URL(fileURLWithPath: path))
        expectRefusal(dir, path) { if case .corrupt = $0 { return true } else { return false } }
    }

    @Test func fileWithGarbageAfterTheFirstPageIsRefusedAsCorrupt() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        try makeStore(path)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        var rng = SplitMix64(seed: 7)
        for i in 4096..<bytes.count { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
        try bytes.write(to: URL(fileURLWithPath: path))
        expectRefusal(dir, path) { if case .corrupt = $0 { return true } else { return false } }
    }

    @Test func textFileIsRefusedAsCorrupt() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        try Data(String(repeating: "not a database\n", count: 500).utf8).write(to: URL(fileURLWithPath: path))
        expectRefusal(dir, path) { if case .corrupt = $0 { return true } else { return false } }
    }

    @Test func sqliteDatabaseOfAnotherApplicationIsRefused() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        let q = try DatabaseQueue(path: path)
        try q.write { db in try db.execute(sql: "CREATE TABLE cats (name TEXT); INSERT INTO cats VALUES ('tom')") }
        try q.close()
        expectRefusal(dir, path) { if case .notAPeerStore = $0 { return true } else { return false } }
    }

    @Test func secondOpenOfALiveStoreIsRefusedAsLocked() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        let first = try openStore(path)
        try first.persist(entries: entries(from: 1, count: 3, term: 1))
        #expect(throws: PeerStoreError.locked(path: path)) { try openStore(path) }
        // The first owner is unaffected.
        try first.persist(entries: entries(from: 4, count: 1, term: 1))
        #expect(try first.lastIndex() == 4)
        try first.close()
        #expect(try openStore(path).lastIndex() == 4)
    }

    /// Corruption inside the log is not found at open (that would read the whole file); the
    /// read that meets it fails, the store halts, and the core, seeing `.failed`, halts too.
    @Test func corruptEntryPageHaltsTheStoreWhenRead() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        try makeStore(path, entryCount: 400, size: 200)
        // Damage the page holding entry 200 (found by its payload, whatever the layout): deep
        // inside the entry table, away from the first and last entries that open reads.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let needle = Data(payload(index: 200, term: 2, size: 200))
        let at = try #require(bytes.range(of: needle)?.lowerBound, "entry 200 not found in the file")
        let page = at / 4096
        for i in (page * 4096)..<((page + 1) * 4096) { bytes[i] = 0xFF }
        try bytes.write(to: URL(fileURLWithPath: path))
        let store = try openStore(path)
        #expect(try !store.integrityProblems().isEmpty)
        let read = result { try store.entries(1, 401, maxBytes: .max) }
        guard case .failure(.failed(let why)) = read else {
            Issue.record("reading a corrupt page returned \(read)")
            return
        }
        #expect(why.contains(path) && why.contains("corrupt"), "\(why)")
        #expect(store.failure != nil)
        #expect(throws: StorageError.self) { try store.lastIndex() }
        #expect { try store.persist(entries: entries(from: 401, count: 1, term: 2)) } throws: { error in
            if case .halted = error as? PeerStoreError { return true } else { return false }
        }
    }
}
