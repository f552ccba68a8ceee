import Foundation
import GRDB
import Raft

extension PeerStore {
    /// Persists what a `Ready` asks for: `ready.snapshot`, `ready.entries` and `ready.hardState`,
    /// in one transaction. Returns once durable (unless `ready.mustSync` is false, which the
    /// core sets only when nothing but the commit index moved). The driver may send
    /// `ready.messages` only after this returns.
    public func persist(_ ready: Ready) throws(PeerStoreError) {
        try persist(snapshot: ready.snapshot, entries: ready.entries, hardState: ready.hardState, sync: ready.mustSync)
    }

    /// Persists, in ONE transaction (group commit), in this order:
    /// 1. `snapshot`, if newer than the stored one: replaces it and discards the whole log
    ///    (as `MemoryStorage.applySnapshot`); an older snapshot is ignored;
    /// 2. `entries`: contiguous, starting after the snapshot and at most one past the last
    ///    index; every stored entry at or after `entries[0].index` is replaced (a conflicting
    ///    suffix is truncated in the same transaction);
    /// 3. `hardState`.
    ///
    /// When it returns, everything is on stable storage (`sync: true`: the WAL was fsync'd at
    /// commit) and every read reflects it. `sync: false` skips the fsync for writes that may be
    /// lost on power failure without harm (only the commit hint moved); a later synced write
    /// makes them durable too, in order.
    ///
    /// On failure nothing of this call is visible (SQLite rolled it back), the store halts and
    /// the typed error says why; every later call throws `.halted`.
    public func persist(snapshot: Snapshot? = nil, entries: [Entry] = [], hardState: HardState? = nil, sync: Bool = true) throws(PeerStoreError) {
        if let failure { throw PeerStoreError.halted(path: path, reason: failure.description) }
        let newSnapshot = snapshot.flatMap { $0.metadata.index > snapshotMetadata.index ? $0 : nil }
        let baseIndex = newSnapshot?.metadata.index ?? snapshotMetadata.index
        let baseLast = newSnapshot?.metadata.index ?? lastStoredIndex
        checkAppend(entries, afterSnapshot: baseIndex, last: baseLast)
        let newLast = entries.last?.index ?? baseLast
        if let hs = hardState {
            precondition(hs.commit <= newLast, "hard state commit \(hs.commit) beyond the last index \(newLast) after this write")
        }
        if newSnapshot == nil && entries.isEmpty && (hardState == nil || hardState == self.hardState) { return }

        let truncateFrom: LogIndex? = entries.first.flatMap { $0.index <= baseLast ? $0.index : nil }
        do {
            try dbQueue.writeWithoutTransaction { db in
                if !sync { try db.execute(sql: "PRAGMA synchronous = OFF") }
                defer { if !sync { try? db.execute(sql: "PRAGMA synchronous = FULL") } }
                try db.inTransaction(.immediate) {
                    if let snap = newSnapshot {
                        try writeSnapshot(db, snap)
                        try db.execute(sql: "DELETE FROM entry")
                    }
                    if let from = truncateFrom, newSnapshot == nil {
                        try db.cachedStatement(sql: "DELETE FROM entry WHERE idx >= ?").execute(arguments: [Int64(from)])
                    }
                    try insert(db, entries)
                    if let hs = hardState { try writeHardState(db, hs) }
                    return .commit
                }
            }
        } catch {
            throw halt(PeerStoreError.from(error, path: path))
        }
        // Committed: now (and only now) the memory mirror may show it.
        if let snap = newSnapshot {
            snapshotMetadata = snap.metadata
            lastStoredIndex = snap.metadata.index
            lastStoredTerm = snap.metadata.term
            cache.clear()
        }
        if let last = entries.last {
            lastStoredIndex = last.index
            lastStoredTerm = last.term
            cache.append(entries)
        }
        if let hs = hardState { self.hardState = hs }
        if let snap = newSnapshot { truncateWALAfterLargeWrite(snap.data.count) }
    }

