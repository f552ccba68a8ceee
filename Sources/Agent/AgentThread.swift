import ChildProcesses
import Foundation
import Logging
import Synchronization

/// The agent's one long-lived thread. It alone spawns, signals and reaps component
/// processes, and it lives from `start()` until `stop()` has reaped every component.
///
/// Why one dedicated thread (not a Task or a DispatchQueue): the launcher the peer passes sets
/// PR_SET_PDEATHSIG, which Linux delivers when the *thread* that created the child exits. A
/// Task or a dispatch queue may spawn from a pool thread that later exits, killing a healthy
/// component. Doing everything on one thread also means a pid is never signalled after this
/// thread reaped it (no pid-reuse race inside the agent).
///
/// Each turn: take requests, apply them, reap exited children, fire due timers (restarts after
/// backoff, SIGKILL after stop timeouts), run a health round when due, publish a snapshot.
final class AgentThread {
    /// Tenant probes per component per health round: `componentsMax * (1 + this)` probes fit
    /// in one round (`HealthProbe.probesPerRoundMax`).
    static let tenantProbesPerComponentPerRoundMax = 3
    /// A log file over this size at a component's start is moved to `<log>.1`.
    static let logBytesMax: Int64 = 16 * 1024 * 1024
    /// How long recovery waits for a SIGKILLed leftover group to vanish before giving up.
    static let recoveryKillWait: Duration = .seconds(5)

    let configuration: AgentConfiguration
    let inbox: AgentInbox
    let published: Board
    var logger: Logger { configuration.logger }
    let policy: RestartPolicy
    let baseEnvironment: [String: String]

    /// Every component the agent knows, by name (at most `componentsMax` wanted ones plus
    /// unwanted ones still stopping).
    var records: [String: Record] = [:]
    /// Names refused by the last reconcile, with the reason.
    var invalid: [String: (error: ComponentSpecError, since: Date)] = [:]
    var shuttingDown = false
    var nextHealthRound = ContinuousClock.now
    var stateFileDirty = false

    init(configuration: AgentConfiguration, inbox: AgentInbox, published: Board) {
        precondition(AgentLimits.componentsMax * (1 + Self.tenantProbesPerComponentPerRoundMax) <= HealthProbe.probesPerRoundMax,
                     "a health round must fit in HealthProbe.probesPerRoundMax")
        self.configuration = configuration
        self.inbox = inbox
        self.published = published
        self.policy = configuration.restartPolicy
        self.baseEnvironment = ProcessInfo.processInfo.environment
    }

    /// The thread's body: recovery, then turns until stopped.
    func run(started: CheckedContinuation<Void, Never>) {
        prepareDirectories()
        recoverLeftoverGroups()
        inbox.open()
        publish()
        started.resume()
        while true {
            let work = inbox.take(until: nextWake())
            apply(work)
            turn(ContinuousClock.now)
            publish()
            // Callers resume after the snapshot shows what they asked for.
            for waiter in work.desiredWaiters { waiter.resume() }
            if shuttingDown && records.values.allSatisfy({ $0.process == nil }) { break }
        }
        writeStateFile()
        publish()
        logger.info("agent stopped: every component reaped")
        for waiter in inbox.close() { waiter.resume() }
    }

    private func prepareDirectories() {
        for directory in [configuration.directory, configuration.tenantsDirectory, configuration.logsDirectory] {
            do throws(FileError) { try AtomicFile.makeDirectory(directory) } catch {
                logger.error("cannot create the agent directory: \(error)")
            }
        }
    }

    private func apply(_ work: Work) {
        if work.stopRequested { beginShutdown() }
        for name in work.resets.sorted() { reset(name) }
        if let desired = work.desired { reconcile(desired) }
    }

    typealias Work = AgentInbox.Work

    /// Everything that depends on time: reap, timers, health.
    private func turn(_ now: ContinuousClock.Instant) {
        reapExited(now)
        fireTimers(now)
        retryTenantFiles()
        if now >= nextHealthRound {
            healthRound(now)
            for name in records.keys.sorted() where records[name]?.process != nil { rotateLogIfLarge(configuration.logFilePath(name)) }
            nextHealthRound = ContinuousClock.now + configuration.healthInterval
        }
        if stateFileDirty { writeStateFile() }
    }

    /// The earliest instant something is due; nil when nothing runs or waits.
    private func nextWake() -> ContinuousClock.Instant? {
        var wake: ContinuousClock.Instant?
        func consider(_ instant: ContinuousClock.Instant) { wake = min(wake ?? instant, instant) }
        for record in records.values {
            if record.process != nil {
                consider(ContinuousClock.now + configuration.reapInterval)
                consider(nextHealthRound)
            }
            switch record.phase {
            case .backingOff(let until): consider(until)
            case .stopping(let deadline, false): consider(deadline)
            default: break
            }
        }
        return wake
    }

    // MARK: Requests

