import Logging

/// How one ``Agent`` runs: where its files live, how children are launched, and the
/// supervision timings. Defaults suit production; tests shorten the timings.
public struct AgentConfiguration: Sendable {
    /// Absolute directory of the agent's files: tenant files `tenants/<component>.txt`, logs
    /// `logs/<component>.log` and the crash-recovery state file `components.json`.
    public var directory: String
    /// Program and arguments put before a component's command when spawning. The peer passes
    /// `[peer-exec, "--parent", PID, "--"]`, which sets PR_SET_PDEATHSIG and execs the command,
    /// so the component dies with the peer. Empty: the command is spawned directly. The first
    /// element must be an absolute path.
    public var launcher: [String]
    /// Delay before the first restart after a crash; doubled for each further crash within
    /// `crashWindow`, up to `backoffMax`.
    public var backoffInitial: Duration
    public var backoffMax: Duration
    /// This many crashes within `crashWindow` put a component in ``ComponentState/crashLoop``.
    public var crashLoopLimit: Int
    public var crashWindow: Duration
    /// Time between health probes (and CPU/memory samples) of each running component.
    public var healthInterval: Duration
    /// Time one round of probes may take (connect, request and response) before it fails.
    public var healthTimeout: Duration
    /// A component that has not answered 2xx this long after its start is ``ComponentState/unhealthy``.
    public var startupGrace: Duration
    /// Consecutive failed probes after which a healthy component is ``ComponentState/unhealthy``.
    public var unhealthyAfterFailures: Int
    /// Time between checks for exited children (waitid on each known pid).
    public var reapInterval: Duration
    public var logger: Logger

    public init(
        directory: String,
        launcher: [String] = [],
        backoffInitial: Duration = .milliseconds(200),
        backoffMax: Duration = .seconds(30),
        crashLoopLimit: Int = 5,
        crashWindow: Duration = .seconds(60),
        healthInterval: Duration = .seconds(1),
        healthTimeout: Duration = .milliseconds(800),
        startupGrace: Duration = .seconds(30),
        unhealthyAfterFailures: Int = 3,
        reapInterval: Duration = .milliseconds(50),
        logger: Logger = Logger(label: "peer.agent")
    ) {
        self.directory = directory
        self.launcher = launcher
        self.backoffInitial = backoffInitial
        self.backoffMax = backoffMax
        self.crashLoopLimit = crashLoopLimit
        self.crashWindow = crashWindow
        self.healthInterval = healthInterval
        self.healthTimeout = healthTimeout
        self.startupGrace = startupGrace
        self.unhealthyAfterFailures = unhealthyAfterFailures
        self.reapInterval = reapInterval
        self.logger = logger
    }

    var tenantsDirectory: String { directory + "/tenants" }
    var logsDirectory: String { directory + "/logs" }
    var stateFilePath: String { directory + "/components.json" }
    func tenantFilePath(_ component: String) -> String { tenantsDirectory + "/" + component + ".txt" }
    func logFilePath(_ component: String) -> String { logsDirectory + "/" + component + ".log" }

    var restartPolicy: RestartPolicy {
        RestartPolicy(backoffInitial: backoffInitial, backoffMax: backoffMax, crashLoopLimit: crashLoopLimit, crashWindow: crashWindow)
    }

    /// Preconditions on values a programmer sets (not outside input).
    func checkInvariants() {
        precondition(directory.hasPrefix("/"), "AgentConfiguration.directory must be absolute: \(directory)")
        precondition(launcher.first.map { $0.hasPrefix("/") } ?? true, "AgentConfiguration.launcher[0] must be absolute: \(launcher)")
        precondition(backoffInitial > .zero && backoffMax >= backoffInitial, "backoff must be 0 < initial <= max: \(backoffInitial), \(backoffMax)")
        precondition(crashLoopLimit >= 1 && crashLoopLimit <= RestartPolicy.crashesRememberedMax, "crashLoopLimit must be 1...\(RestartPolicy.crashesRememberedMax): \(crashLoopLimit)")
        precondition(crashWindow > .zero, "crashWindow must be positive")
        precondition(healthInterval > .zero && healthTimeout > .zero, "health interval and timeout must be positive")
        precondition(unhealthyAfterFailures >= 1, "unhealthyAfterFailures must be >= 1")
        precondition(reapInterval > .zero, "reapInterval must be positive")
    }
}
