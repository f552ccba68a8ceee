import Foundation
import GRDB
import Raft

/// The on-disk layout (docs/storage.md §Schema). One database file per peer.
///
/// Integers are SQLite INTEGER (signed 64-bit). Indexes must stay below 2^63 so that `idx`
/// orders correctly; terms, votes and peer ids are stored by bit pattern.
enum Schema {
    /// The schema version this binary writes. Bump it with every new migration.
    static let version = 3

    /// Row size used by the v2 migration to split a v1 snapshot blob (the store's own writes use
    /// `PeerStore.Options.snapshotRowBytesMax`; readers accept any row size).
    static let migrationRowBytes = 1 << 20

    /// Every schema change is a new registered migration, never an edit of an old one. The
    /// migrator records applied identifiers in `grdb_migrations`; an identifier we do not know
    /// means a newer binary wrote the file and we refuse it.
    static let migrator: DatabaseMigrator = {
        var m = DatabaseMigrator()
        m.registerMigration("v1-log-hardstate-snapshot-meta") { db in
            // Singleton rows: `id = 1` makes a second row impossible.
            try db.execute(sql: """
                CREATE TABLE peer_meta (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    cluster_id TEXT NOT NULL,
                    peer_id INTEGER NOT NULL,
                    schema_version INTEGER NOT NULL
                );
                CREATE TABLE hard_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    term INTEGER NOT NULL,
                    vote INTEGER NOT NULL,
                    commit_index INTEGER NOT NULL
                );
                CREATE TABLE snapshot (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    snap_index INTEGER NOT NULL,
                    snap_term INTEGER NOT NULL,
                    voters TEXT NOT NULL,
                    learners TEXT NOT NULL,
                    data BLOB NOT NULL
                );
                -- `idx` is the rowid: the B-tree is ordered by index, first/last are O(log n).
                CREATE TABLE entry (
                    idx INTEGER PRIMARY KEY,
                    term INTEGER NOT NULL,
                    kind INTEGER NOT NULL,
                    data BLOB NOT NULL
                );
                """)
        }
        // Snapshots in rows of bounded size, so that reading a chunk or installing a snapshot
        // never needs the whole snapshot in memory; a snapshot being received is staged in its
        // own table and becomes the current one in the install transaction.
        m.registerMigration("v2-snapshot-rows-and-staging") { db in
            try db.execute(sql: """
                ALTER TABLE snapshot ADD COLUMN data_bytes INTEGER NOT NULL DEFAULT 0;
                CREATE TABLE snapshot_data (
                    byte_offset INTEGER PRIMARY KEY,
                    data BLOB NOT NULL
                );
                CREATE TABLE snapshot_staging (
                    byte_offset INTEGER PRIMARY KEY,
                    data BLOB NOT NULL
                );
                """)
            // A v1 store kept the snapshot in one blob: split it into rows, once.
            let blob = try Data.fetchOne(db, sql: "SELECT data FROM snapshot WHERE id = 1") ?? Data()
            var offset = 0
            while offset < blob.count {
                let end = min(offset + migrationRowBytes, blob.count)
                try db.execute(sql: "INSERT INTO snapshot_data (byte_offset, data) VALUES (?, ?)",
                               arguments: [Int64(offset), blob.subdata(in: offset..<end)])
                offset = end
            }
            try db.execute(sql: "UPDATE snapshot SET data = x'', data_bytes = ? WHERE id = 1", arguments: [Int64(blob.count)])
        }
        // A snapshot this peer takes itself is written in pieces, each a short transaction, into
        // its own staging table (never the one a snapshot from the leader is received into),
        // and becomes the current snapshot in one small transaction (`finishCompaction`).
        m.registerMigration("v3-local-snapshot-staging") { db in
            try db.execute(sql: """
                CREATE TABLE snapshot_local_staging (
                    byte_offset INTEGER PRIMARY KEY,
                    data BLOB NOT NULL
                );
                """)
        }
        return m
    }()
}

// MARK: - Value codecs

extension UInt64 {
    /// Stored by bit pattern: SQLite INTEGER is signed.
    var sql: Int64 { Int64(bitPattern: self) }
    init(sql: Int64) { self = UInt64(bitPattern: sql) }
}

/// Encodes a set of node ids as sorted decimal text ("1,2,3"): readable with the sqlite3 shell.
func encodeIDs(_ ids: Set<NodeID>) -> String {
    ids.sorted().map(String.init).joined(separator: ",")
}

func decodeIDs(_ text: String) -> Set<NodeID>? {
    if text.isEmpty { return [] }
    var out: Set<NodeID> = []
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
        guard let id = NodeID(part) else { return nil }
        out.insert(id)
    }
    return out
}
