import Dispatch
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Runs one local nginx and moves it from config to config (ARCHITECTURE §10): render,
/// validate with `nginx -t`, swap the file atomically, start or reload (SIGHUP), then
/// confirm through the control server's `/generation` that the new config is really live.
///
/// Files in `prefix`: `nginx.conf` (always the config nginx runs), `nginx.conf.<N>.tmp`
/// (a candidate), `nginx.conf.prev` (during an apply), `nginx.conf.failed` (the last config
/// that validated but did not go live), `error.log`, `nginx.out` (the master's
/// stdout/stderr), `nginx.pid`, and nginx's temp and cache directories.
///
/// Port conflicts: `nginx -t` does call bind() for every listen address, but in test mode it
/// ignores EADDRINUSE (verified with nginx 1.22.1: a port held by another process passes
/// `nginx -t -q`). So a taken port is only seen when nginx loads the config: at start the
/// master exits; on reload it logs `bind() ... failed (98: Address already in use)` and
/// `still could not bind()` and keeps the old config. Both surface here as
/// `RouterError.reloadNotConfirmed`, with those lines in `errorLogTail`.
///
/// An actor: applies are serialized. Blocking work (probes, file I/O) is short and bounded;
/// probes run on a Dispatch thread, not the cooperative pool.
public actor NginxRouter {
    /// Bound on what is kept of `nginx -t`'s output.
    public static let nginxOutputBytesMax = 16 * 1024
    /// Bound on `RouterError.reloadNotConfirmed.errorLogTail`.
    public static let errorLogTailLinesMax = 20
    /// How much of error.log is read for the tail (the end of what this apply added).
    static let errorLogReadBytesMax = 64 * 1024
    static let pollInterval: Duration = .milliseconds(20)
    /// One `/generation` probe; the confirmation loop retries until `confirmTimeout`.
    static let probeTimeout: Duration = .milliseconds(500)
    /// `nginx -t` on a 100,000-tenant config takes well under this.
    static let validateTimeout: Duration = .seconds(60)

    public nonisolated let nginxBinary: String
    public nonisolated let prefix: String
    /// Put before the nginx command line when starting the master (e.g. a guard that makes
    /// nginx die with the peer). SIGHUP and SIGQUIT go to the spawned pid, so the launcher
    /// must exec nginx or forward them; a forced stop signals the whole process group.
    /// Note: nginx workers outlive a killed master (verified with 1.22.1), so a guard should
    /// kill nginx's process group, not only the master.
    public nonisolated let launcher: [String]
    /// How long the control server has to answer a new generation after a start or reload.
    public nonisolated let confirmTimeout: Duration
    /// How long `stop()` waits after SIGQUIT before SIGKILL.
    public nonisolated let stopTimeout: Duration
    private let logger: Logger

    /// The running master (our child, leader of its own process group), nil if none.
    private var masterPID: pid_t?
    /// The generation and control address last confirmed; they describe `nginx.conf`.
    private var confirmedGeneration: UInt64?
    private var confirmedControlListen: String?
    private var lastError: String?

    var configPath: String { prefix + "/nginx.conf" }
    var previousPath: String { prefix + "/nginx.conf.prev" }
    var failedPath: String { prefix + "/nginx.conf.failed" }
    var errorLogPath: String { prefix + "/error.log" }
    var outputPath: String { prefix + "/nginx.out" }

    /// - Parameters:
    ///   - prefix: absolute directory for nginx's files; created (0755) on the first apply.
    ///   - launcher: e.g. `[peer-exec, "--parent", PID, "--guard", "--"]` so nginx and its
    ///     workers die with the peer.
    public init(
        nginxBinary: String = "/usr/sbin/nginx",
        prefix: String,
        launcher: [String] = [],
        logger: Logger,
        confirmTimeout: Duration = .seconds(5),
        stopTimeout: Duration = .seconds(10)
    ) {
        self.nginxBinary = nginxBinary
        self.prefix = prefix
        self.launcher = launcher
        self.logger = logger
        self.confirmTimeout = confirmTimeout
        self.stopTimeout = stopTimeout
    }

    /// The master's pid, the live generation and the last error. Notices a dead master.
    public var status: RouterStatus {
        noteMasterExit()
        return RouterStatus(pid: masterPID, liveGeneration: masterPID == nil ? nil : confirmedGeneration, lastError: lastError)
    }

    /// Makes `spec` the live config, starting nginx if it is not running (or died). On any
    /// error the live config and `nginx.conf` are the previous ones (see `RouterError`).
    public func apply(_ spec: RouterSpec) async throws(RouterError) -> AppliedConfig {
        do {
            return try await applyChecked(spec)
        } catch {
            lastError = error.description
            logger.warning("router: generation \(spec.generation) not applied: \(error.description)")
            throw error
        }
    }

    private func applyChecked(_ spec: RouterSpec) async throws(RouterError) -> AppliedConfig {
        let began = ContinuousClock.now
        guard spec.prefix == prefix else { throw .prefixMismatch(router: prefix, spec: spec.prefix) }
        // Rendering and writing a large config takes seconds (100,000 tenants: about 70 MB): on
        // a Dispatch thread, so the Swift concurrency pool (a thread per core) stays free for
        // the peer's API and loops meanwhile.
        let prefix = self.prefix
        let candidate = "\(prefix)/nginx.conf.\(spec.generation).tmp"
        let written = await Self.onBlockingThread { () -> Result<Int, RouterError> in
            do throws(RouterError) {
                let text: String
                do throws(RouterSpecError) { text = try NginxConfig.render(spec) } catch { throw .invalidSpec(error) }
                try PrefixFiles.makeDirectory(prefix)
                try PrefixFiles.write(text, to: candidate)
                return .success(text.utf8.count)
            } catch {
                return .failure(error)
            }
        }
        let configBytes = try written.get()
        do {
            try await validate(candidate, generation: spec.generation)
        } catch {
            try? PrefixFiles.remove(candidate)
            throw error
        }
        noteMasterExit()
        let logOffset = PrefixFiles.size(errorLogPath)
        let outputOffset = PrefixFiles.size(outputPath)
        let hadPrevious = PrefixFiles.exists(configPath)
        if hadPrevious { try PrefixFiles.hardLink(configPath, as: previousPath) }
        try PrefixFiles.rename(candidate, to: configPath)

        var started = false
        do {
            if let pid = masterPID {
                kill(pid, SIGHUP)
            } else {
                masterPID = try await spawnMaster()
                started = true
            }
        } catch {
            try rollBack(hadPrevious: hadPrevious)
            throw error
        }
        let confirmed = await waitForGeneration(spec.generation, at: spec.controlListen)
        guard confirmed, let pid = masterPID else {
            let live = await probeLiveGeneration(candidates: [confirmedControlListen, spec.controlListen])
            try rollBack(hadPrevious: hadPrevious)
            let tail = errorLines(since: logOffset, outputSince: outputOffset)
            throw .reloadNotConfirmed(generation: spec.generation, liveGeneration: live, errorLogTail: tail)
        }
        try? PrefixFiles.remove(previousPath)
        confirmedGeneration = spec.generation
        confirmedControlListen = spec.controlListen
        lastError = nil
        let applied = AppliedConfig(generation: spec.generation, pid: pid, started: started, configBytes: configBytes, confirmDuration: began.duration(to: .now))
        logger.info("router: generation \(spec.generation) live (\(started ? "started" : "reloaded") pid \(pid), \(spec.tenants.count) tenants, \(applied.configBytes) bytes, \(applied.confirmDuration))")
        return applied
    }

    /// Starts nginx with the current `nginx.conf` if its master is not running (e.g. it
    /// died), and confirms the last applied generation. Throws `.noConfig` if this router has
    /// not applied a config yet.
    public func ensureRunning() async throws(RouterError) {
        noteMasterExit()
        guard masterPID == nil else { return }
        guard let generation = confirmedGeneration, let control = confirmedControlListen, PrefixFiles.exists(configPath) else {
            throw .noConfig(path: configPath)
        }
        let logOffset = PrefixFiles.size(errorLogPath)
        let outputOffset = PrefixFiles.size(outputPath)
        masterPID = try await spawnMaster()
        guard await waitForGeneration(generation, at: control) else {
            let error = RouterError.reloadNotConfirmed(generation: generation, liveGeneration: nil, errorLogTail: errorLines(since: logOffset, outputSince: outputOffset))
            lastError = error.description
            await stopMaster()
            throw error
        }
        lastError = nil
        logger.info("router: restarted nginx (pid \(masterPID.map(String.init) ?? "-")) with generation \(generation)")
    }

    /// Stops nginx gracefully (SIGQUIT: workers finish their requests), SIGKILL to its
    /// process group after `stopTimeout`; reaps it.
    public func stop() async {
        await stopMaster()
    }

    // MARK: - Steps

    /// `nginx -t -q -p <prefix> -c <file>`: exit status 0 or `.invalidConfig` with its output.
    private func validate(_ file: String, generation: UInt64) async throws(RouterError) {
        let output = "\(prefix)/nginx-test.out"
        try PrefixFiles.remove(output)
        let pid = try ChildProcess.spawn([nginxBinary, "-t", "-q", "-p", prefix + "/", "-c", file], outputPath: output)
        let deadline = ContinuousClock.now + Self.validateTimeout
        var exit = ChildProcess.reapIfExited(pid)
        while exit == nil && ContinuousClock.now < deadline {
            try? await Task.sleep(for: Self.pollInterval)
            exit = ChildProcess.reapIfExited(pid)
        }
        if exit == nil {
            kill(pid, SIGKILL)
            exit = await waitForExit(pid)
        }
        let said = String(decoding: PrefixFiles.read(output, bytesMax: Self.nginxOutputBytesMax), as: UTF8.self)
        try? PrefixFiles.remove(output)
        guard exit == .exited(code: 0) else {
            let reason = exit.map(\.description) ?? "did not end"
            throw .invalidConfig(generation: generation, nginxSaid: said.isEmpty ? "nginx -t \(reason)" : trimmed(said))
        }
    }

    /// On `SpawnThread` (see there for why one long-lived thread).
    private func spawnMaster() async throws(RouterError) -> pid_t {
        let command = launcher + [nginxBinary, "-p", prefix + "/", "-c", configPath, "-g", "daemon off;"]
        let output = outputPath
        let result = await SpawnThread.shared.run { () -> Result<pid_t, RouterError> in
            do throws(RouterError) { return .success(try ChildProcess.spawn(command, outputPath: output)) } catch { return .failure(error) }
        }
        let pid = try result.get()
        logger.info("router: started nginx master pid \(pid)")
        return pid
    }

    /// Polls the control server until it answers `generation`, the master dies, or
    /// `confirmTimeout` passes.
    private func waitForGeneration(_ generation: UInt64, at control: String) async -> Bool {
        let deadline = ContinuousClock.now + confirmTimeout
        while ContinuousClock.now < deadline {
            noteMasterExit()
            guard masterPID != nil else { return false }
            if await Self.probe(control) == generation { return true }
            try? await Task.sleep(for: Self.pollInterval)
        }
        return false
    }

    private func probeLiveGeneration(candidates: [String?]) async -> UInt64? {
        for case let control? in candidates {
            if let generation = await Self.probe(control) { return generation }
        }
        return nil
    }

    /// The generation the control server at `control` answers, nil on any failure.
    static func probe(_ control: String) async -> UInt64? {
        await onBlockingThread {
            guard let reply = try? LoopbackHTTP.request(control, path: "/generation", timeout: probeTimeout),
                  reply.status == 200 else { return nil }
            return parseGeneration(reply.body)
        }
    }

    /// `N\n` (decimal) as the control server renders it; anything else is nil.
    static func parseGeneration(_ body: [UInt8]) -> UInt64? {
        guard body.last == 10, body.count >= 2, body.count <= 21 else { return nil }
        let digits = body.dropLast()
        guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(String(decoding: digits, as: UTF8.self))
    }

    /// Puts the previous config back as `nginx.conf` (keeping the refused one as
    /// `nginx.conf.failed`) and makes nginx run it: SIGHUP if a master runs (harmless if it
    /// kept the old config; needed if the new one went live after the deadline), or stop
    /// it if there was no previous config.
    private func rollBack(hadPrevious: Bool) throws(RouterError) {
        if PrefixFiles.exists(configPath) { try PrefixFiles.hardLink(configPath, as: failedPath) }
        noteMasterExit()
        if hadPrevious {
            try PrefixFiles.rename(previousPath, to: configPath)
            if let pid = masterPID { kill(pid, SIGHUP) }
        } else {
            try PrefixFiles.remove(configPath)
            if let pid = masterPID {
                kill(-pid, SIGKILL)
                _ = ChildProcess.reapIfExitedBlocking(pid)
                masterPID = nil
            }
        }
    }

    /// The `[emerg]`/`[alert]`/`[crit]` lines error.log (or, if none, nginx.out) gained since
    /// the offsets: config and bind failures, never request data.
    private func errorLines(since logOffset: Int, outputSince outputOffset: Int) -> [String] {
        for (path, offset) in [(errorLogPath, logOffset), (outputPath, outputOffset)] {
            let text = String(decoding: PrefixFiles.read(path, from: offset, bytesMax: Self.errorLogReadBytesMax), as: UTF8.self)
            let lines = text.split(separator: "\n").filter { $0.contains("[emerg]") || $0.contains("[alert]") || $0.contains("[crit]") }
            if !lines.isEmpty { return lines.suffix(Self.errorLogTailLinesMax).map(String.init) }
        }
        return []
    }

    /// Reaps a master that died; kills its orphaned workers first (they keep serving after
    /// the master is gone, verified with nginx 1.22.1), while its pid still reserves the
    /// process group id.
    private func noteMasterExit() {
        guard let pid = masterPID, ChildProcess.hasExited(pid) else { return }
        kill(-pid, SIGKILL)
        let exit = ChildProcess.reapIfExited(pid)
        masterPID = nil
        let message = "nginx master \(pid) \(exit.map(\.description) ?? "ended")"
        lastError = message
        logger.warning("router: \(message)")
    }

    private func stopMaster() async {
        noteMasterExit()
        guard let pid = masterPID else { return }
        kill(pid, SIGQUIT)
        let deadline = ContinuousClock.now + stopTimeout
        while !ChildProcess.hasExited(pid) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: Self.pollInterval)
        }
        kill(-pid, SIGKILL)
        let exit = await waitForExit(pid)
        masterPID = nil
        logger.info("router: nginx master \(pid) stopped (\(exit?.description ?? "not reaped"))")
    }

    /// Waits for a child that was sent SIGKILL (bounded: such a child ends at once).
    private func waitForExit(_ pid: pid_t) async -> ChildExit? {
        await Self.onBlockingThread { ChildProcess.reapIfExitedBlocking(pid) }
    }

    private func trimmed(_ text: String) -> String {
        String(text.split(separator: "\n").map { $0.trimmingSpaces() }.joined(separator: " | "))
    }

    static func onBlockingThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }
}
