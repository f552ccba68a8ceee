import Foundation
import GRDB
import Raft

// Snapshot data lives in rows of at most `Options.snapshotRowBytesMax` bytes keyed by their byte
// offset: `snapshot_data` holds the current snapshot, `snapshot_staging` the one being received.
// Reading a chunk reads the few rows it overlaps; installing renames the staging table into
// place. Neither ever holds a whole snapshot in memory (docs/storage.md §Snapshots).

extension PeerStore {
    /// The snapshot being received from the leader, in `snapshot_staging`.
    /// Invariant: the staging rows cover exactly `[0, stagedBytes)`, `stagedBytes <= totalBytes`.
    struct Staging: Sendable, Hashable {
        var metadata: SnapshotMetadata
        var totalBytes: UInt64
        var stagedBytes: UInt64
    }

    /// The current snapshot's whole data, for the application to restore its state from (at
    /// start, and after `Ready.snapshot` installed a snapshot). It is as large as the snapshot;
    /// to stream it instead, read `snapshotChunk(offset:maxBytes:)` in a loop.
    public func snapshotData() throws(PeerStoreError) -> [UInt8] {
        if let failure { throw PeerStoreError.halted(path: path, reason: failure.description) }
        do {
            let total = snapshotBytes
            return try dbQueue.inDatabase { db in try readSnapshotRange(db, table: "snapshot_data", 0, total) }
        } catch {
            throw halt(PeerStoreError.from(error, path: path))
        }
    }

