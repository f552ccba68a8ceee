import Foundation
import GRDB
import GRDBSQLite
import Raft

/// What `open` reads from the file: O(log n) lookups only, nothing proportional to the log.
struct LoadedState {
    var hardState: HardState
    var snapshot: SnapshotMetadata
    var snapshotBytes: UInt64
    var lastIndex: LogIndex
    var lastTerm: Term
    /// A replaced snapshot's rows wait in `snapshot_trash` to be freed (`reclaimSpace`).
    var hasTrash = false
    /// The lowest entry row at or below the snapshot's index (a compaction's log, not yet
    /// freed by `reclaimSpace`), if any.
    var staleEntriesFrom: LogIndex?
}

extension PeerStore {
    /// Opens the store of peer `peerID` of cluster `clusterID` at `path`, creating it if the file
    /// does not exist (with `initialConf` as the configuration of the empty log).
    ///
    /// Refuses, and changes nothing on disk, when the file is corrupt, not a peer store, belongs
    /// to another cluster or peer, or has a newer schema than this binary. The checks are done
    /// first through a read-only connection; only a file that passed them is opened for writing.
    /// Open time does not grow with the log: a few B-tree lookups, plus the replay of the kept
    /// WAL (bounded by `Options.walAutocheckpointPages`, about 4 MiB).
    public static func open(
        path: String,
        clusterID: String,
        peerID: NodeID,
        initialConf: ConfState,
        options: Options = Options()
    ) throws(PeerStoreError) -> PeerStore {
        precondition(!clusterID.isEmpty, "cluster id must not be empty")
        precondition(peerID != noNode, "peer id 0 is reserved")
        if !FileManager.default.fileExists(atPath: path) {
            try create(path: path, clusterID: clusterID, peerID: peerID, initialConf: initialConf)
        } else {
            try inspectReadOnly(path: path, clusterID: clusterID, peerID: peerID)
        }
        return try openForWriting(path: path, clusterID: clusterID, peerID: peerID, options: options)
    }

    // MARK: - Steps

