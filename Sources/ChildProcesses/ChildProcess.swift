#if canImport(Glibc)
import Glibc
#endif

/// The one way this project starts a child process: posix_spawn (never fork: forking a
/// multithreaded Swift process is unsafe), then waiting on that one pid (never waitpid(-1):
/// other parts of the same process own other children). Why not swift-subprocess: docs/adr/0011.
///
/// Every child:
/// - reads stdin from /dev/null (or a given file) and appends stdout and stderr to one file;
/// - has an empty signal mask and every signal at its default disposition: the peer ignores
///   SIGPIPE (the Swift runtime) and, in `peer run`, SIGTERM and SIGINT, and an ignored
///   disposition survives exec, which would make the child deaf to SIGTERM;
/// - inherits no descriptor above 2 (a listening socket of the peer or of a test must not leak);
/// - leads its own process group, or its own session: a signal to the caller's group (a
///   Ctrl-C) does not reach it, and the caller can signal the child and everything it forked.
///
/// A caller whose launcher sets PR_SET_PDEATHSIG must spawn from a thread that lives as long
/// as the process (Linux fires it when the spawning THREAD exits): `SpawnThread`, or a
/// long-lived thread of its own.
public enum ChildProcess {
    public enum Grouping: Sendable, Hashable {
        /// Leads a new process group in the caller's session (POSIX_SPAWN_SETPGROUP).
        case ownProcessGroup
        /// Leads a new session (POSIX_SPAWN_SETSID): detached from the caller's terminal.
        case newSession
    }

    public struct Options: Sendable, Hashable {
        /// Where stdout and stderr are appended (created if missing).
        public var outputPath: String
        /// The permission bits of a created output file.
        public var outputMode: mode_t
        /// `KEY=value` entries; nil passes the caller's environment on.
        public var environment: [String]?
        public var grouping: Grouping
        /// When true, an `argv[0]` without a slash is looked up in PATH.
        public var searchPath: Bool
        /// The file the child reads as stdin.
        public var inputPath: String = "/dev/null"
        /// Where stderr is appended; nil: the same file as stdout.
        public var errorPath: String?

        public init(outputPath: String, outputMode: mode_t = 0o644, environment: [String]? = nil, grouping: Grouping = .ownProcessGroup, searchPath: Bool = true) {
            self.outputPath = outputPath
            self.outputMode = outputMode
            self.environment = environment
            self.grouping = grouping
            self.searchPath = searchPath
        }
    }

    /// Starts `argv` (`argv[0]` is the program) and returns its pid.
    public static func spawn(_ argv: [String], _ options: Options) throws(SpawnError) -> pid_t {
        precondition(!argv.isEmpty, "ChildProcess.spawn: empty argv")
        let program = argv[0]
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
        sigdelset(&allSignals, SIGKILL)
        sigdelset(&allSignals, SIGSTOP)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        switch options.grouping {
        case .ownProcessGroup: flags |= Int32(POSIX_SPAWN_SETPGROUP)
        case .newSession: flags |= Self.setSessionFlag
        }
        try check(posix_spawnattr_setflags(&attributes, Int16(flags)), program, "posix_spawnattr_setflags")
        try check(posix_spawnattr_setpgroup(&attributes, 0), program, "posix_spawnattr_setpgroup")
        try check(posix_spawnattr_setsigmask(&attributes, &emptyMask), program, "posix_spawnattr_setsigmask")
        try check(posix_spawnattr_setsigdefault(&attributes, &allSignals), program, "posix_spawnattr_setsigdefault")

        try check(posix_spawn_file_actions_addopen(&actions, 0, options.inputPath, O_RDONLY, 0), program, "open \(options.inputPath) as stdin")
        try check(posix_spawn_file_actions_addopen(&actions, 1, options.outputPath, O_WRONLY | O_APPEND | O_CREAT, options.outputMode), program, "open \(options.outputPath) as stdout")
        if let errorPath = options.errorPath {
            try check(posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_APPEND | O_CREAT, options.outputMode), program, "open \(errorPath) as stderr")
        } else {
            try check(posix_spawn_file_actions_adddup2(&actions, 1, 2), program, "dup stdout to stderr")
        }
        try check(addCloseFrom(&actions, 3), program, "close descriptors above 2")

        let cArgv = argv.map { strdup($0) } + [nil]
        defer { cArgv.forEach { free($0) } }
        var pid: pid_t = 0
        let result: Int32
        if let environment = options.environment {
            let cEnvironment = environment.map { strdup($0) } + [nil]
            defer { cEnvironment.forEach { free($0) } }
            result = options.searchPath
                ? posix_spawnp(&pid, program, &actions, &attributes, cArgv, cEnvironment)
                : posix_spawn(&pid, program, &actions, &attributes, cArgv, cEnvironment)
        } else {
            result = options.searchPath
                ? posix_spawnp(&pid, program, &actions, &attributes, cArgv, environ)
                : posix_spawn(&pid, program, &actions, &attributes, cArgv, environ)
        }
        guard result == 0 else { throw SpawnError(program: program, operation: "posix_spawn", errno: result) }
        return pid
    }

    /// glibc's POSIX_SPAWN_SETSID (2.26+), which Swift's Glibc module does not export.
    static let setSessionFlag: Int32 = 0x80

    private static func check(_ result: Int32, _ program: String, _ operation: String) throws(SpawnError) {
        guard result == 0 else { throw SpawnError(program: program, operation: operation, errno: result) }
    }

    private typealias CloseFromFunction = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+) is declared under _GNU_SOURCE,
    /// which Swift's Glibc module does not see, so it is looked up at run time. Without it, the
    /// descriptors open in /proc/self/fd are closed one by one (racy only against descriptors
    /// opened concurrently without O_CLOEXEC).
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

/// A child that could not be started: which program, which step, and the system's reason.
public struct SpawnError: Error, Sendable, Hashable, CustomStringConvertible {
    public let program: String
    public let operation: String
    public let errno: Int32

    public init(program: String, operation: String, errno: Int32) {
        self.program = program
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "cannot start \(program): \(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