    /// Reads bytes `[start, end)` of the snapshot rows in `table`, checking that the rows are
    /// contiguous where it reads them. Holds the rows it overlaps, never more.
    func readSnapshotRange(_ db: Database, table: String, _ start: UInt64, _ end: UInt64) throws -> [UInt8] {
        if start == end { return [] }
        precondition(start < end && end < UInt64(Int64.max), "snapshot range [\(start), \(end))")
        let sql = """
            SELECT byte_offset, data FROM \(table)
            WHERE byte_offset >= (SELECT coalesce(max(byte_offset), 0) FROM \(table) WHERE byte_offset <= ?1)
              AND byte_offset < ?2
            ORDER BY byte_offset
            """
        let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: [Int64(start), Int64(end)])
        var out: [UInt8] = []
        out.reserveCapacity(Int(end - start))
        var covered = start  // every byte before it is in `out`
        while let row = try rows.next() {
            let rowOffset = UInt64(row[0] as Int64)
            let data: Data = row[1]
            let rowEnd = rowOffset + UInt64(data.count)
            guard rowOffset <= covered else {
                throw PeerStoreError.corrupt(path: path, detail: "\(table): bytes [\(covered), \(rowOffset)) of the snapshot are missing")
            }
            guard rowEnd > covered else { continue }  // a row wholly before `start` (or empty)
            let from = Int(covered - rowOffset)
            let to = Int(min(rowEnd, end) - rowOffset)
            out.append(contentsOf: data[data.startIndex + from ..< data.startIndex + to])
            covered = min(rowEnd, end)
            if covered == end { break }
        }
        guard covered == end else {
            throw PeerStoreError.corrupt(path: path, detail: "\(table): bytes [\(covered), \(end)) of the snapshot are missing")
        }
        return out
    }

    /// Writes `bytes` at `offset` in `table` as rows of at most `snapshotRowBytesMax` bytes.
    func writeSnapshotRows(_ db: Database, table: String, offset: UInt64, _ bytes: some Collection<UInt8>) throws {
        let stmt = try db.cachedStatement(sql: "INSERT INTO \(table) (byte_offset, data) VALUES (?, ?)")
        var at = offset
        var rest = bytes[...]
        while !rest.isEmpty {
            let piece = rest.prefix(options.snapshotRowBytesMax)
            try stmt.execute(arguments: [Int64(at), Data(piece)])
            at += UInt64(piece.count)
            rest = rest.dropFirst(piece.count)
        }
    }

    /// Stages the chunks of a Ready inside the caller's transaction. Returns the staging state
    /// after them (the caller keeps it once the transaction committed).
    func stage(_ db: Database, _ chunks: [SnapshotChunk], from current: Staging?) throws -> Staging? {
        var staging = current
        for c in chunks {
            if c.offset == 0 {
                // A new snapshot (or the same one from the beginning): drop what was staged.
                try db.execute(sql: "DELETE FROM snapshot_staging")
                staging = Staging(metadata: c.metadata, totalBytes: c.totalBytes, stagedBytes: 0)
            }
            guard let s = staging, s.metadata == c.metadata, s.totalBytes == c.totalBytes, s.stagedBytes == c.offset else {
                preconditionFailure("snapshot chunk \(c.metadata.index)/t\(c.metadata.term) at \(c.offset) does not continue the staged snapshot \(String(describing: staging))")
            }
            try writeSnapshotRows(db, table: "snapshot_staging", offset: c.offset, c.data)
            staging!.stagedBytes += UInt64(c.data.count)
            precondition(staging!.stagedBytes <= c.totalBytes, "staged more than the snapshot's \(c.totalBytes) bytes")
        }
        return staging
    }

    /// Makes the completely staged snapshot the current one inside the caller's transaction:
    /// the staging table becomes `snapshot_data` (no data is copied), the metadata is replaced,
    /// and the whole log is discarded (the core installs only a snapshot whose last entry its
    /// log does not hold; see `Ready.snapshot`).
    func install(_ db: Database, _ metadata: SnapshotMetadata, staging: Staging?) throws {
        guard let s = staging, s.metadata == metadata, s.stagedBytes == s.totalBytes else {
            preconditionFailure("install of snapshot \(metadata.index)/t\(metadata.term), which is not completely staged (\(String(describing: staging)))")
        }
        try promoteStagedSnapshot(db, from: "snapshot_staging")
        try db.execute(sql: "DELETE FROM entry")  // stale rows too (the caller clears staleEntriesFrom)
        try writeSnapshotMetadata(db, metadata, bytes: s.totalBytes)
    }

    /// Inside the caller's transaction, makes the rows staged in `staging` (`snapshot_staging`
    /// or `snapshot_local_staging`) the current snapshot's, by renames only: the current rows
    /// become `snapshot_trash` (nothing is read or freed now; `reclaimSpace` frees them a row at
    /// a time), the staging table becomes `snapshot_data`, and an empty staging table is made.
    /// A previous snapshot's rows still in the trash are dropped first (only when snapshots
    /// follow each other faster than the node reclaims). The caller sets `hasTrash` after commit.
    func promoteStagedSnapshot(_ db: Database, from staging: String) throws {
        if try db.tableExists("snapshot_trash") { try db.execute(sql: "DROP TABLE snapshot_trash") }
        try db.execute(sql: """
            ALTER TABLE snapshot_data RENAME TO snapshot_trash;
            ALTER TABLE \(staging) RENAME TO snapshot_data;
            CREATE TABLE \(staging) (
                byte_offset INTEGER PRIMARY KEY,
                data BLOB NOT NULL
            );
            """)
    }

    /// Deletes the next `staleEntriesPerStep` entries of a compacted log (`finishCompaction`
    /// leaves them), or else frees one row (at most `snapshotRowBytesMax`) of a replaced
    /// snapshot and drops its table once empty. Returns true while anything remains. The node
    /// calls it once per loop turn when it is not writing a snapshot: the space comes back in
    /// short steps.
    @discardableResult
    public func reclaimSpace() throws(PeerStoreError) -> Bool {
        if let failure { throw PeerStoreError.halted(path: path, reason: failure.description) }
        if let from = staleEntriesFrom {
            // A compacted log, `staleEntriesPerStep` rows per call, oldest first.
            // At least one row per call, whatever the option says, so the deletion always ends.
            let through = min(snapshotMeta.index, from + LogIndex(max(1, options.staleEntriesPerStep)) - 1)
            do {
                // Not fsync'd: a deletion lost in a crash is found again at open (entries below
                // the snapshot) and redone.
                try write(sync: false) { db in
                    try db.cachedStatement(sql: "DELETE FROM entry WHERE idx >= ? AND idx <= ?").execute(arguments: [Int64(from), Int64(through)])
                }
            } catch {
                throw halt(PeerStoreError.from(error, path: path))
            }
            staleEntriesFrom = through < snapshotMeta.index ? through + 1 : nil
            return true
        }
        guard hasTrash else { return false }
        let more: Bool
        do {
            // Not fsync'd either: the trash table is found again at open.
            more = try write(sync: false) { db in
                try db.execute(sql: "DELETE FROM snapshot_trash WHERE byte_offset = (SELECT MIN(byte_offset) FROM snapshot_trash)")
                if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM snapshot_trash)") == true { return true }
                try db.execute(sql: "DROP TABLE snapshot_trash")
                return false
            }
        } catch {
            throw halt(PeerStoreError.from(error, path: path))
        }
        hasTrash = more
        return more
    }

    func writeSnapshotMetadata(_ db: Database, _ m: SnapshotMetadata, bytes: UInt64) throws {
        try db.execute(
            sql: "UPDATE snapshot SET snap_index = ?, snap_term = ?, voters = ?, learners = ?, data_bytes = ? WHERE id = 1",
            arguments: [Int64(m.index), m.term.sql, encodeIDs(m.conf.voters), encodeIDs(m.conf.learners), Int64(bytes)])
        guard db.changesCount == 1 else {
            throw PeerStoreError.corrupt(path: path, detail: "the snapshot row is missing")
        }
    }
}
