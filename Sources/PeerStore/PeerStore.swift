import Foundation
import GRDB
import Raft

/// The durable Raft storage of one peer: log entries, hard state, the latest snapshot and the
/// peer's identity in one SQLite database file (WAL mode, `synchronous=FULL`; see
/// docs/adr/0003-storage-durability.md and docs/storage.md).
///
/// The Raft core reads it through `RaftStorage`; the driver writes it after each `Ready` with
/// `persist(_:)` (one transaction: group commit) and compacts it with `compact(upTo:conf:data:)`.
/// Every method returns only after the data is durable, and every read reflects exactly the
/// writes that returned.
///
/// Not thread-safe: owned by one driver, like `MemoryStorage`. Holds an exclusive lock on the
/// file while open, so a second process (a second peer by mistake) cannot open it.
///
/// After a failed write the store halts: every later write throws `.halted` and every read
/// throws `StorageError.failed`, so the core halts too and the peer acknowledges nothing more.
public final class PeerStore: RaftStorage {
    /// Limits and tunables. Defaults are what production uses.
    public struct Options: Sendable {
        /// Most recent entries kept in memory for the core's hot reads.
        public var cacheEntriesMax = 8192
        /// Bytes (`Entry.sizeBytes`) of cached entries at most.
        public var cacheBytesMax = 16 << 20
        /// WAL pages after which a commit also checkpoints the WAL into the database
        /// (SQLite's `wal_autocheckpoint`; 4 KiB pages). Bounds the WAL replayed at open.
        public var walAutocheckpointPages = 1000
        /// A write transaction larger than this (a large snapshot) is followed by a checkpoint
        /// that truncates the WAL, so it does not leave a huge WAL behind (the WAL file is kept
        /// between writes and restarts, see `openForWriting`).
        public var walBytesMax = 64 << 20
        /// A quota on the database size; nil for none. Writes beyond it fail with `.diskFull`.
        public var databaseBytesMax: Int?
        /// Snapshot data is stored in rows of at most this many bytes, so that reading one chunk
        /// or installing a snapshot holds about one row in memory, never the whole snapshot.
        public var snapshotRowBytesMax = 1 << 20
        /// Compacted log entries `reclaimSpace` deletes per call (one short transaction).
        public var staleEntriesPerStep = 2_048

        public init() {}
    }

    /// The database file.
    public let path: String
    public let clusterID: String
    public let peerID: NodeID
    let options: Options
    let dbQueue: DatabaseQueue

    // Durable state mirrored in memory: updated only after the transaction that wrote it
    // committed. Invariant: `firstIndex == snapshotMeta.index + 1`, `lastIndex >= snapshot index`.
    public internal(set) var hardState: HardState
    /// The current snapshot's metadata (public through `snapshotMetadata()`).
    var snapshotMeta: SnapshotMetadata
    /// The current snapshot's size: its rows in `snapshot_data` cover `[0, snapshotBytes)`.
    public internal(set) var snapshotBytes: UInt64
    /// The snapshot being received (`Ready.snapshotChunks`), in `snapshot_staging`. Volatile like
    /// the core's: nil after open (rows left by a crash are dropped by the next offset-0 chunk).
    var staging: Staging?
    /// The snapshot this peer is writing itself (`stageCompaction`), in `snapshot_local_staging`.
    /// Volatile too: rows left by a crash are dropped by the next offset-0 piece.
    var localStaging: Staging?
    /// The replaced snapshot's rows are in `snapshot_trash`, freed a row at a time by
    /// `reclaimSpace` (dropping tens of MB of rows in the replacing transaction held the writer
    /// for 160 ms).
    var hasTrash: Bool
    /// The lowest entry row at or below the snapshot's index, if any: `finishCompaction` leaves
    /// the log it covers for `reclaimSpace` to delete in pieces (deleting tens of thousands of
    /// rows in that transaction held the writer for over 100 ms). No read looks below
    /// `firstIndex`, and `open` skips these rows.
    var staleEntriesFrom: LogIndex?
    var lastStoredIndex: LogIndex
    var lastStoredTerm: Term
    var cache: EntryCache
    /// Set by the first failed write; from then on the store refuses everything.
    public internal(set) var failure: PeerStoreError?

