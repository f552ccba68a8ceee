#if canImport(Glibc)
import Glibc
#endif

/// File operations in the router's prefix, with errno in every failure.
enum PrefixFiles {
    /// Creates `path` and its missing parents with mode 0755: when the peer runs as root,
    /// nginx workers run as `nobody` and must traverse the prefix to reach their temp and
    /// cache directories (which nginx creates 0700 for them).
    static func makeDirectory(_ path: String) throws(RouterError) {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw .io(operation: "mkdir", path: current, errno: errno)
            }
        }
    }

    /// Writes `text` to a new file `path` (replacing any), flushed to disk.
    static func write(_ text: String, to path: String) throws(RouterError) {
        // 0600: the config holds the control server's secret; only nginx's master (the peer's
        // user) reads it.
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "write", path: path, errno: errno)
            }
            written += count
        }
        guard fsync(fd) == 0 else { throw .io(operation: "fsync", path: path, errno: errno) }
    }

    static func rename(_ from: String, to: String) throws(RouterError) {
        guard Glibc.rename(from, to) == 0 else { throw .io(operation: "rename to \(to)", path: from, errno: errno) }
    }

    /// A second name for `path` (a hard link), replacing `link`.
    static func hardLink(_ path: String, as link: String) throws(RouterError) {
        try remove(link)
        guard Glibc.link(path, link) == 0 else { throw .io(operation: "link to \(link)", path: path, errno: errno) }
    }

    /// Removes `path`; a missing file is fine.
    static func remove(_ path: String) throws(RouterError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw .io(operation: "unlink", path: path, errno: errno) }
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Size in bytes, 0 for a missing file.
    static func size(_ path: String) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return Int(info.st_size)
    }

    /// Up to `bytesMax` bytes of `path` from `offset` (or the last `bytesMax` bytes when more
    /// follow `offset`); "" for a missing file.
    static func read(_ path: String, from offset: Int = 0, bytesMax: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        let size = self.size(path)
        let start = max(offset, size - bytesMax, 0)
        guard size > start else { return [] }
        var buffer = [UInt8](repeating: 0, count: min(bytesMax, size - start))
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(start)) }
        return count > 0 ? Array(buffer[0..<count]) : []
    }
}
