import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// File names inside a certificate directory. `peer init --config` and the transport use these
/// same names, so they live in one place.
public enum CertificateFiles {
    public static let caCertificate = "ca.pem"
    public static let caPrivateKey = "ca.key"

    public static func peerCertificate(nodeID: UInt64) -> String { "peer-\(nodeID).pem" }
    public static func peerPrivateKey(nodeID: UInt64) -> String { "peer-\(nodeID).key" }
    public static func clientCertificate(name: String) -> String { "client-\(name).pem" }
    public static func clientPrivateKey(name: String) -> String { "client-\(name).key" }

    /// Private keys are readable by their owner only.
    public static let privateKeyMode: mode_t = 0o600
    public static let certificateMode: mode_t = 0o644

    /// Creates `path` with `contents`, failing if it exists (O_EXCL: no check-then-write race).
    /// The mode is set with fchmod as well, so a permissive umask cannot widen it.
    static func writeNew(_ contents: String, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 {
            let err = errno
            if err == EEXIST { throw CertsError.fileAlreadyExists(path: path) }
            throw CertsError.unwritableFile(path: path, reason: String(cString: strerror(err)))
        }
        defer { close(fd) }
        guard fchmod(fd, mode) == 0 else {
            throw CertsError.unwritableFile(path: path, reason: String(cString: strerror(errno)))
        }
        var bytes = Array(contents.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CertsError.unwritableFile(path: path, reason: String(cString: strerror(errno)))
            }
            bytes = bytes.dropFirst(n)
        }
        guard fsync(fd) == 0 else {
            throw CertsError.unwritableFile(path: path, reason: String(cString: strerror(errno)))
        }
    }

    /// Replaces `path` with `contents` atomically: a temporary file beside it (created with
    /// `writeNew`, so fsynced and of `mode`), renamed over it, and the directory fsynced. A
    /// reader sees the old file or the new one, never a part of either. Only certificate
    /// rotation replaces files (`CARotation`); everything else is written once.
    static func replace(_ contents: String, at path: String, mode: mode_t) throws {
        let temporary = path + ".tmp-\(getpid())"
        if exists(temporary) { unlink(temporary) }
        try writeNew(contents, to: temporary, mode: mode)
        try renameDurably(temporary, to: path)
    }

    /// `rename(2)` and an fsync of the directory, so the new name survives a crash.
    static func renameDurably(_ from: String, to path: String) throws {
        guard rename(from, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(from)
            throw CertsError.unwritableFile(path: path, reason: reason)
        }
        let directory = (path as NSString).deletingLastPathComponent
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    static func read(_ path: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CertsError.unreadableFile(path: path, reason: "\(error.localizedDescription)")
        }
    }

    static func exists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path)
    }

    public static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// Creates the directory (0700: it holds private keys) if it is missing.
    static func ensureDirectory(_ directory: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            guard isDir.boolValue else {
                throw CertsError.unwritableFile(path: directory, reason: "exists and is not a directory")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CertsError.unwritableFile(path: directory, reason: "\(error.localizedDescription)")
        }
    }
}
