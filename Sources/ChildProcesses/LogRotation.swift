#if canImport(Glibc)
import Glibc
#endif

/// Keeps an output file bounded while its writer goes on writing (logrotate's copytruncate): the
/// file is copied to `<path>.1` (the previous `.1` is replaced) and truncated to zero. Writers
/// opened it with O_APPEND (every spawned child's output, and `peer up`'s peers' stderr, are),
/// so their next write lands at the new end. A line written between the copy and the truncate
/// is lost; nothing else is. Memory: one 1 MiB buffer.
public enum LogRotation {
    /// Rotates `path` if it is a regular file larger than `maxBytes`. Returns why it could not,
    /// or nil (also when there was nothing to do).
    @discardableResult
    public static func copyTruncateIfLarger(path: String, maxBytes: Int64) -> String? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, Int64(info.st_size) > maxBytes else { return nil }
        let kept = path + ".1"
        let tmp = kept + ".tmp"
        let src = open(path, O_RDONLY | O_CLOEXEC)
        guard src >= 0 else { return "open \(path): \(String(cString: strerror(errno)))" }
        defer { close(src) }
        let dst = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, info.st_mode & 0o777)
        guard dst >= 0 else { return "open \(tmp): \(String(cString: strerror(errno)))" }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var failure: String?
        copying: while true {
            let n = buffer.withUnsafeMutableBytes { read(src, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                failure = "read \(path): \(String(cString: strerror(errno)))"
                break
            }
            var written = 0
            while written < n {
                let w = buffer.withUnsafeBytes { write(dst, $0.baseAddress! + written, n - written) }
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else {
                    failure = "write \(tmp): \(String(cString: strerror(errno)))"
                    break copying
                }
                written += w
            }
        }
        close(dst)
        if let failure {
            unlink(tmp)
            return failure
        }
        guard rename(tmp, kept) == 0 else { return "rename \(tmp): \(String(cString: strerror(errno)))" }
        guard truncate(path, 0) == 0 else { return "truncate \(path): \(String(cString: strerror(errno)))" }
        return nil
    }

    /// The file this process's descriptor `fd` writes to, if it is a regular file (stderr
    /// redirected to a log file by `peer up`); nil for a pipe, a socket or a terminal (journald).
    public static func regularFile(ofDescriptor fd: Int32) -> String? {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/fd/\(fd)", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
