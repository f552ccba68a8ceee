#if canImport(Glibc)
import Glibc
#endif

/// A file operation failed; names the path and the errno text.
struct FileError: Error, CustomStringConvertible {
    let message: String
    init(_ operation: String, _ path: String, errno code: Int32) {
        message = "\(operation) \(path): \(String(cString: strerror(code)))"
    }
    var description: String { message }
}

/// Writes files so that a reader sees either the old or the new content, never a part:
/// write `<path>.tmp`, fsync it, rename over `path`, fsync the directory (so the rename
/// survives a crash).
enum AtomicFile {
    static func write(_ bytes: [UInt8], to path: String) throws(FileError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError("open", temporary, errno: errno) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                throw FileError("write", temporary, errno: code)
            }
            written += count
        }
        if fsync(fd) != 0 {
            let code = errno
            close(fd)
            throw FileError("fsync", temporary, errno: code)
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw FileError("rename to", path, errno: errno) }
        syncDirectory(of: path)
    }

    /// Best effort: a failed directory fsync leaves the file written, only its durability
    /// across a power loss in doubt.
    private static func syncDirectory(of path: String) {
        guard let slash = path.lastIndex(of: "/") else { return }
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    /// Creates `path` (and missing parents) with mode 0755; an existing directory is fine.
    static func makeDirectory(_ path: String) throws(FileError) {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw FileError("mkdir", prefix, errno: errno) }
        }
    }
}

/// The tenant file a component reads: one tenant id per line, sorted, newline-terminated.
enum TenantFile {
    static func render(_ tenants: Set<String>) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tenants.count * 16)
        for tenant in tenants.sorted() {
            bytes.append(contentsOf: tenant.utf8)
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }

    static func write(_ tenants: Set<String>, to path: String) throws(FileError) {
        try AtomicFile.write(render(tenants), to: path)
    }
}
