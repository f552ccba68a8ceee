import ChildProcesses
import Dispatch
import Logging
import LoopbackHTTP
#if canImport(Glibc)
import Glibc
#endif

/// Runs one local nginx and moves it from spec to spec (ARCHITECTURE §10, ADR 0008). When
/// the config itself changes (addresses, upstreams, limit zones, token check): render,
/// validate with `nginx -t`, swap the file atomically, start or reload (SIGHUP), then confirm
/// through the control server's `/config` that the new config is really live. Tenants are
/// not in the config: each apply then sends the route table's changes to the control
/// server's `POST /routes` (the whole table after a start), whose answer confirms them. A
/// tenant change therefore never reloads nginx.
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
    /// One `/config` probe; the confirmation loop retries until `confirmTimeout`.
    static let probeTimeout: Duration = .milliseconds(500)
    /// The control server's answers are a few bytes; anything above this is not nginx's.
    static let controlResponseBytesMax = 4096
    /// `nginx -t` takes well under this (tenants are in the route table, not the config).
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
    /// The secret `POST /routes` requires (`RouterSpec.controlToken`): 256 random bits, new
    /// for every router (nginx.conf, which holds it, is written 0600).
    public nonisolated let controlToken: String
    private let logger: Logger

    /// The running master (our child, leader of its own process group), nil if none.
    private var masterPID: pid_t?
    /// The generation (config and route table) and control address last confirmed.
    private var confirmedGeneration: UInt64?
    private var confirmedControlListen: String?
    /// The live config rendered with generation 0: equal specs that differ only in tenants
    /// render the same, and need no reload.
    private var liveStructure: String?
    /// The generation `nginx.conf` was rendered with (what `/config` answers).
    private var liveConfigGeneration: UInt64?
    private var liveConfigBytes = 0
    private var liveRouteTableMiB: Int?
    /// The route table nginx holds at `tableGeneration`; nil generation: unknown, the next
    /// push sends the whole table.
    private var table: NginxRoutes.Table = [:]
    private var tableGeneration: UInt64?
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
        var generator = SystemRandomNumberGenerator()
        self.controlToken = (0..<4).map { _ in
            let word = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - word.count) + word
        }.joined()
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

    private func applyChecked(_ requested: RouterSpec) async throws(RouterError) -> AppliedConfig {
        let began = ContinuousClock.now
        let spec = { var spec = requested; spec.controlToken = controlToken; return spec }()
        guard spec.prefix == prefix else { throw .prefixMismatch(router: prefix, spec: spec.prefix) }
        // Validating a large spec and building its table take a while (250,000 tenants): on a
        // Dispatch thread, so the Swift concurrency pool (a thread per core) stays free for the
        // peer's API and loops meanwhile.
        let prepared = await Self.onBlockingThread { () -> Result<(structure: String, table: NginxRoutes.Table), RouterError> in
            do throws(RouterSpecError) {
                var structural = spec
                structural.generation = 0
                return .success((try NginxConfig.render(structural), NginxRoutes.table(spec)))
            } catch {
                return .failure(.invalidSpec(error))
            }
        }
        let (structure, table) = try prepared.get()
        noteMasterExit()
        var started = false
        let configChanged = masterPID == nil || structure != liveStructure
        if configChanged {
            started = try await applyConfig(spec)
            liveStructure = structure
            liveConfigGeneration = spec.generation
            liveConfigBytes = PrefixFiles.size(configPath)
            // A new master has a new, empty table; a reload keeps the table (same dict size).
            if started || spec.routeTableMiB != liveRouteTableMiB { tableGeneration = nil }
            liveRouteTableMiB = spec.routeTableMiB
        }
        let push = try await pushRoutes(table, generation: spec.generation, control: spec.controlListen)
        confirmedGeneration = spec.generation
        confirmedControlListen = spec.controlListen
        lastError = nil
        guard let pid = masterPID else { throw .reloadNotConfirmed(generation: spec.generation, liveGeneration: nil, errorLogTail: []) }
        let applied = AppliedConfig(
            generation: spec.generation, pid: pid, started: started, configChanged: configChanged,
            routeChanges: push.sets.count + push.deletes.count, fullRouteTable: push.isFull,
            configBytes: liveConfigBytes, confirmDuration: began.duration(to: .now))
        let how = started ? "started" : configChanged ? "reloaded" : "routes only"
        logger.info("router: generation \(spec.generation) live (\(how), pid \(pid), \(spec.tenants.count) tenants, \(applied.routeChanges) route changes\(push.isFull ? " (full table)" : ""), \(applied.confirmDuration))")
        return applied
    }

    /// Renders, validates and swaps in the config of `spec`, starts nginx or reloads it, and
    /// waits for `/config` to answer the new generation; on failure puts the previous config
    /// back. Returns whether nginx was started.
    private func applyConfig(_ spec: RouterSpec) async throws(RouterError) -> Bool {
        let prefix = self.prefix
        let candidate = "\(prefix)/nginx.conf.\(spec.generation).tmp"
        let written = await Self.onBlockingThread { () -> Result<Void, RouterError> in
            do throws(RouterError) {
                let text: String
                do throws(RouterSpecError) { text = try NginxConfig.render(spec) } catch { throw .invalidSpec(error) }
                try PrefixFiles.makeDirectory(prefix)
                try PrefixFiles.write(text, to: candidate)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try written.get()
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
        let confirmed = await waitForConfig(spec.generation, at: spec.controlListen)
        guard confirmed, masterPID != nil else {
            let live = await probeLiveConfig(candidates: [confirmedControlListen, spec.controlListen])
            try rollBack(hadPrevious: hadPrevious)
            if masterPID == nil { liveStructure = nil }
            let tail = errorLines(since: logOffset, outputSince: outputOffset)
            throw .reloadNotConfirmed(generation: spec.generation, liveGeneration: live, errorLogTail: tail)
        }
        try? PrefixFiles.remove(previousPath)
        return started
    }

    /// Brings nginx's route table to `table` at `generation`: the changes since the table
    /// this router last saw confirmed, or the whole table when that is unknown (a new master,
    /// a failed push) or nginx says its table is at another generation (409).
    private func pushRoutes(_ table: NginxRoutes.Table, generation: UInt64, control: String) async throws(RouterError) -> NginxRoutes.Push {
        let old = self.table
        let base = tableGeneration
        var push = await Self.onBlockingThread {
            base.map { NginxRoutes.delta(from: old, base: $0, to: table, generation: generation) } ?? NginxRoutes.full(table, generation: generation)
        }
        tableGeneration = nil
        var reply = await post(push, to: control)
        if case .success(let answer) = reply, answer.status == 409, !push.isFull {
            logger.warning("router: nginx's route table is at generation \(answer.bodyText.trimmingSpaces()), not \(base.map(String.init) ?? "-"): sending it whole")
            push = await Self.onBlockingThread { NginxRoutes.full(table, generation: generation) }
            reply = await post(push, to: control)
        }
        switch reply {
        case .success(let answer) where answer.status == 200 && Self.parseGeneration(answer.body) == generation:
            self.table = table
            tableGeneration = generation
            return push
        case .success(let answer):
            throw .routesNotApplied(generation: generation, reason: "HTTP \(answer.status): \(String(answer.bodyText.prefix(200)).trimmingSpaces())")
        case .failure(let error):
            throw .routesNotApplied(generation: generation, reason: error.description)
        }
    }

    private func post(_ push: NginxRoutes.Push, to control: String) async -> Result<LoopbackHTTPReply, LoopbackHTTPError> {
        do throws(LoopbackHTTPError) {
            return .success(try await LoopbackHTTPClient.shared.request(
                control, method: .POST, path: "/routes", headers: [("Content-Type", "text/plain"), ("X-Peer-Control", controlToken)],
                body: push.body, timeout: confirmTimeout, responseBytesMax: Self.controlResponseBytesMax))
        } catch {
            return .failure(error)
        }
    }

    /// Starts nginx with the current `nginx.conf` if its master is not running (e.g. it
    /// died), confirms its config and sends it the whole route table of the last applied
    /// generation. Throws `.noConfig` if this router has not applied a config yet.
    public func ensureRunning() async throws(RouterError) {
        noteMasterExit()
        guard masterPID == nil else { return }
        guard let generation = confirmedGeneration, let configGeneration = liveConfigGeneration, let control = confirmedControlListen,
              PrefixFiles.exists(configPath) else {
            throw .noConfig(path: configPath)
        }
        let logOffset = PrefixFiles.size(errorLogPath)
        let outputOffset = PrefixFiles.size(outputPath)
        masterPID = try await spawnMaster()
        guard await waitForConfig(configGeneration, at: control) else {
            let error = RouterError.reloadNotConfirmed(generation: configGeneration, liveGeneration: nil, errorLogTail: errorLines(since: logOffset, outputSince: outputOffset))
            lastError = error.description
            await stopMaster()
            throw error
        }
        tableGeneration = nil
        do {
            _ = try await pushRoutes(table, generation: generation, control: control)
        } catch {
            lastError = error.description
            throw error
        }
        lastError = nil
        logger.info("router: restarted nginx (pid \(masterPID.map(String.init) ?? "-")) with config \(configGeneration) and routes \(generation)")
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
        let pid = try Self.spawn([nginxBinary, "-t", "-q", "-p", prefix + "/", "-c", file], outputPath: output)
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
            do throws(RouterError) { return .success(try Self.spawn(command, outputPath: output)) } catch { return .failure(error) }
        }
        let pid = try result.get()
        logger.info("router: started nginx master pid \(pid)")
        return pid
    }

    /// Polls the control server until `/config` answers `generation`, the master dies, or
    /// `confirmTimeout` passes.
    private func waitForConfig(_ generation: UInt64, at control: String) async -> Bool {
        let deadline = ContinuousClock.now + confirmTimeout
        while ContinuousClock.now < deadline {
            noteMasterExit()
            guard masterPID != nil else { return false }
            if await Self.probe(control, path: "/config") == generation { return true }
            try? await Task.sleep(for: Self.pollInterval)
        }
        return false
    }

    private func probeLiveConfig(candidates: [String?]) async -> UInt64? {
        for case let control? in candidates {
            if let generation = await Self.probe(control, path: "/config") { return generation }
        }
        return nil
    }

    /// The generation the control server at `control` answers on `path` (`/config`: the
    /// config's, `/generation`: the route table's), nil on any failure.
    static func probe(_ control: String, path: String) async -> UInt64? {
        guard let reply = try? await LoopbackHTTPClient.shared.request(control, path: path, timeout: probeTimeout, responseBytesMax: controlResponseBytesMax),
              reply.status == 200 else { return nil }
        return parseGeneration(reply.body)
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
                _ = ChildProcess.reapBlocking(pid)
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
        await Self.onBlockingThread { ChildProcess.reapBlocking(pid) }
    }

    /// nginx in its own process group (signals to ours do not reach it; we signal its whole
    /// group only on a forced stop), output appended to `outputPath`.
    static func spawn(_ argv: [String], outputPath: String) throws(RouterError) -> pid_t {
        do {
            return try ChildProcess.spawn(argv, .init(outputPath: outputPath))
        } catch {
            throw .spawnFailed(program: argv[0], errno: error.errno)
        }
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

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        var scalars = Substring(self).unicodeScalars[...]
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
