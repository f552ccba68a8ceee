import ChildProcesses
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Every process this benchmark starts, by pid. It signals only these, never a name or a group,
/// and reaps each one itself (started through ChildProcesses, so nothing else waits on them).
final class Children: Sendable {
    static let shared = Children()

    /// pid -> what it is (for messages).
    private let live = Mutex<[pid_t: String]>([:])

    var running: [(pid_t, String)] { live.withLock { $0.map { ($0.key, $0.value) } } }

    /// Starts `executable arguments...` (ChildProcesses: stdin from /dev/null, stdout and
    /// stderr appended to `logFile`, its own process group, so a Ctrl-C on the terminal
    /// reaches only this benchmark, which then stops its children itself).
    func spawn(_ executable: String, _ arguments: [String], logFile: String, label: String) throws -> pid_t {
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn([executable] + arguments, .init(outputPath: logFile, outputMode: 0o640, searchPath: false))
        } catch {
            throw BenchError(error.description)
        }
        live.withLock { $0[pid] = label }
        return pid
    }

    /// Reaps `pid` if it has exited; says how then, nil while it runs.
    func reapIfExited(_ pid: pid_t) -> ChildExit? {
        guard let exit = ChildProcess.reapIfExited(pid) else { return nil }
        live.withLock { _ = $0.removeValue(forKey: pid) }
        return exit
    }

    /// Waits (bounded) for `pid` to exit; true if it did.
    func waitExit(_ pid: pid_t, seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if reapIfExited(pid) != nil { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return reapIfExited(pid) != nil
    }

    /// SIGKILL now, then reap (bounded).
    func kill9(_ pid: pid_t) async {
        guard isOurs(pid) else { return }
        kill(pid, SIGKILL)
        _ = await waitExit(pid, seconds: 10)
    }

    /// SIGKILL, without waiting (reap later with `waitExit`).
    func sendKill(_ pid: pid_t) {
        guard isOurs(pid) else { return }
        kill(pid, SIGKILL)
    }

    /// SIGTERM, wait up to `graceSeconds`, then SIGKILL.
    func stop(_ pid: pid_t, graceSeconds: Double = 20) async {
        guard isOurs(pid) else { return }
        kill(pid, SIGTERM)
        if await waitExit(pid, seconds: graceSeconds) { return }
        await kill9(pid)
    }

    func isOurs(_ pid: pid_t) -> Bool { live.withLock { $0[pid] != nil } }

    /// For the signal handler and the last line of defence: SIGTERM to every child still
    /// running, up to 5 s, then SIGKILL. Synchronous.
    func stopAllNow() {
        let pids = live.withLock { Array($0.keys) }
        for pid in pids { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        var left = Set(pids)
        while !left.isEmpty && Date() < deadline {
            left = left.filter { reapIfExited($0) == nil }
            if !left.isEmpty { usleep(20_000) }
        }
        for pid in left {
            kill(pid, SIGKILL)
            _ = ChildProcess.reapBlocking(pid)
            live.withLock { _ = $0.removeValue(forKey: pid) }
        }
    }

    /// Runs a short command to completion, blocking this thread (cleanup in the signal
    /// handler); nil if it could not start.
    @discardableResult
    func runNow(_ executable: String, _ arguments: [String], logFile: String) -> ChildExit? {
        guard let pid = try? spawn(executable, arguments, logFile: logFile, label: URL(fileURLWithPath: executable).lastPathComponent) else { return nil }
        let exit = ChildProcess.reapBlocking(pid)
        live.withLock { _ = $0.removeValue(forKey: pid) }
        return exit
    }

    /// Runs a command to completion (bounded by `timeoutSeconds`), output captured in `logFile`.
    func run(_ executable: String, _ arguments: [String], logFile: String, timeoutSeconds: Double) async throws -> (status: ChildExit, output: String) {
        let pid = try spawn(executable, arguments, logFile: logFile, label: URL(fileURLWithPath: executable).lastPathComponent)
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        var status: ChildExit?
        while status == nil && ContinuousClock.now < deadline {
            status = reapIfExited(pid)
            if status == nil { try? await Task.sleep(for: .milliseconds(20)) }
        }
        let output = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
        guard let status else {
            await kill9(pid)
            throw BenchError("\(executable) \(arguments.joined(separator: " ")) did not finish within \(Int(timeoutSeconds)) s; output:\n\(output.suffix(2000))")
        }
        return (status, output)
    }
}

struct MemorySample: Sendable {
    var rssKiB: Int
    var anonKiB: Int
    var fileKiB: Int
    /// Proportional set size: shared pages divided among the processes that map them.
    var pssKiB: Int
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

enum Machine {
    /// Distinct free loopback TCP ports: all bound at once (so no duplicates), then released.
    static func freePorts(_ n: Int) throws -> [Int] {
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        var ports: [Int] = []
        for _ in 0..<n {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw BenchError("socket: errno \(errno)") }
            fds.append(fd)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
            }
            guard ok else { throw BenchError("bind on 127.0.0.1: errno \(errno)") }
            ports.append(Int(UInt16(bigEndian: addr.sin_port)))
        }
        return ports
    }

    /// Resident memory of a process in KiB, from /proc/<pid>/status: VmRSS, and its parts
    /// RssAnon (private heap and stacks) and RssFile (mapped files: the binary, shared libraries).
    static func memory(_ pid: pid_t) -> MemorySample? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        var fields: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, ["VmRSS", "RssAnon", "RssFile"].contains(String(parts[0])) else { continue }
            fields[String(parts[0])] = Int(parts[1].trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        }
        guard let rss = fields["VmRSS"] else { return nil }
        var pss = 0
        if let rollup = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) {
            for line in rollup.split(separator: "\n") where line.hasPrefix("Pss:") {
                pss = Int(line.dropFirst(4).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "") ?? 0
            }
        }
        return MemorySample(rssKiB: rss, anonKiB: fields["RssAnon"] ?? 0, fileKiB: fields["RssFile"] ?? 0, pssKiB: pss)
    }

    /// CPU time (user + system) a process has used, in seconds, from /proc/<pid>/stat.
    static func cpuSeconds(_ pid: pid_t) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// CPU seconds the hypervisor gave to other guests while this machine's vCPUs wanted to run
    /// ("steal", summed over all vCPUs, from /proc/stat). Nil where the kernel does not count it.
    static func stealSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        // cpu user nice system idle iowait irq softirq steal ...
        let fields = line.split(separator: " ")
        guard fields.count > 8, let steal = Double(fields[8]) else { return nil }
        return steal / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The 1-minute load average.
    static func load1() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
        return String(text.split(separator: " ").first ?? "?")
    }

    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "?" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?"
        }
        return "?"
    }

    static func kernel() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// An executable: the path if it has a slash, else the first match on PATH.
    static func which(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    static func randomHex(_ bytes: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    static func tail(_ path: String, lines: Int = 12) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "(no log at \(path))" }
        let text = String(decoding: data.suffix(16 * 1024), as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