    /// Compacts the log: records a snapshot at `index` (which the application has applied) with
    /// `conf` and `data`, and deletes every entry up to `index`, in one transaction. The same
    /// contract as `MemoryStorage.createSnapshot`; a snapshot not newer than the stored one is
    /// ignored.
    public func compact(upTo index: LogIndex, conf: ConfState, data: [UInt8]) throws(PeerStoreError) {
        if let failure { throw PeerStoreError.halted(path: path, reason: failure.description) }
        guard index > snapshotMetadata.index else { return }
        precondition(index <= lastStoredIndex, "snapshot at \(index) beyond the log (last \(lastStoredIndex))")
        let term: Term
        do {
            term = try self.term(index)
        } catch {
            throw halt(.corrupt(path: path, detail: "term of entry \(index) unreadable: \(error)"))
        }
        let snap = Snapshot(metadata: SnapshotMetadata(index: index, term: term, conf: conf), data: data)
        do {
            try dbQueue.write { db in
                try writeSnapshot(db, snap)
                try db.cachedStatement(sql: "DELETE FROM entry WHERE idx <= ?").execute(arguments: [Int64(index)])
            }
        } catch {
            throw halt(PeerStoreError.from(error, path: path))
        }
        snapshotMetadata = snap.metadata
        cache.dropPrefix(through: index)
        truncateWALAfterLargeWrite(data.count)
    }

    /// After a transaction of about `bytes` beyond `walBytesMax`, checkpoint and truncate the
    /// WAL so the file does not stay that large (it is kept between writes otherwise). The data
    /// is already durable; a failure here still halts the store, as the disk is failing.
    private func truncateWALAfterLargeWrite(_ bytes: Int) {
        guard bytes > options.walBytesMax else { return }
        do {
            try dbQueue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        } catch {
            halt(PeerStoreError.from(error, path: path))
        }
    }

    // MARK: - Helpers

    /// Driver bugs, not disk conditions: the same preconditions as `MemoryStorage.append`.
    private func checkAppend(_ entries: [Entry], afterSnapshot offset: LogIndex, last: LogIndex) {
        guard let first = entries.first else { return }
        precondition(first.index > offset, "append at \(first.index) is inside the snapshot (\(offset))")
        precondition(first.index <= last + 1, "append at \(first.index) leaves a gap after \(last)")
        for (i, e) in entries.enumerated() {
            precondition(e.index == first.index + LogIndex(i), "entries not contiguous at \(e.index)")
        }
        precondition(entries.last!.index < LogIndex(Int64.max), "index beyond SQLite's INTEGER range")
    }

    private func insert(_ db: Database, _ entries: [Entry]) throws {
        guard !entries.isEmpty else { return }
        let stmt = try db.cachedStatement(sql: "INSERT INTO entry (idx, term, kind, data) VALUES (?, ?, ?, ?)")
        for e in entries {
            try stmt.execute(arguments: [Int64(e.index), e.term.sql, Int64(e.kind.rawValue), Data(e.data)])
        }
    }

    private func writeHardState(_ db: Database, _ hs: HardState) throws {
        try db.cachedStatement(sql: "UPDATE hard_state SET term = ?, vote = ?, commit_index = ? WHERE id = 1")
            .execute(arguments: [hs.term.sql, hs.vote.sql, Int64(hs.commit)])
        guard db.changesCount == 1 else {
            throw PeerStoreError.corrupt(path: path, detail: "the hard state row is missing")
        }
    }

    private func writeSnapshot(_ db: Database, _ snap: Snapshot) throws {
        let m = snap.metadata
        try db.execute(
            sql: "UPDATE snapshot SET snap_index = ?, snap_term = ?, voters = ?, learners = ?, data = ? WHERE id = 1",
            arguments: [Int64(m.index), m.term.sql, encodeIDs(m.conf.voters), encodeIDs(m.conf.learners), Data(snap.data)])
        guard db.changesCount == 1 else {
            throw PeerStoreError.corrupt(path: path, detail: "the snapshot row is missing")
        }
    }
}