    init(path: String, clusterID: String, peerID: NodeID, options: Options, dbQueue: DatabaseQueue, state: LoadedState) {
        self.path = path
        self.clusterID = clusterID
        self.peerID = peerID
        self.options = options
        self.dbQueue = dbQueue
        self.hardState = state.hardState
        self.snapshotMeta = state.snapshot
        self.snapshotBytes = state.snapshotBytes
        self.lastStoredIndex = state.lastIndex
        self.lastStoredTerm = state.lastTerm
        self.hasTrash = state.hasTrash
        self.staleEntriesFrom = state.staleEntriesFrom
        self.cache = EntryCache(entriesMax: options.cacheEntriesMax, bytesMax: options.cacheBytesMax)
    }

    /// Closes the database: SQLite checkpoints the WAL into the database file (the WAL file is
    /// kept for reuse) and the file lock is released. The store must not be used afterwards.
    public func close() throws(PeerStoreError) {
        do {
            try dbQueue.close()
        } catch {
            throw PeerStoreError.from(error, path: path)
        }
    }

    /// Runs SQLite's full `PRAGMA integrity_check` (reads every page: proportional to the file
    /// size, so never at open). Returns the problems found; empty when the file is sound.
    public func integrityProblems() throws(PeerStoreError) -> [String] {
        do {
            let rows = try dbQueue.inDatabase { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
            return rows == ["ok"] ? [] : rows
        } catch {
            let e = PeerStoreError.from(error, path: path)
            // SQLite may stop the check with SQLITE_CORRUPT instead of listing problems.
            if case .corrupt(_, let detail) = e { return [detail] }
            throw e
        }
    }

    // MARK: - RaftStorage

    public func initialState() throws(StorageError) -> (HardState, ConfState) {
        try checkNotHalted()
        return (hardState, snapshotMeta.conf)
    }

    public func firstIndex() throws(StorageError) -> LogIndex {
        try checkNotHalted()
        return snapshotMeta.index + 1
    }

    public func lastIndex() throws(StorageError) -> LogIndex {
        try checkNotHalted()
        return lastStoredIndex
    }

    public func term(_ index: LogIndex) throws(StorageError) -> Term {
        try checkNotHalted()
        let offset = snapshotMeta.index
        if index < offset { throw .compacted }
        if index > lastStoredIndex { throw .unavailable }
        if index == offset { return snapshotMeta.term }
        if index == lastStoredIndex { return lastStoredTerm }
        if let e = cache.entry(index) { return e.term }
        return try readTerm(index)
    }

    public func entries(_ lo: LogIndex, _ hi: LogIndex, maxBytes: Int) throws(StorageError) -> [Entry] {
        try checkNotHalted()
        let offset = snapshotMeta.index
        if lo <= offset { throw .compacted }
        precondition(lo <= hi, "entries(\(lo), \(hi)): lo > hi")
        if hi > lastStoredIndex + 1 { throw .unavailable }
        if lo == hi { return [] }
        var out: [Entry] = []
        var size = 0
        let cacheFirst = cache.firstIndex ?? (lastStoredIndex + 1)
        if lo < cacheFirst {
            let full = try readEntries(lo, min(hi, cacheFirst), maxBytes: maxBytes, into: &out, size: &size)
            if full { return out }
        }
        var i = max(lo, cacheFirst)
        while i < hi, let e = cache.entry(i) {
            size += e.sizeBytes
            if !out.isEmpty && size > maxBytes { break }
            out.append(e)
            i += 1
        }
        return out
    }

    public func snapshotMetadata() throws(StorageError) -> SnapshotMetadata {
        try checkNotHalted()
        return snapshotMeta
    }

    public func snapshotChunk(offset: UInt64, maxBytes: Int) throws(StorageError) -> SnapshotChunk {
        try checkNotHalted()
        precondition(maxBytes > 0, "snapshot chunk of \(maxBytes) bytes")
        let start = min(offset, snapshotBytes)
        let end = start + min(UInt64(maxBytes), snapshotBytes - start)
        do {
            let data = try dbQueue.inDatabase { db in try readSnapshotRange(db, table: "snapshot_data", start, end) }
            return SnapshotChunk(metadata: snapshotMeta, offset: start, totalBytes: snapshotBytes, data: data, done: end == snapshotBytes)
        } catch {
            throw halt(PeerStoreError.from(error, path: path)).storageError
        }
    }

    // MARK: - Reads that go to SQLite

    private func readTerm(_ index: LogIndex) throws(StorageError) -> Term {
        do {
            let t = try dbQueue.inDatabase { db in
                try Int64.fetchOne(db.cachedStatement(sql: "SELECT term FROM entry WHERE idx = ?"), arguments: [Int64(index)])
            }
            guard let t else {
                throw PeerStoreError.corrupt(path: path, detail: "entry \(index) is missing inside the log [\(snapshotMeta.index + 1), \(lastStoredIndex)]")
            }
            return Term(sql: t)
        } catch {
            throw halt(PeerStoreError.from(error, path: path)).storageError
        }
    }

    /// Appends entries `[lo, hi)` read from SQLite to `out`, within `maxBytes` (at least one
    /// entry overall). Returns true when the byte limit stopped it.
    private func readEntries(_ lo: LogIndex, _ hi: LogIndex, maxBytes: Int, into out: inout [Entry], size: inout Int) throws(StorageError) -> Bool {
        do {
            let path = self.path
            let (read, full, newSize) = try dbQueue.inDatabase { db -> ([Entry], Bool, Int) in
                let stmt = try db.cachedStatement(sql: "SELECT idx, term, kind, data FROM entry WHERE idx >= ? AND idx < ? ORDER BY idx")
                let rows = try Row.fetchCursor(stmt, arguments: [Int64(lo), Int64(hi)])
                var read: [Entry] = []
                var size = size
                var expected = lo
                var nonEmpty = !out.isEmpty
                while let row = try rows.next() {
                    let e = try decodeEntry(row, path: path)
                    guard e.index == expected else {
                        throw PeerStoreError.corrupt(path: path, detail: "entry \(expected) is missing (found \(e.index))")
                    }
                    size += e.sizeBytes
                    if nonEmpty && size > maxBytes { return (read, true, size) }
                    read.append(e)
                    nonEmpty = true
                    expected += 1
                }
                guard expected == hi else {
                    throw PeerStoreError.corrupt(path: path, detail: "entries [\(expected), \(hi)) are missing")
                }
                return (read, false, size)
            }
            out.append(contentsOf: read)
            size = newSize
            return full
        } catch {
            throw halt(PeerStoreError.from(error, path: path)).storageError
        }
    }

    func checkNotHalted() throws(StorageError) {
        if let failure { throw PeerStoreError.halted(path: path, reason: failure.description).storageError }
    }

    /// Records the first failure and returns it: from now on the store refuses everything.
    @discardableResult
    func halt(_ error: PeerStoreError) -> PeerStoreError {
        if failure == nil { failure = error }
        return error
    }
}

func decodeEntry(_ row: Row, path: String) throws -> Entry {
    let idx: Int64 = row[0]
    let term: Int64 = row[1]
    let kindRaw: Int64 = row[2]
    let data: Data = row[3] ?? Data()
    guard let kindByte = UInt8(exactly: kindRaw), let kind = EntryKind(rawValue: kindByte) else {
        throw PeerStoreError.corrupt(path: path, detail: "entry \(idx) has unknown kind \(kindRaw)")
    }
    return Entry(term: Term(sql: term), index: LogIndex(idx), kind: kind, data: [UInt8](data))
}
