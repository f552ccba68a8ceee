#if canImport(Glibc)
import Glibc
#endif

/// How a child ended.
public enum ChildExit: Sendable, Hashable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(Int32)
    /// Reaped by someone else (or never ours): how it ended is unknown.
    case unknown

    /// From a `waitpid` status word.
    public init(waitStatus status: Int32) {
        let signal = status & 0x7F
        self = signal == 0 ? .exited(code: (status >> 8) & 0xFF) : .signaled(signal)
    }

    /// The shell's convention: the exit code, or 128 + the signal; -1 when unknown.
    public var shellCode: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        case .unknown: -1
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exit code \(code)"
        case .signaled(let signal): "signal \(signal)"
        case .unknown: "unknown (reaped elsewhere)"
        }
    }
}

/// Waiting for and signalling ONE known child each.
extension ChildProcess {
    public enum Observation: Sendable, Hashable {
        case running
        /// Exited and not reaped yet (a zombie): its pid and process group id stay reserved,
        /// so signalling its group is still safe; then `reap`.
        case exited(ChildExit)
        /// Not our child (ECHILD: something else reaped it). Its pid may be reused already, so
        /// it must never be signalled again.
        case lost
    }

    /// Whether `pid` has exited, without reaping it (WNOWAIT).
    public static func observe(_ pid: pid_t) -> Observation {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 {
            if errno != EINTR { return .lost }
        }
        guard info._sifields._sigchld.si_pid == pid else { return .running }
        let status = info._sifields._sigchld.si_status
        return .exited(info.si_code == Int32(CLD_EXITED) ? .exited(code: status) : .signaled(status))
    }

    /// True once the child has ended (or is not ours), without reaping it.
    public static func hasExited(_ pid: pid_t) -> Bool {
        observe(pid) != .running
    }

    /// Reaps the child if it has ended and says how; nil while it runs. A pid that is not (or
    /// no longer) our child counts as ended: `.unknown`.
    public static func reapIfExited(_ pid: pid_t) -> ChildExit? {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return ChildExit(waitStatus: status) }
            if result == 0 { return nil }
            if errno == EINTR { continue }
            return .unknown
        }
    }

    /// Waits for the child to end and reaps it. Only for a child that has exited or was sent
    /// SIGKILL: this blocks the calling thread until then.
    public static func reapBlocking(_ pid: pid_t) -> ChildExit {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, 0)
            if result == pid { return ChildExit(waitStatus: status) }
            if result < 0 && errno == EINTR { continue }
            return .unknown
        }
    }

    /// Sends `signal` to the group led by `pgid`; ESRCH (group gone) is fine.
    public static func signalGroup(_ pgid: pid_t, _ signal: Int32) {
        precondition(pgid > 1, "refusing to signal process group \(pgid)")
        _ = kill(-pgid, signal)
    }

    public static func signalProcess(_ pid: pid_t, _ signal: Int32) {
        precondition(pid > 1, "refusing to signal pid \(pid)")
        _ = kill(pid, signal)
    }
}
