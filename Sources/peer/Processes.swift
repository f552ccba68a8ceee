import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Starting and finding background peer processes by pid file. A pid is trusted only while
/// /proc/<pid>/cmdline still shows `peer run ... --id <id>`: a stale pid file whose number the
/// kernel reused for another program is never signalled.
enum PeerProcesses {
    /// The running binary's own path (so `peer up` starts the same build).
    static func selfExecutable() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 { return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return CommandLine.arguments[0]
    }

    /// The pid in `pidFile` if that process is a running `peer run` for peer `id`.
    static func runningPID(pidFile: String, id: UInt64) -> pid_t? {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0
        else { return nil }
        return isPeer(pid: pid, id: id) ? pid : nil
    }

    static func isPeer(pid: pid_t, id: UInt64) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard args.contains("run"), let i = args.firstIndex(of: "--id"), i + 1 < args.count else { return false }
        // A zombie has an empty cmdline; a live peer names its id.
        return args[i + 1] == String(id)
    }

    /// Starts `peer run --config CONFIG --id ID` in its own session (so a Ctrl-C aimed at the
    /// terminal's process group does not reach it), stdin from /dev/null, stdout and stderr
    /// appended to `logFile`. Returns the pid.
    static func spawn(config: String, id: UInt64, logFile: String) throws -> pid_t {
        let exe = selfExecutable()
        let args = [exe, "run", "--config", config, "--id", String(id)]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logFile, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        let setsid: Int16 = 0x80  // POSIX_SPAWN_SETSID (glibc >= 2.26)
        posix_spawnattr_setflags(&attr, setsid)
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, cargs, environ)
        guard rc == 0 else { throw CLIError("cannot start \(exe): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// True if our child `pid` has exited (reaps it), with how: `exit code N` or `signal N`.
    static func childExited(_ pid: pid_t) -> (exited: Bool, how: String) {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        let exited = r == pid || (r == -1 && errno == ECHILD)
        let how = (status & 0x7f) == 0 ? "exit code \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
        return (exited, how)
    }

    static func alive(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

    /// The last `lines` lines of a log file (for "why did it not start").
    static func tail(_ path: String, lines: Int = 15) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "(no log at \(path))" }
        let text = String(decoding: data.suffix(64 * 1024), as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
