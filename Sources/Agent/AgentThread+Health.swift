import ChildProcesses
import Logging

#if canImport(Glibc)
import Glibc
#endif

extension AgentThread {
    /// One round: sample CPU and memory of every running leader, then probe every running
    /// component's health path, plus up to `tenantProbesPerComponentPerRoundMax` of its
    /// unconfirmed tenants (with `X-Tenant-ID`), all concurrently within the health timeout.
    func healthRound(_ now: ContinuousClock.Instant) {
        var requests: [HealthProbe.Request] = []
        var owners: [(name: String, tenant: String?)] = []
        for name in records.keys.sorted() {
            var record = records[name]!
            guard let process = record.process, !record.phase.isStopping else { continue }
            sampleResources(&record, process, now)
            records[name] = record
            let spec = record.target.spec
            requests.append(HealthProbe.Request(port: spec.port, path: spec.healthPath, tenant: nil))
            owners.append((name, nil))
            let pending = (record.tenantsInFile ?? []).subtracting(record.confirmed)
            for tenant in pending.shuffled().prefix(Self.tenantProbesPerComponentPerRoundMax) {
                requests.append(HealthProbe.Request(port: spec.port, path: spec.healthPath, tenant: tenant))
                owners.append((name, tenant))
            }
        }
        guard !requests.isEmpty else { return }
        let outcomes = HealthProbe.run(requests, timeout: configuration.healthTimeout)
        var health: [String: HealthProbe.Outcome] = [:]
        var servedTenants: [String: [String]] = [:]
        for (index, owner) in owners.enumerated() {
            if let tenant = owner.tenant {
                if outcomes[index].isSuccess { servedTenants[owner.name, default: []].append(tenant) }
            } else {
                health[owner.name] = outcomes[index]
            }
        }
        let after = ContinuousClock.now
        for (name, outcome) in health {
            guard var record = records[name], record.process != nil else { continue }
            judge(&record, outcome, servedTenants[name] ?? [], after)
            records[name] = record
        }
    }

    /// Moves the record between starting, healthy, running and unhealthy after a probe.
    private func judge(_ record: inout Record, _ outcome: HealthProbe.Outcome, _ served: [String], _ now: ContinuousClock.Instant) {
        let name = record.target.spec.name
        if outcome.isSuccess {
            if record.phase != .healthy { logger.info("component \(name): healthy") }
            record.healthFailures = 0
            record.enter(.healthy, now)
            let listed = record.tenantsInFile ?? []
            for tenant in served where listed.contains(tenant) { record.confirmed.insert(tenant) }
            return
        }
        record.healthFailures += 1
        record.confirmed = []
        switch record.phase {
        case .healthy, .running:
            let next: Record.Phase = record.healthFailures >= configuration.unhealthyAfterFailures ? .unhealthy : .running
            if next == .unhealthy { logger.warning("component \(name): unhealthy after \(record.healthFailures) failed probes: \(outcome)") }
            record.enter(next, now)
        case .starting:
            if let process = record.process, now - process.startedAt >= configuration.startupGrace {
                logger.warning("component \(name): not healthy \(configuration.startupGrace) after its start: \(outcome)")
                record.enter(.unhealthy, now)
            }
        default:
            break
        }
    }

    /// CPU (utime + stime) and VmRSS of the component's leader process only: its children
    /// are not counted (documented on ``ComponentStatus``).
    private func sampleResources(_ record: inout Record, _ process: Record.RunningProcess, _ now: ContinuousClock.Instant) {
        guard let stat = ProcFS.stat(pid: process.pid), stat.startTimeTicks == process.startTimeTicks else { return }
        if let permille = record.cpu.sample(ticks: stat.userTicks + stat.systemTicks, at: now, ticksPerSecond: ProcFS.clockTicksPerSecond) {
            record.cpuPermille = permille
        }
        if let rss = ProcFS.residentBytes(pid: process.pid) { record.rssBytes = rss }
    }

    /// `start()`'s first step: groups that a previous run recorded and that are still alive
    /// (the peer was SIGKILLed and a component survived it) get SIGTERM, then SIGKILL after
    /// their stop timeout. A pid is signalled only while its start time matches the record.
    func recoverLeftoverGroups() {
        let file: StateFile?
        do throws(StateFile.Invalid) { file = try StateFile.read(configuration.stateFilePath) } catch {
            logger.error("ignoring the state file, nothing from it is signalled: \(error)")
            return
        }
        guard let file, !file.components.isEmpty else { return }
        let start = ContinuousClock.now
        var alive: [(entry: StateFile.Entry, killAt: ContinuousClock.Instant, killed: Bool)] = []
        for entry in file.components {
            guard Self.isSameProcess(entry) else {
                logger.info("state file: \(entry.name) pid \(entry.pid) from a previous run is gone (or the pid is reused); left alone")
                continue
            }
            logger.warning("state file: \(entry.name) pid \(entry.pid) from a previous run is still alive; SIGTERM to its group")
            ChildProcess.signalGroup(entry.pgid, SIGTERM)
            alive.append((entry, start + .milliseconds(entry.stopTimeoutMs), false))
        }
        let longest = alive.map(\.killAt).max() ?? start
        let giveUp = longest + Self.recoveryKillWait
        while !alive.isEmpty {
            let now = ContinuousClock.now
            alive.removeAll { !Self.isSameProcess($0.entry) }
            if now >= giveUp { break }
            for index in alive.indices where !alive[index].killed && alive[index].killAt <= now {
                // Checked just above: still the same process, so the group id is still its own.
                ChildProcess.signalGroup(alive[index].entry.pgid, SIGKILL)
                alive[index].killed = true
                logger.warning("state file: \(alive[index].entry.name) pid \(alive[index].entry.pid) outlived its stop timeout; SIGKILL to its group")
            }
            Self.pause(configuration.reapInterval)
        }
        for survivor in alive { logger.error("state file: \(survivor.entry.name) pid \(survivor.entry.pid) survived SIGKILL; giving up on it") }
        writeStateFile()
    }

    /// The recorded process is alive (not a zombie) and has the recorded start time.
    static func isSameProcess(_ entry: StateFile.Entry) -> Bool {
        guard let stat = ProcFS.stat(pid: entry.pid) else { return false }
        return stat.startTimeTicks == entry.startTimeTicks && stat.state != "Z" && stat.state != "X"
    }

    /// Recovery polls /proc (the processes are not our children, so waitid cannot wait).
    static func pause(_ duration: Duration) {
        var time = timespec(tv_sec: Int(duration.components.seconds), tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&time, &remaining) != 0 && errno == EINTR { time = remaining }
    }
}
