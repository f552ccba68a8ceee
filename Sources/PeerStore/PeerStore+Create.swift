import Foundation
import GRDB
import Raft

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Creating a store, and giving it its WAL file (see docs/adr/0003-storage-durability.md).
extension PeerStore {
    /// Gives a new store its full-size WAL file once, so that commits overwrite allocated WAL
    /// blocks from the first one on instead of growing the file (each growth makes fdatasync
    /// journal the new size too; see docs/benchmarks.md). Writes one scratch transaction of
    /// `pages` pages (the autocheckpoint then copies it and restarts the WAL), then drops the
    /// scratch table; its pages go to the freelist and are reused by log entries. The WAL file
    /// is kept from then on (PERSIST_WAL). Runs when the WAL is smaller than that, which is
    /// after creation or after a large-snapshot truncation; a crash in between leaves only
    /// the scratch table, dropped here at the next open.
    static func warmUpWAL(_ queue: DatabaseQueue, pages: Int) throws {
        let walPath = queue.path + "-wal"
        let walBytes = (try? FileManager.default.attributesOfItem(atPath: walPath)[.size] as? Int) ?? 0
        let pageBytes = try queue.inDatabase { db in try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096 }
        let hasScratch = try queue.inDatabase { db in try db.tableExists("wal_warmup") }
        if walBytes < pages * pageBytes {
            try queue.write { db in
                try db.execute(sql: "CREATE TABLE IF NOT EXISTS wal_warmup (b BLOB)")
                try db.execute(sql: "INSERT INTO wal_warmup VALUES (zeroblob(?))", arguments: [pages * pageBytes])
            }
        }
        if hasScratch || walBytes < pages * pageBytes {
            try queue.write { db in try db.execute(sql: "DROP TABLE wal_warmup") }
        }
    }

    /// Creates a new store atomically: built under a temporary name, checkpointed into one
    /// file, fsync'd, renamed into place, and the directory fsync'd. A crash during creation
    /// leaves no file at `path` (the temporary is replaced by the next attempt).
    /// A store that starts from a snapshot instead of an empty log (`peer snapshot restore`, `peer
    /// recover`): its log is empty after `metadata.index`, its configuration `metadata.conf`, its
    /// hard state `hardState` (commit at least the snapshot's index). Created atomically like an
    /// empty one; refused if anything is at `path`.
    public struct Seed: Sendable {
        public var metadata: SnapshotMetadata
        public var data: [UInt8]
        public var hardState: HardState

        public init(metadata: SnapshotMetadata, data: [UInt8], hardState: HardState) {
            self.metadata = metadata
            self.data = data
            self.hardState = hardState
        }
    }

    public static func create(path: String, clusterID: String, peerID: NodeID, seed: Seed, rowBytesMax: Int = Options().snapshotRowBytesMax) throws(PeerStoreError) {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw PeerStoreError.cannotOpen(path: path, detail: "a store exists there already; nothing was changed")
        }
        try create(path: path, clusterID: clusterID, peerID: peerID, initialConf: seed.metadata.conf, seed: seed, rowBytesMax: rowBytesMax)
    }

    static func create(path: String, clusterID: String, peerID: NodeID, initialConf: ConfState, seed: Seed? = nil, rowBytesMax: Int = 1 << 20) throws(PeerStoreError) {
        let tmp = path + ".creating"
        let fm = FileManager.default
        for suffix in ["", "-wal", "-shm", "-journal"] { try? fm.removeItem(atPath: tmp + suffix) }
        do {
            var config = Configuration()
            config.label = "PeerStore.create"
            let queue = try DatabaseQueue(path: tmp, configuration: config)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                guard mode == "wal" else {
                    throw PeerStoreError.cannotOpen(path: path, detail: "could not enable WAL mode (got \(mode ?? "nil"))")
                }
            }
            try Schema.migrator.migrate(queue)
            try queue.write { db in
                try db.execute(
                    sql: "INSERT INTO peer_meta (id, cluster_id, peer_id, schema_version) VALUES (1, ?, ?, ?)",
                    arguments: [clusterID, peerID.sql, Schema.version])
                let hs = seed?.hardState ?? HardState()
                try db.execute(
                    sql: "INSERT INTO hard_state (id, term, vote, commit_index) VALUES (1, ?, ?, ?)",
                    arguments: [Int64(hs.term), hs.vote.sql, Int64(hs.commit)])
                try db.execute(
                    sql: "INSERT INTO snapshot (id, snap_index, snap_term, voters, learners, data, data_bytes) VALUES (1, ?, ?, ?, ?, x'', ?)",
                    arguments: [Int64(seed?.metadata.index ?? 0), Int64(seed?.metadata.term ?? 0), encodeIDs(initialConf.voters),
                                encodeIDs(initialConf.learners), Int64(seed?.data.count ?? 0)])
                if let data = seed?.data {
                    var at = 0
                    while at < data.count {
                        let end = min(data.count, at + rowBytesMax)
                        try db.execute(sql: "INSERT INTO snapshot_data (byte_offset, data) VALUES (?, ?)", arguments: [Int64(at), Data(data[at..<end])])
                        at = end
                    }
                }
            }
            try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try queue.close()
        } catch {
            throw PeerStoreError.from(error, path: path)
        }
        try fsyncPath(tmp, path: path)
        // link + unlink, not rename: a store that appeared at `path` meanwhile (another process
        // creating it) is never replaced; link fails with EEXIST instead.
        guard link(tmp, path) == 0 else {
            let why = String(cString: strerror(errno))
            try? fm.removeItem(atPath: tmp)
            throw PeerStoreError.cannotOpen(path: path, detail: "link from \(tmp): \(why)")
        }
        _ = unlink(tmp)
        try fsyncPath((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent, path: path)
        for suffix in ["-wal", "-shm"] { try? fm.removeItem(atPath: tmp + suffix) }
    }

    private static func fsyncPath(_ file: String, path: String) throws(PeerStoreError) {
        if let why = fsyncFile(file) {
            throw PeerStoreError.ioError(path: path, detail: "fsync \(file): \(why)")
        }
    }
}

/// fsyncs a file or directory; returns why it failed, or nil. At file scope so that `open` is
/// the C function, not `PeerStore.open`.
private func fsyncFile(_ file: String) -> String? {
    let fd = open(file, O_RDONLY)
    guard fd >= 0 else { return String(cString: strerror(errno)) }
    defer { _ = close(fd) }
    return fsync(fd) == 0 ? nil : String(cString: strerror(errno))
}