    private func reconcile(_ desired: DesiredComponents) {
        guard !shuttingDown else {
            logger.error("reconcile during stop(): ignored, the agent is stopping every component")
            return
        }
        var current: [String: DesiredComponent] = [:]
        for (name, record) in records where record.wanted { current[name] = record.target }
        let plan = ReconcilePlan.make(current: current, desired: desired)
        if plan.isEmpty && invalid.isEmpty { return }
        let previous = invalid
        invalid = [:]
        for (name, reason) in plan.rejected.sorted(by: { $0.key < $1.key }) {
            if let known = previous[name], known.error == reason {
                invalid[name] = known
            } else {
                invalid[name] = (reason, Date())
                logger.error("refusing component \(name): \(reason)")
            }
        }
        let now = ContinuousClock.now
        for name in plan.stop { dropComponent(name, now) }
        for entry in plan.start { addComponent(entry, now) }
        for entry in plan.restart { replaceComponent(entry, now) }
        for entry in plan.update { updateComponent(entry) }
    }

    private func addComponent(_ entry: DesiredComponent, _ now: ContinuousClock.Instant) {
        let name = entry.spec.name
        if var record = records[name] {
            // Still stopping from an earlier drop: start the new one once the old one is reaped.
            precondition(!record.wanted, "\(name) is aimed at already but the plan starts it")
            record.target = entry
            record.wanted = true
            record.restartPending = true
            record.crashes.clear()
            record.tenantFileDirty = true
            records[name] = record
            return
        }
        var record = Record(target: entry, since: now)
        logger.info("starting component \(name) with \(entry.tenants.count) tenant(s)")
        startProcess(&record, now)
        records[name] = record
    }

    private func dropComponent(_ name: String, _ now: ContinuousClock.Instant) {
        guard var record = records[name] else { return }
        record.wanted = false
        record.restartPending = false
        if record.process == nil {
            records[name] = nil
            logger.info("component \(name) is no longer wanted; it was not running")
            return
        }
        logger.info("stopping component \(name): no longer wanted")
        beginStop(&record, now)
        records[name] = record
    }

    private func replaceComponent(_ entry: DesiredComponent, _ now: ContinuousClock.Instant) {
        guard var record = records[entry.spec.name] else { return }
        logger.info("restarting component \(entry.spec.name): its command, arguments, environment or port changed")
        record.target = entry
        record.crashes.clear()
        record.tenantFileDirty = true
        if record.process != nil {
            record.restartPending = true
            if !record.phase.isStopping { beginStop(&record, now) }
        } else {
            startProcess(&record, now)
        }
        records[entry.spec.name] = record
    }

    private func updateComponent(_ entry: DesiredComponent) {
        guard var record = records[entry.spec.name] else { return }
        let tenantsChanged = record.target.tenants != entry.tenants
        record.target = entry
        if tenantsChanged {
            record.tenantFileDirty = true
            record.confirmed.formIntersection(entry.tenants)
            syncTenantFile(&record, signal: true)
        }
        records[entry.spec.name] = record
    }

    private func reset(_ name: String) {
        guard var record = records[name], record.wanted else { return }
        record.crashes.clear()
        if case .crashLoop = record.phase, !shuttingDown {
            logger.info("component \(name): crash loop reset, starting again")
            startProcess(&record, ContinuousClock.now)
        }
        records[name] = record
    }

    private func beginShutdown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        logger.info("agent stopping \(records.count) component(s)")
        let now = ContinuousClock.now
        for name in records.keys.sorted() {
            var record = records[name]!
            record.restartPending = false
            if record.process != nil {
                if !record.phase.isStopping { beginStop(&record, now) }
            } else {
                record.enter(.stopped, now)
            }
            records[name] = record
        }
    }

    /// Rewrites tenant files whose last write failed (and signals their components).
    private func retryTenantFiles() {
        for name in records.keys where records[name]!.tenantFileDirty && records[name]!.process != nil {
            var record = records[name]!
            syncTenantFile(&record, signal: true)
            records[name] = record
        }
    }

    /// Writes the tenant file if it differs from the target; sends the reload signal to the
    /// component's leader process (not the group: its helpers may not handle the signal).
    func syncTenantFile(_ record: inout Record, signal: Bool) {
        let path = configuration.tenantFilePath(record.target.spec.name)
        do throws(FileError) {
            try TenantFile.write(record.target.tenants, to: path)
        } catch {
            logger.error("component \(record.target.spec.name): cannot write its tenant file, will retry: \(error)")
            return
        }
        record.tenantFileDirty = false
        record.tenantsInFile = record.target.tenants
        if signal, let process = record.process, !record.phase.isStopping {
            ChildProcess.signalProcess(process.pid, record.target.spec.reloadSignal)
            logger.info("component \(record.target.spec.name): tenant file rewritten (\(record.target.tenants.count) tenant(s)), signal \(record.target.spec.reloadSignal) sent to pid \(process.pid)")
        }
    }
}
