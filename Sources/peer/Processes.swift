import ChildProcesses
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
    /// terminal's process group does not reach it), stdout and stderr appended to `logFile`.
    /// Returns the pid.
    static func spawn(config: String, id: UInt64, logFile: String, existing: Bool = false, executable: String? = nil) throws -> pid_t {
        let exe = executable ?? selfExecutable()
        do {
            return try ChildProcess.spawn(
                [exe, "run", "--config", config, "--id", String(id)] + (existing ? ["--existing"] : []),
                .init(outputPath: logFile, outputMode: 0o640, grouping: .newSession, searchPath: false))
        } catch {
            throw CLIError(error.description)
        }
    }

    static func alive(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

    /// SIGTERM to peer `id` at `pid`, then waits up to `timeoutSeconds` for it to exit (checked
    /// against /proc, so a reused pid does not count as the peer). True once it is gone.
    static func stop(id: UInt64, pid: pid_t, timeoutSeconds: Int) async -> Bool {
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
        while isPeer(pid: pid, id: id) && alive(pid) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return true
    }

    /// The last `lines` lines of a log file (for "why did it not start").
    static func tail(_ path: String, lines: Int = 15) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "(no log at \(path))" }
        let text = String(decoding: data.suffix(64 * 1024), as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
