import Foundation
import GRDB
import Raft

extension PeerStore {
    /// Persists what a `Ready` asks for: `ready.snapshotChunks`, `ready.snapshot`,
    /// `ready.entries` and `ready.hardState`, in one transaction. Returns once durable (unless
    /// `ready.mustSync` is false, which the core sets only when nothing but the commit index
    /// moved). The driver may send `ready.messages` only after this returns. After it installed
    /// `ready.snapshot`, the application restores its state from `snapshotData()`.
    public func persist(_ ready: Ready) throws(PeerStoreError) {
        try persist(snapshotChunks: ready.snapshotChunks, installSnapshot: ready.snapshot, entries: ready.entries,
                    hardState: ready.hardState, sync: ready.mustSync)
    }

    /// Persists, in ONE transaction (group commit), in this order:
    /// 1. `snapshotChunks`: staged, invisible to reads. A chunk at offset 0 starts a new staged
    ///    snapshot; every other chunk must continue the staged one where it ends;
    /// 2. `installSnapshot`: the completely staged snapshot of that metadata becomes the current
    ///    snapshot, and the whole log is discarded;
    /// 3. `entries`: contiguous, starting after the snapshot and at most one past the last
    ///    index; every stored entry at or after `entries[0].index` is replaced (a conflicting
    ///    suffix is truncated in the same transaction);
    /// 4. `hardState`.
    ///
    /// When it returns, everything is on stable storage (`sync: true`: the WAL was fsync'd at
    /// commit) and every read reflects it. `sync: false` skips the fsync for writes that may be
    /// lost on power failure without harm (only the commit hint moved); a later synced write
    /// makes them durable too, in order.
    ///
    /// Arguments that break these rules are driver bugs and trap. On failure nothing of this
    /// call is visible (SQLite rolled it back), the store halts and the typed error says why;
    /// every later call throws `.halted`.
    public func persist(snapshotChunks: [SnapshotChunk] = [], installSnapshot: SnapshotMetadata? = nil, entries: [Entry] = [],
                        hardState: HardState? = nil, sync: Bool = true) throws(PeerStoreError) {
        if let failure { throw PeerStoreError.halted(path: path, reason: failure.description) }
        if let snap = installSnapshot {
            precondition(snap.index > snapshotMeta.index, "install of snapshot \(snap.index) not newer than the stored \(snapshotMeta.index)")
        }
        let baseIndex = installSnapshot?.index ?? snapshotMeta.index
        let baseLast = installSnapshot?.index ?? lastStoredIndex
        checkAppend(entries, afterSnapshot: baseIndex, last: baseLast)
        let newLast = entries.last?.index ?? baseLast
        if let hs = hardState {
            precondition(hs.commit <= newLast, "hard state commit \(hs.commit) beyond the last index \(newLast) after this write")
        }
        if snapshotChunks.isEmpty && installSnapshot == nil && entries.isEmpty && (hardState == nil || hardState == self.hardState) { return }

        let truncateFrom: LogIndex? = entries.first.flatMap { $0.index <= baseLast ? $0.index : nil }
        let stagingBefore = staging
        var stagingAfter = staging
        var installedBytes: UInt64 = 0
        do {
            try write(sync: sync) { db in
                stagingAfter = try stage(db, snapshotChunks, from: stagingBefore)
                if let snap = installSnapshot {
                    try install(db, snap, staging: stagingAfter)
                    installedBytes = stagingAfter!.totalBytes
                    stagingAfter = nil
                }
                if let from = truncateFrom, installSnapshot == nil {
                    try db.cachedStatement(sql: "DELETE FROM entry WHERE idx >= ?").execute(arguments: [Int64(from)])
                }
                try insert(db, entries)
                if let hs = hardState { try writeHardState(db, hs) }
            }
        } catch {
            throw halt(PeerStoreError.from(error, path: path))
        }
        // Committed: now (and only now) the memory mirror may show it.
        staging = stagingAfter
        if let snap = installSnapshot {
            snapshotMeta = snap
            snapshotBytes = installedBytes
            hasTrash = true
            staleEntriesFrom = nil  // install deleted every entry
            lastStoredIndex = snap.index
            lastStoredTerm = snap.term
            cache.clear()
        }
        if let last = entries.last {
            lastStoredIndex = last.index
            lastStoredTerm = last.term
            cache.append(entries)
        }
        if let hs = hardState { self.hardState = hs }
        truncateWALAfterLargeWrite(snapshotChunks.reduce(0) { $0 + $1.data.count })
    }

    /// Compacts the log: records a snapshot at `index` (which the application has applied) with
    /// `conf` and `data`, and deletes every entry up to `index`, in one transaction. The same
    /// contract as `MemoryStorage.createSnapshot`; a snapshot not newer than the stored one is
    /// ignored.
    public func compact(upTo index: LogIndex, conf: ConfState, data: [UInt8]) throws(PeerStoreError) {
        try compact(upTo: index, conf: conf, chunks: CollectionOfOne(data))
    }

