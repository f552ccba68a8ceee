#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a child process ended.
enum ChildExit: Sendable, Hashable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(signal: Int32)

    init(waitStatus status: Int32) {
        let signal = status & 0x7F
        self = signal == 0 ? .exited(code: (status >> 8) & 0xFF) : .signaled(signal: signal)
    }

    var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signaled(let signal): return "killed by signal \(signal)"
        }
    }
}

/// posix_spawn and waitpid, with what nginx needs: its own process group (signals to our
/// process group do not reach it; we signal its whole group only on a forced stop), default
/// signal dispositions and an empty mask (the Swift runtime ignores SIGPIPE, and ignored
/// dispositions survive exec), stdin from /dev/null, output to a file, and no inherited
/// descriptor above 2 (a test's or peer's listening socket must not leak into nginx).
enum ChildProcess {
    /// Starts `argv` (`argv[0]` is a path, or a name looked up in PATH). Output (stdout and
    /// stderr) is appended to `outputPath`.
    static func spawn(_ argv: [String], outputPath: String) throws(RouterError) -> pid_t {
        precondition(!argv.isEmpty, "ChildProcess.spawn: empty argv")
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let closeFrom = closeFromAction { _ = closeFrom(&actions, 3) }

        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArguments.append(nil)
        defer { for argument in cArguments { free(argument) } }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, argv[0], &actions, &attributes, cArguments, environ)
        guard result == 0 else { throw RouterError.spawnFailed(program: argv[0], errno: result) }
        return pid
    }

    /// glibc ≥ 2.34's `posix_spawn_file_actions_addclosefrom_np`, looked up at run time (the
    /// Swift Glibc module does not export it). Without it, only descriptors opened with
    /// O_CLOEXEC/SOCK_CLOEXEC (all of this module's) stay out of the child.
    private static let closeFromAction: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// The child's exit if it has ended (reaping it), nil while it runs. A pid that is not
    /// (or no longer) our child counts as ended: `.exited(code: -1)`.
    static func reapIfExited(_ pid: pid_t) -> ChildExit? {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return ChildExit(waitStatus: status) }
            if result == 0 { return nil }
            if errno == EINTR { continue }
            return .exited(code: -1)
        }
    }

    /// True once the child has ended, without reaping it: its pid (and so its process group
    /// id) stays reserved until `reapIfExited`, so signalling the group is still safe.
    static func hasExited(_ pid: pid_t) -> Bool {
        var info = siginfo_t()
        while true {
            let result = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
            if result == 0 { return info._sifields._kill.si_pid == pid }
            if errno == EINTR { continue }
            return true
        }
    }
}

extension ChildProcess {
    /// Waits for the child to end and reaps it. Only for a child that was sent SIGKILL.
    static func reapIfExitedBlocking(_ pid: pid_t) -> ChildExit? {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, 0)
            if result == pid { return ChildExit(waitStatus: status) }
            if result < 0 && errno == EINTR { continue }
            return nil
        }
    }
}
