import Foundation
import Testing
@testable import PeerStore
import Raft

/// A write that fails is a typed error, leaves nothing half-written, and halts the store so the
/// peer does not acknowledge anything it did not store.
@Suite struct WriteFailureTests {
    @Test func diskFullIsATypedErrorAndTheStoreRefusesFurtherWrites() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var options = PeerStore.Options()
        options.databaseBytesMax = 256 << 10  // a quota standing in for a full file system
        options.walAutocheckpointPages = 16   // small WAL: frequent checkpoints near the limit too
        let store = try openStore(path, options: options)
        var acknowledged: LogIndex = 0
        var failure: PeerStoreError?
        for i in LogIndex(1)...2000 {
            do {
                try store.persist(entries: entries(from: i, count: 1, term: 1, size: 1000), hardState: HardState(term: 1, vote: 1, commit: i))
                acknowledged = i
            } catch {
                failure = error
                break
            }
        }
        guard case .diskFull(let p, _)? = failure else {
            Issue.record("expected diskFull, got \(String(describing: failure)) after \(acknowledged) entries")
            return
        }
        #expect(p == path)
        #expect(acknowledged > 10)
        // Halted: no more writes, and reads fail so the Raft core halts too.
        #expect { try store.persist(hardState: HardState(term: 2, vote: 0, commit: 0)) } throws: { error in
            guard case .halted(_, let reason) = error as? PeerStoreError else { return false }
            return reason.contains("disk full")
        }
        #expect(throws: StorageError.self) { try store.term(1) }
        #expect(throws: StorageError.self) { try store.entries(1, 2, maxBytes: 100) }
        try store.close()

        // Reopened without the quota: every acknowledged write, nothing of the failed one.
        let reopened = try openStore(path)
        #expect(try reopened.lastIndex() == acknowledged)
        #expect(try reopened.initialState().0 == HardState(term: 1, vote: 1, commit: acknowledged))
        #expect(try allEntries(reopened) == (1...acknowledged).flatMap { entries(from: $0, count: 1, term: 1, size: 1000) })
        #expect(try reopened.integrityProblems().isEmpty)
        try reopened.persist(entries: entries(from: acknowledged + 1, count: 1, term: 1))
        #expect(try reopened.lastIndex() == acknowledged + 1)
    }

    @Test func raftNodeHaltsWhenItsStoreHasFailed() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var options = PeerStore.Options()
        options.databaseBytesMax = 128 << 10
        options.walAutocheckpointPages = 16
        let store = try openStore(path, options: options)
        var node = try RaftNode(config: RaftConfig(id: 1), storage: store, seed: 1)
        var i: LogIndex = 1
        while true {
            do {
                try store.persist(entries: entries(from: i, count: 1, term: 0, size: 2000))
                i += 1
            } catch {
                break
            }
        }
        // Any read the core makes now fails; the node halts instead of acting on a log it
        // cannot trust.
        for _ in 0..<50 { node.tick() }
        #expect(node.haltReason != nil)
        #expect(node.haltReason?.contains(path) == true)
    }
}