    /// `compact(upTo:conf:data:)` for a state too large to build in memory at once: the
    /// snapshot's data is the concatenation of `chunks`, consumed one at a time (memory: one
    /// chunk plus one row).
    public func compact<S: Sequence>(upTo index: LogIndex, conf: ConfState, chunks: S) throws(PeerStoreError) where S.Element == [UInt8] {
        if let failure { throw PeerStoreError.halted(path: path, reason: failure.description) }
        guard index > snapshotMeta.index else { return }
        let term = try termToCompact(at: index)
        let metadata = SnapshotMetadata(index: index, term: term, conf: conf)
        var bytes: UInt64 = 0
        do {
            try dbQueue.write { db in
                try db.execute(sql: "DELETE FROM snapshot_data")
                for chunk in chunks {
                    try writeSnapshotRows(db, table: "snapshot_data", offset: bytes, chunk)
                    bytes += UInt64(chunk.count)
                }
                try writeSnapshotMetadata(db, metadata, bytes: bytes)
                try db.cachedStatement(sql: "DELETE FROM entry WHERE idx <= ?").execute(arguments: [Int64(index)])
            }
        } catch {
            throw halt(PeerStoreError.from(error, path: path))
        }
        snapshotMeta = metadata
        snapshotBytes = bytes
        staleEntriesFrom = nil  // its DELETE took every row up to the snapshot
        cache.dropPrefix(through: index)
        truncateWALAfterLargeWrite(Int(clamping: bytes))
    }

    /// Incremental compaction, step 1 (repeated): writes one piece of a snapshot this peer took
    /// at `chunk.metadata.index` into `snapshot_local_staging`, in its own short transaction, so
    /// that a large state never holds the writer for long. Offset 0 starts over; each piece must
    /// continue the last. The current snapshot and the log are untouched until
    /// `finishCompaction`.
    public func stageCompaction(_ chunk: SnapshotChunk) throws(PeerStoreError) {
        if let failure { throw PeerStoreError.halted(path: path, reason: failure.description) }
        var next = localStaging
        if chunk.offset == 0 {
            next = Staging(metadata: chunk.metadata, totalBytes: chunk.totalBytes, stagedBytes: 0)
        }
        guard let s = next, s.metadata == chunk.metadata, s.totalBytes == chunk.totalBytes, s.stagedBytes == chunk.offset,
              s.stagedBytes + UInt64(chunk.data.count) <= s.totalBytes else {
            preconditionFailure("compaction piece \(chunk.metadata.index) at \(chunk.offset) does not continue \(String(describing: localStaging))")
        }
        do {
            // Not fsync'd: staged pieces matter only once `finishCompaction` commits, and its
            // fsync of the WAL makes every earlier frame durable with it.
            try write(sync: false) { db in
                if chunk.offset == 0 { try db.execute(sql: "DELETE FROM snapshot_local_staging") }
                try writeSnapshotRows(db, table: "snapshot_local_staging", offset: chunk.offset, chunk.data)
            }
        } catch {
            throw halt(PeerStoreError.from(error, path: path))
        }
        next!.stagedBytes += UInt64(chunk.data.count)
        localStaging = next
    }

    /// Incremental compaction, step 2: the completely staged snapshot becomes the current one
    /// and the log up to its index is deleted, in one transaction that copies no snapshot data
    /// (the staging table is renamed). Returns false, and drops what was staged, when a newer
    /// snapshot arrived meanwhile (from the leader): nothing else changes then.
    @discardableResult
    public func finishCompaction(_ metadata: SnapshotMetadata) throws(PeerStoreError) -> Bool {
        if let failure { throw PeerStoreError.halted(path: path, reason: failure.description) }
        guard let s = localStaging, s.metadata == metadata, s.stagedBytes == s.totalBytes else {
            preconditionFailure("finishCompaction(\(metadata.index)) of a snapshot not completely staged (\(String(describing: localStaging)))")
        }
        localStaging = nil
        guard metadata.index > snapshotMeta.index else {
            do {
                try dbQueue.write { db in try db.execute(sql: "DELETE FROM snapshot_local_staging") }
            } catch {
                throw halt(PeerStoreError.from(error, path: path))
            }
            return false
        }
        let term = try termToCompact(at: metadata.index)
        precondition(term == metadata.term, "snapshot at \(metadata.index) claims term \(metadata.term), the log has \(term)")
        do {
            // The log up to the snapshot stays for `reclaimSpace` to delete in pieces.
            try dbQueue.write { db in
                try promoteStagedSnapshot(db, from: "snapshot_local_staging")
                try writeSnapshotMetadata(db, metadata, bytes: s.totalBytes)
            }
        } catch {
            throw halt(PeerStoreError.from(error, path: path))
        }
        if staleEntriesFrom == nil { staleEntriesFrom = snapshotMeta.index + 1 }
        snapshotMeta = metadata
        snapshotBytes = s.totalBytes
        hasTrash = true
        cache.dropPrefix(through: metadata.index)
        return true
    }

    /// The term of the entry a compaction at `index` covers up to; the entry must be stored.
    private func termToCompact(at index: LogIndex) throws(PeerStoreError) -> Term {
        precondition(index <= lastStoredIndex, "snapshot at \(index) beyond the log (last \(lastStoredIndex))")
        do {
            return try self.term(index)
        } catch {
            throw halt(.corrupt(path: path, detail: "term of entry \(index) unreadable: \(error)"))
        }
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

    /// One IMMEDIATE transaction. `sync: false` commits without an fsync: for writes that may
    /// be lost on power failure without harm, made durable by the next synced commit (the WAL is
    /// written in order). It runs under `synchronous = NORMAL`, not OFF: a checkpoint that the
    /// commit triggers still fsyncs the WAL before copying it and the database after, so the
    /// WAL is never restarted over frames whose copy in the database file is not yet durable
    /// (under OFF an autocheckpoint would copy without syncing, and the next commit would
    /// overwrite the only durable copy of earlier, acknowledged writes).
    func write<T>(sync: Bool, _ body: (Database) throws -> T) throws -> T {
        try dbQueue.writeWithoutTransaction { db in
            if !sync { try db.execute(sql: "PRAGMA synchronous = NORMAL") }
            defer { if !sync { try? db.execute(sql: "PRAGMA synchronous = FULL") } }
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db)
                return .commit
            }
            return result!
        }
    }

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
}
