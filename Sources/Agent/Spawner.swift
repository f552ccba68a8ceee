#if canImport(Glibc)
import Glibc
#endif

/// Starts one child with posix_spawn (never fork: forking a multithreaded Swift process is
/// unsafe). The child:
/// - leads its own process group (POSIX_SPAWN_SETPGROUP, pgid 0), so the agent can signal it
///   and everything it forks with `kill(-pgid, ...)`;
/// - has an empty signal mask (POSIX_SPAWN_SETSIGMASK) and default dispositions for every
///   signal (POSIX_SPAWN_SETSIGDEF): the peer ignores SIGTERM, SIGINT and SIGPIPE, and ignored
///   dispositions would otherwise be inherited across exec, making the child deaf to SIGTERM;
/// - reads stdin from /dev/null and appends stdout and stderr to its log file;
/// - inherits no other file descriptor (closefrom 3).
///
/// Callers must spawn only from the agent's one long-lived thread: the peer's launcher sets
/// PR_SET_PDEATHSIG, which Linux fires when the THREAD that spawned the child exits, not the
/// process. See `AgentThread`.
enum Spawner {
    struct Failure: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// Spawns `executable` with `argv` (argv[0] included) and `environment` ("KEY=value").
    static func spawn(executable: String, argv: [String], environment: [String], logPath: String) throws(Failure) -> Int32 {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }

        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        let flags = Int32(POSIX_SPAWN_SETPGROUP) | Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        try check(posix_spawnattr_setflags(&attributes, Int16(flags)), "posix_spawnattr_setflags")
        try check(posix_spawnattr_setpgroup(&attributes, 0), "posix_spawnattr_setpgroup")
        try check(posix_spawnattr_setsigmask(&attributes, &emptyMask), "posix_spawnattr_setsigmask")
        try check(posix_spawnattr_setsigdefault(&attributes, &allSignals), "posix_spawnattr_setsigdefault")

        try check(posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0), "addopen stdin")
        try check(posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_APPEND | O_CREAT, 0o644), "addopen log")
        try check(posix_spawn_file_actions_adddup2(&actions, 1, 2), "adddup2 stderr")
        try check(addCloseFrom(&actions, 3), "addclosefrom")

        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup($0) } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, cArgv, cEnvironment)
        guard result == 0 else {
            throw Failure(message: "posix_spawn \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    private static func check(_ result: Int32, _ what: String) throws(Failure) {
        guard result == 0 else { throw Failure(message: "\(what): \(String(cString: strerror(result)))") }
    }

    private typealias CloseFromFunction = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+) is declared under _GNU_SOURCE,
    /// which Swift's Glibc module does not see, so it is looked up at run time. Without it, the
    /// descriptors open in /proc/self/fd are closed one by one (racy only against fds opened
    /// concurrently without O_CLOEXEC).
    private static let closeFrom: CloseFromFunction? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: CloseFromFunction.self)
    }()

    private static func addCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ lowest: Int32) -> Int32 {
        if let closeFrom { return closeFrom(actions, lowest) }
        guard let directory = opendir("/proc/self/fd") else { return errno }
        defer { closedir(directory) }
        let own = dirfd(directory)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let fd = Int32(name), fd >= lowest, fd != own else { continue }
            let result = posix_spawn_file_actions_addclose(actions, fd)
            if result != 0 { return result }
        }
        return 0
    }
}

/// How a reaped child ended, from waitid's siginfo.
enum ExitReason: Hashable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(Int32)
    /// The child was reaped by someone else: its status is unknown.
    case unknown

    var description: String {
        switch self {
        case .exited(let code): "exit code \(code)"
        case .signaled(let signal): "signal \(signal)"
        case .unknown: "unknown (reaped elsewhere)"
        }
    }
}

/// Child-process operations on ONE known pid each; never waitpid(-1), because other parts of
/// the peer own other children.
enum ChildProcess {
    enum Observation: Hashable {
        case running
        /// Exited and not reaped yet (a zombie): safe to signal its group, then reap.
        case exited(ExitReason)
        /// Not our child any more (ECHILD: something else reaped it). Its pid may already be
        /// reused, so it must never be signalled again.
        case lost
    }

    /// Whether `pid` has exited, without reaping it (WNOWAIT): the zombie keeps the pid and
    /// its process group id reserved, so the agent can still signal the group safely.
    static func observe(_ pid: Int32) -> Observation {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 {
            if errno != EINTR { return .lost }
        }
        guard info._sifields._sigchld.si_pid == pid else { return .running }
        let status = info._sifields._sigchld.si_status
        return .exited(info.si_code == Int32(CLD_EXITED) ? .exited(code: status) : .signaled(status))
    }

    /// Reaps an exited child (it must have exited: this blocks otherwise).
    static func reap(_ pid: Int32) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// Sends `signal` to the group led by `pgid`; ESRCH (group gone) is fine.
    static func signalGroup(_ pgid: Int32, _ signal: Int32) {
        precondition(pgid > 1, "refusing to signal process group \(pgid)")
        _ = kill(-pgid, signal)
    }

    static func signalProcess(_ pid: Int32, _ signal: Int32) {
        precondition(pid > 1, "refusing to signal pid \(pid)")
        _ = kill(pid, signal)
    }
}