    /// Validates an existing file without writing anything: read-only connection, and the WAL
    /// index files SQLite creates for it are removed afterwards if they were not there before.
    static func inspectReadOnly(path: String, clusterID: String, peerID: NodeID) throws(PeerStoreError) {
        let fm = FileManager.default
        let walExisted = fm.fileExists(atPath: path + "-wal")
        let shmExisted = fm.fileExists(atPath: path + "-shm")
        defer {
            // A read-only connection never writes the WAL: an empty one is our own creation.
            if !walExisted, let size = try? fm.attributesOfItem(atPath: path + "-wal")[.size] as? Int, size == 0 {
                try? fm.removeItem(atPath: path + "-wal")
            }
            if !shmExisted { try? fm.removeItem(atPath: path + "-shm") }
        }
        var config = Configuration()
        config.readonly = true
        config.label = "PeerStore.inspect"
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            defer { try? queue.close() }
            _ = try queue.inDatabase { db in
                try loadState(db, path: path, clusterID: clusterID, peerID: peerID, allowOlderSchema: true)
            }
        } catch {
            throw PeerStoreError.from(error, path: path)
        }
    }

    /// Opens a file that passed inspection for writing: exclusive lock, WAL, synchronous=FULL,
    /// pending migrations applied, state loaded (and validated again under the lock).
    static func openForWriting(path: String, clusterID: String, peerID: NodeID, options: Options) throws(PeerStoreError) -> PeerStore {
        var config = Configuration()
        config.label = "PeerStore"
        config.busyMode = .immediateError
        let opts = options
        config.prepareDatabase { db in
            // One peer per file: the lock is taken at the first read and held until close.
            // In WAL mode this also keeps the WAL index in process memory (no -shm file).
            try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE")
            // Every commit fsyncs the WAL before returning (docs/adr/0003-storage-durability.md).
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(opts.walAutocheckpointPages)")
            // Keep the WAL file, at its size, across close and reopen: commits then overwrite
            // allocated blocks (one fdatasync, no file-size journaling) instead of growing a
            // new WAL after every restart. The size stays bounded by the autocheckpoint, and
            // `persist`/`compact` truncate it after a transaction larger than `walBytesMax`.
            // (A non-negative journal_size_limit would make SQLite truncate it to 0 at close.)
            var persistWAL: Int32 = 1
            let rc = sqlite3_file_control(db.sqliteConnection, "main", SQLITE_FCNTL_PERSIST_WAL, &persistWAL)
            guard rc == SQLITE_OK else { throw DatabaseError(resultCode: ResultCode(rawValue: rc)) }
            if let quota = opts.databaseBytesMax {
                let pageBytes = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
                _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = \(max(1, quota / pageBytes))")
            }
        }
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            let needsMigration = try queue.writeWithoutTransaction { db -> Bool in
                let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode")
                guard mode == "wal" else {
                    throw PeerStoreError.notAPeerStore(path: path, detail: "journal mode is \(mode ?? "unknown"), expected wal")
                }
                // Validate before migrating: an older schema is migrated only once we know
                // the file is ours.
                _ = try loadState(db, path: path, clusterID: clusterID, peerID: peerID, allowOlderSchema: true)
                return try !Schema.migrator.hasCompletedMigrations(db)
            }
            if needsMigration {
                try Schema.migrator.migrate(queue)
                try queue.write { db in
                    try db.execute(sql: "UPDATE peer_meta SET schema_version = ?", arguments: [Schema.version])
                }
            }
            // The warm-up grows the database file by the WAL's size: not under a small quota.
            if options.databaseBytesMax.map({ $0 >= 4 * options.walAutocheckpointPages * 4096 }) ?? true {
                try warmUpWAL(queue, pages: options.walAutocheckpointPages)
            }
            let state = try queue.writeWithoutTransaction { db in
                try loadState(db, path: path, clusterID: clusterID, peerID: peerID, allowOlderSchema: false)
            }
            return PeerStore(path: path, clusterID: clusterID, peerID: peerID, options: options, dbQueue: queue, state: state)
        } catch {
            throw PeerStoreError.from(error, path: path)
        }
    }

    /// Reads and validates the identity and the durable state. Throws a `PeerStoreError` naming
    /// `path` for every refusal. O(log n): singleton rows plus the first and last log entries.
    static func loadState(_ db: Database, path: String, clusterID: String, peerID: NodeID, allowOlderSchema: Bool) throws -> LoadedState {
        guard try db.tableExists("peer_meta") else {
            throw PeerStoreError.notAPeerStore(path: path, detail: "no peer_meta table")
        }
        if try Schema.migrator.hasBeenSuperseded(db) {
            let found = (try? Int.fetchOne(db, sql: "SELECT schema_version FROM peer_meta WHERE id = 1")) ?? nil
            throw PeerStoreError.newerSchema(path: path, found: found ?? Schema.version + 1, supported: Schema.version)
        }
        guard let meta = try Row.fetchOne(db, sql: "SELECT cluster_id, peer_id, schema_version FROM peer_meta WHERE id = 1") else {
            throw PeerStoreError.notAPeerStore(path: path, detail: "peer_meta is empty")
        }
        let version: Int = meta["schema_version"]
        if version > Schema.version {
            throw PeerStoreError.newerSchema(path: path, found: version, supported: Schema.version)
        }
        let foundCluster: String = meta["cluster_id"]
        if foundCluster != clusterID {
            throw PeerStoreError.wrongCluster(path: path, expected: clusterID, found: foundCluster)
        }
        let foundPeer = NodeID(sql: meta["peer_id"])
        if foundPeer != peerID {
            throw PeerStoreError.wrongPeer(path: path, expected: peerID, found: foundPeer)
        }
        if !allowOlderSchema, try !Schema.migrator.hasCompletedMigrations(db) {
            throw PeerStoreError.corrupt(path: path, detail: "schema migrations incomplete")
        }
        return try loadRaftState(db, path: path)
    }

    private static func loadRaftState(_ db: Database, path: String) throws -> LoadedState {
        guard let hs = try Row.fetchOne(db, sql: "SELECT term, vote, commit_index FROM hard_state WHERE id = 1") else {
            throw PeerStoreError.corrupt(path: path, detail: "the hard state row is missing")
        }
        // A file still at schema v1 (inspected before its migration) has no data_bytes column.
        let hasBytes = try db.columns(in: "snapshot").contains { $0.name == "data_bytes" }
        let bytesColumn = hasBytes ? "data_bytes" : "length(data) AS data_bytes"
        guard let snap = try Row.fetchOne(db, sql: "SELECT snap_index, snap_term, voters, learners, \(bytesColumn) FROM snapshot WHERE id = 1") else {
            throw PeerStoreError.corrupt(path: path, detail: "the snapshot row is missing")
        }
        guard let voters = decodeIDs(snap["voters"]), let learners = decodeIDs(snap["learners"]),
              voters.isDisjoint(with: learners), !voters.contains(noNode), !learners.contains(noNode)
        else {
            throw PeerStoreError.corrupt(path: path, detail: "the snapshot configuration is unreadable")
        }
        let dataBytes: Int64 = snap["data_bytes"]
        guard dataBytes >= 0 else {
            throw PeerStoreError.corrupt(path: path, detail: "the snapshot size \(dataBytes) is negative")
        }
        let snapIndex = LogIndex(snap["snap_index"] as Int64)
        let meta = SnapshotMetadata(index: snapIndex, term: Term(sql: snap["snap_term"]), conf: ConfState(voters: voters, learners: learners))
        var lastIndex = snapIndex
        var lastTerm = meta.term
        // rowid table: every lookup walks one B-tree path. Rows at or below the snapshot are a
        // compaction's log still being freed (`reclaimSpace`): not part of the log.
        let stale = try Int64.fetchOne(db, sql: "SELECT idx FROM entry WHERE idx <= ? ORDER BY idx ASC LIMIT 1", arguments: [Int64(snapIndex)])
        if let first = try Int64.fetchOne(db, sql: "SELECT idx FROM entry WHERE idx > ? ORDER BY idx ASC LIMIT 1", arguments: [Int64(snapIndex)]) {
            guard LogIndex(first) == snapIndex + 1 else {
                throw PeerStoreError.corrupt(path: path, detail: "the log starts at \(first), expected \(snapIndex + 1) after the snapshot")
            }
            let last = try Row.fetchOne(db, sql: "SELECT idx, term FROM entry ORDER BY idx DESC LIMIT 1")!
            lastIndex = LogIndex(last[0] as Int64)
            lastTerm = Term(sql: last[1])
        }
        let hardState = HardState(term: Term(sql: hs["term"]), vote: NodeID(sql: hs["vote"]), commit: LogIndex(hs["commit_index"] as Int64))
        guard hardState.commit <= lastIndex else {
            throw PeerStoreError.corrupt(path: path, detail: "hard state commit \(hardState.commit) is beyond the last entry \(lastIndex)")
        }
        return LoadedState(hardState: hardState, snapshot: meta, snapshotBytes: UInt64(dataBytes), lastIndex: lastIndex, lastTerm: lastTerm,
                           hasTrash: try db.tableExists("snapshot_trash"), staleEntriesFrom: stale.map { LogIndex($0) })
    }
}
