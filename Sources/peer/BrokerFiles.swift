import Foundation
import PeerAPI
import PeerConfig

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The broker's credential files (docs/broker.md §Credentials): the password (for the operator
/// and `peer broker credentials`) and its salted hash (what every peer reads). Both 0600 in
/// `tlsDir` by default, written by `peer init`; the password file may be moved off the machines
/// that run peers, and the peers keep working.
enum BrokerFiles {
    /// 32 random bytes as 64 hex digits: 256 bits.
    static func freshPassword() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%016llx", g.next() as UInt64) }.joined()
    }

    /// Reads a one-line secret file that only its owner may read.
    static func readPrivate(_ path: String, what: String) throws -> String {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw CLIError("\(what) \(path): cannot read it (\(String(cString: strerror(errno))))")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw CLIError("\(what) \(path): mode \(String(st.st_mode & 0o777, radix: 8)) lets others read or change it; chmod 600 it")
        }
        guard st.st_size <= 4096, let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CLIError("\(what) \(path): not a small UTF-8 text file")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func loadVerifier(path: String) throws -> PasswordVerifier {
        let text = try readPrivate(path, what: "broker.passwordHashFile")
        guard let verifier = PasswordVerifier(encoded: text) else {
            throw CLIError("broker.passwordHashFile \(path): not a password hash (expected sha256:<salt hex>:<hash hex>); `peer init` writes one")
        }
        return verifier
    }

    /// Writes `text` to a new file, 0600, failing if it exists (never overwrites).
    static func writeNewPrivate(_ path: String, _ text: String) throws {
        try writeNewPrivate(path, bytes: Array((text + "\n").utf8))
    }

    /// Writes `bytes` to a new file, 0600, all or nothing: a temporary file written and fsync'd,
    /// then linked to `path` (which fails if `path` exists: never an overwrite), the directory
    /// fsync'd. A crash leaves either no file at `path` or the whole one.
    static func writeNewPrivate(_ path: String, bytes: [UInt8]) throws {
        let tmp = path + ".partial-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CLIError("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            written += n
        }
        let ok = written == bytes.count && fchmod(fd, 0o600) == 0 && fsync(fd) == 0
        let why = String(cString: strerror(errno))
        close(fd)
        guard ok else {
            unlink(tmp)
            throw CLIError("cannot write \(tmp): \(why)")
        }
        guard link(tmp, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw CLIError("cannot create \(path): \(why)")
        }
        unlink(tmp)
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// What `peer init` found or must create. Checks before anything is written.
    enum Plan {
        case exists
        case create(password: String?)  // nil: the password exists, only the hash is missing

        init(inspecting broker: ClusterConfig.Broker) throws {
            let fm = FileManager.default
            let hasHash = fm.fileExists(atPath: broker.passwordHashFile)
            let hasPassword = fm.fileExists(atPath: broker.passwordFile)
            switch (hasPassword, hasHash) {
            case (true, true):
                let verifier = try loadVerifier(path: broker.passwordHashFile)
                let password = try readPrivate(broker.passwordFile, what: "broker.passwordFile")
                guard verifier.matches(password) else {
                    throw CLIError("broker.passwordFile \(broker.passwordFile) does not match broker.passwordHashFile \(broker.passwordHashFile); move both away and run `peer init` again for new credentials")
                }
                self = .exists
            case (false, true):
                _ = try loadVerifier(path: broker.passwordHashFile)  // the operator keeps the password elsewhere
                self = .exists
            case (true, false):
                _ = try readPrivate(broker.passwordFile, what: "broker.passwordFile")
                self = .create(password: nil)
            case (false, false):
                self = .create(password: freshPassword())
            }
        }

        /// Creates what is missing; returns whether anything was created.
        func execute(_ broker: ClusterConfig.Broker) throws -> Bool {
            switch self {
            case .exists:
                return false
            case .create(let fresh):
                let password: String
                if let fresh {
                    try writeNewPrivate(broker.passwordFile, fresh)
                    password = fresh
                } else {
                    password = try readPrivate(broker.passwordFile, what: "broker.passwordFile")
                }
                try writeNewPrivate(broker.passwordHashFile, PasswordVerifier.make(password: password).encoded)
                return true
            }
        }
    }
}
