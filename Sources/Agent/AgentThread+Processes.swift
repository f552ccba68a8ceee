import ChildProcesses
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

extension AgentThread {
    /// Writes the tenant file, rotates the log, spawns. A failure to spawn counts as a crash
    /// (so a missing binary ends in a crash loop, not a busy retry).
    func startProcess(_ record: inout Record, _ now: ContinuousClock.Instant) {
        precondition(record.process == nil, "\(record.target.spec.name) already has pid \(record.process!.pid)")
        let spec = record.target.spec
        record.confirmed = []
        record.healthFailures = 0
        record.cpu = CPUSampler()
        record.cpuPermille = nil
        record.rssBytes = nil
        syncTenantFile(&record, signal: false)
        guard !record.tenantFileDirty else {
            return handleCrash(&record, now, reason: "its tenant file could not be written")
        }
        let tenantFile = configuration.tenantFilePath(spec.name)
        let logPath = configuration.logFilePath(spec.name)
        rotateLogIfLarge(logPath)
        let arguments = spec.arguments.map { $0.replacingOccurrences(of: AgentLimits.tenantFilePlaceholder, with: tenantFile) }
        let argv = configuration.launcher + [spec.command] + arguments
        var environment = baseEnvironment
        for (key, value) in spec.environment { environment[key] = value }
        environment[AgentLimits.tenantFileEnvironmentKey] = tenantFile
        let pid: Int32
        do throws(SpawnError) {
            // The caller is the agent's one long-lived thread (see `AgentThread`).
            pid = try ChildProcess.spawn(argv, .init(
                outputPath: logPath, environment: environment.map { "\($0.key)=\($0.value)" }.sorted(), searchPath: false))
        } catch {
            logger.error("component \(spec.name): spawn failed: \(error)")
            return handleCrash(&record, now, reason: "spawn failed")
        }
        // Not reaped yet, so /proc/<pid>/stat exists even if the child already exited.
        let startTime = ProcFS.stat(pid: pid)?.startTimeTicks ?? 0
        record.process = Record.RunningProcess(pid: pid, startTimeTicks: startTime, startedAt: now)
        record.enter(.starting, now)
        stateFileDirty = true
        logger.info("component \(spec.name): started pid \(pid)")
    }

    /// SIGTERM to the component's group; SIGKILL follows after its stop timeout (`fireTimers`).
    func beginStop(_ record: inout Record, _ now: ContinuousClock.Instant) {
        guard let process = record.process else { return }
        ChildProcess.signalGroup(process.pid, SIGTERM)
        record.enter(.stopping(deadline: now + record.target.spec.stopTimeout, killed: false), now)
        logger.info("component \(record.target.spec.name): SIGTERM sent to group \(process.pid)")
    }

    /// Checks each known pid (never waitpid(-1)). An exited leader is still a zombie here, so
    /// its pid cannot be reused and its group id is still ours: SIGKILL the group to end any
    /// process the component left behind, then reap.
    func reapExited(_ now: ContinuousClock.Instant) {
        for name in records.keys.sorted() {
            guard let process = records[name]!.process else { continue }
            let reason: ChildExit
            switch ChildProcess.observe(process.pid) {
            case .running: continue
            case .exited(let exit):
                reason = exit
                ChildProcess.signalGroup(process.pid, SIGKILL)
                _ = ChildProcess.reapBlocking(process.pid)
            case .lost:
                logger.error("component \(name): pid \(process.pid) is no longer a child of this process (reaped elsewhere); treating it as crashed")
                reason = .unknown
            }
            stateFileDirty = true
            var record = records[name]!
            record.process = nil
            record.lastExit = reason
            record.confirmed = []
            let planned = record.phase.isStopping
            logger.log(level: planned ? .info : .warning, "component \(name): pid \(process.pid) ended (\(reason))\(planned ? "" : ", unexpectedly")")
            if !record.wanted {
                records[name] = nil
                continue
            }
            if shuttingDown {
                record.enter(.stopped, now)
            } else if record.restartPending {
                record.restartPending = false
                startProcess(&record, now)
            } else if planned {
                record.enter(.stopped, now)
            } else {
                handleCrash(&record, now, reason: reason.description)
            }
            records[name] = record
        }
    }

