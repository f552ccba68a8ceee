import GRDB
import Raft

/// Why the store refused to open, or why a write failed. Every case names the database file so an
/// operator can act on the message alone (docs/storage.md lists each case and what to do).
///
/// After any write error the store is halted: it refuses every further write and read, so the
/// peer stops participating instead of acknowledging entries it did not store.
public enum PeerStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file system is full, or the database reached its configured size limit (SQLITE_FULL).
    case diskFull(path: String, detail: String)
    /// The operating system reported an I/O error (SQLITE_IOERR_*: read, write, fsync, truncate...).
    case ioError(path: String, detail: String)
    /// The file is not a valid database or its content contradicts itself (SQLITE_CORRUPT,
    /// SQLITE_NOTADB, or a PeerStore invariant broken on disk).
    case corrupt(path: String, detail: String)
    /// Another process holds the database (one peer per file; SQLITE_BUSY / SQLITE_LOCKED).
    case locked(path: String)
    /// The file could not be opened or created (permissions, missing directory; SQLITE_CANTOPEN,
    /// SQLITE_READONLY, SQLITE_PERM).
    case cannotOpen(path: String, detail: String)
    /// A valid SQLite database that is not a peer store (no PeerStore metadata).
    case notAPeerStore(path: String, detail: String)
    /// The database belongs to another cluster.
    case wrongCluster(path: String, expected: String, found: String)
    /// The database belongs to another peer of this cluster.
    case wrongPeer(path: String, expected: NodeID, found: NodeID)
    /// The database was written by a newer version of peer (a schema this binary does not know).
    case newerSchema(path: String, found: Int, supported: Int)
    /// An earlier write failed; the store refuses everything from then on. `reason` is that failure.
    case halted(path: String, reason: String)
    /// Any other SQLite error, with its code and message.
    case sqlite(path: String, code: Int32, detail: String)

    public var description: String {
        switch self {
        case let .diskFull(path, detail):
            return "\(path): disk full (\(detail)); free space or raise the size limit, then restart the peer"
        case let .ioError(path, detail):
            return "\(path): I/O error (\(detail)); check the disk and the kernel log, then restart the peer"
        case let .corrupt(path, detail):
            return "\(path): database is corrupt (\(detail)); restore it from another peer (see docs/storage.md)"
        case let .locked(path):
            return "\(path): database is in use by another process (only one peer may open a store)"
        case let .cannotOpen(path, detail):
            return "\(path): cannot open database (\(detail))"
        case let .notAPeerStore(path, detail):
            return "\(path): not a peer store (\(detail)); check the --data path"
        case let .wrongCluster(path, expected, found):
            return "\(path): database belongs to cluster '\(found)', not '\(expected)'; check the --data path"
        case let .wrongPeer(path, expected, found):
            return "\(path): database belongs to peer \(found), not \(expected); check the --data path"
        case let .newerSchema(path, found, supported):
            return "\(path): schema version \(found) is newer than this binary supports (\(supported)); run a newer peer"
        case let .halted(path, reason):
            return "\(path): store halted after a failed write: \(reason)"
        case let .sqlite(path, code, detail):
            return "\(path): SQLite error \(code) (\(detail))"
        }
    }

    /// The same failure as a `StorageError`, for the Raft core (which halts on `.failed`).
    var storageError: StorageError { .failed(description) }

    /// Which system call failed, from SQLite's extended I/O error code (sqlite.org/rescode.html).
    static func ioErrorName(_ code: Int32) -> String {
        switch code {
        case 266: return "read failed (SQLITE_IOERR_READ)"
        case 522: return "short read (SQLITE_IOERR_SHORT_READ)"
        case 778: return "write failed (SQLITE_IOERR_WRITE)"
        case 1034: return "fsync failed (SQLITE_IOERR_FSYNC)"
        case 1290: return "directory fsync failed (SQLITE_IOERR_DIR_FSYNC)"
        case 1546: return "truncate failed (SQLITE_IOERR_TRUNCATE)"
        case 1802: return "fstat failed (SQLITE_IOERR_FSTAT)"
        default: return "SQLite extended code \(code)"
        }
    }

    /// Maps an error thrown by GRDB/SQLite to a typed error naming `path`.
    static func from(_ error: any Error, path: String) -> PeerStoreError {
        if let e = error as? PeerStoreError { return e }
        guard let db = error as? DatabaseError else {
            return .sqlite(path: path, code: -1, detail: String(describing: error))
        }
        let detail = db.message ?? "\(db.extendedResultCode)"
        switch db.resultCode {
        case .SQLITE_FULL:
            return .diskFull(path: path, detail: detail)
        case .SQLITE_IOERR:
            return .ioError(path: path, detail: "\(detail): \(ioErrorName(db.extendedResultCode.rawValue))")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return .corrupt(path: path, detail: detail)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return .locked(path: path)
        case .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_AUTH:
            return .cannotOpen(path: path, detail: detail)
        default:
            return .sqlite(path: path, code: db.resultCode.rawValue, detail: detail)
        }
    }
}