    func handleCrash(_ record: inout Record, _ now: ContinuousClock.Instant, reason: String) {
        let name = record.target.spec.name
        switch policy.decide(afterCrashAt: now, history: &record.crashes) {
        case .restart(let delay):
            record.enter(.backingOff(until: now + delay), now)
            logger.warning("component \(name) crashed (\(reason)); restarting in \(delay)")
        case .crashLoop:
            record.enter(.crashLoop, now)
            logger.error("component \(name) crashed \(configuration.crashLoopLimit) times within \(configuration.crashWindow) (last: \(reason)); no more restarts until its spec changes or a reset")
        }
    }

    /// Restarts after backoff; SIGKILL after a stop timeout.
    func fireTimers(_ now: ContinuousClock.Instant) {
        for name in records.keys.sorted() {
            var record = records[name]!
            switch record.phase {
            case .backingOff(let until) where until <= now && !shuttingDown:
                record.restarts += 1
                startProcess(&record, now)
            case .stopping(let deadline, false) where deadline <= now:
                if let process = record.process {
                    ChildProcess.signalGroup(process.pid, SIGKILL)
                    logger.warning("component \(name): still running \(record.target.spec.stopTimeout) after SIGTERM; SIGKILL sent to group \(process.pid)")
                }
                record.phase = .stopping(deadline: deadline, killed: true)
            default:
                continue
            }
            records[name] = record
        }
    }

    /// A component's log is kept under `logBytesMax` (and one previous `.1` file): checked when
    /// it starts and on every health round while it runs (copy, then truncate: it writes on).
    func rotateLogIfLarge(_ path: String) {
        if let why = LogRotation.copyTruncateIfLarger(path: path, maxBytes: Self.logBytesMax) {
            logger.warning("cannot rotate \(path): \(why)")
        }
    }

    func writeStateFile() {
        let entries = records.values.compactMap { record -> StateFile.Entry? in
            guard let process = record.process else { return nil }
            let timeout = record.target.spec.stopTimeout.components
            return StateFile.Entry(
                name: record.target.spec.name, pid: process.pid, pgid: process.pid, startTimeTicks: process.startTimeTicks,
                stopTimeoutMs: max(1, timeout.seconds * 1000 + timeout.attoseconds / 1_000_000_000_000_000))
        }.sorted { $0.name < $1.name }
        do throws(FileError) {
            try StateFile(components: entries).write(configuration.stateFilePath)
            stateFileDirty = false
        } catch {
            logger.error("cannot write the state file, will retry: \(error)")
        }
    }

    func publish() {
        let now = ContinuousClock.now
        let wallNow = Date()
        var snapshot = Published()
        for name in records.keys.sorted() {
            let record = records[name]!
            snapshot.statuses.append(record.status(now: now, wallNow: wallNow))
            guard record.wanted else { continue }
            let healthy = record.phase == .healthy && record.process != nil
            snapshot.ready[name] = healthy ? record.confirmed : []
            if let process = record.process {
                snapshot.serving[name] = Published.ServingView(
                    pid: process.pid, port: record.target.spec.port, healthPath: record.target.spec.healthPath,
                    healthy: healthy, tenantsInFile: record.tenantsInFile ?? [], confirmed: record.confirmed)
            }
        }
        for (name, rejection) in invalid.sorted(by: { $0.key < $1.key }) where records[name] == nil {
            snapshot.statuses.append(ComponentStatus(
                name: name, pid: nil, state: .invalid(rejection.error.message), restarts: 0, lastExit: nil,
                cpuPermille: nil, rssBytes: nil, tenants: 0, since: rejection.since))
        }
        published.snapshot.withLock { $0 = snapshot }
    }
}
