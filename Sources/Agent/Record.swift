import ChildProcesses
import Foundation
import Synchronization

/// The agent thread's private record of one component (never shared; the thread publishes
/// snapshots of it).
struct Record {
    /// What the agent aims at: the spec to run and the tenants it must serve.
    var target: DesiredComponent
    /// False: the component is stopping and is forgotten once reaped.
    var wanted = true
    /// Start `target` as soon as the current process is reaped (spec change, re-add).
    var restartPending = false
    var process: RunningProcess?
    var phase: Phase = .stopped
    var since: ContinuousClock.Instant
    var crashes = RestartPolicy.History()
    var restarts = 0
    var lastExit: ChildExit?
    var cpu = CPUSampler()
    var cpuPermille: Int?
    var rssBytes: Int?
    var healthFailures = 0
    /// The tenants the file on disk lists (what the component reads); nil before any write.
    var tenantsInFile: Set<String>?
    /// The tenant file must be (re)written: the target's tenants changed or a write failed.
    var tenantFileDirty = true
    /// Tenants whose tenant probe answered 2xx since the process started and while it stayed
    /// healthy; always a subset of `tenantsInFile`.
    var confirmed: Set<String> = []

    init(target: DesiredComponent, since: ContinuousClock.Instant) {
        self.target = target
        self.since = since
    }

    struct RunningProcess: Hashable {
        /// Also the process group id: the component leads its own group.
        var pid: Int32
        var startTimeTicks: UInt64
        var startedAt: ContinuousClock.Instant
    }

    enum Phase: Hashable {
        case starting, running, healthy, unhealthy
        case backingOff(until: ContinuousClock.Instant)
        case crashLoop
        case stopping(deadline: ContinuousClock.Instant, killed: Bool)
        case stopped

        var isStopping: Bool { if case .stopping = self { true } else { false } }
    }

    mutating func enter(_ phase: Phase, _ now: ContinuousClock.Instant) {
        guard phase != self.phase else { return }
        // `since` is when the state (as shown) changed, not when a deadline moved.
        if !(phase.isStopping && self.phase.isStopping) { since = now }
        self.phase = phase
    }

    func status(now: ContinuousClock.Instant, wallNow: Date) -> ComponentStatus {
        func wall(_ instant: ContinuousClock.Instant) -> Date {
            let offset = instant - now
            return wallNow.addingTimeInterval(Double(offset.components.seconds) + Double(offset.components.attoseconds) / 1e18)
        }
        let state: ComponentState = switch phase {
        case .starting: .starting
        case .running: .running
        case .healthy: .healthy
        case .unhealthy: .unhealthy
        case .backingOff(let until): .backingOff(until: wall(until))
        case .crashLoop: .crashLoop
        case .stopping: .stopping
        case .stopped: .stopped
        }
        return ComponentStatus(
            name: target.spec.name, pid: process?.pid, state: state, restarts: restarts,
            lastExit: lastExit?.description, cpuPermille: process == nil ? nil : cpuPermille,
            rssBytes: process == nil ? nil : rssBytes, tenants: tenantsInFile?.count ?? 0, since: wall(since))
    }
}

/// The published snapshot, shared by the agent thread (writer) and callers (readers).
final class Board: Sendable {
    let snapshot = Mutex(Published())
}

/// What the agent thread publishes for cheap reads by `status()`, `readyTenants()` and
/// `isServing`.
struct Published: Sendable {
    var statuses: [ComponentStatus] = []
    var ready: [String: Set<String>] = [:]
    var serving: [String: ServingView] = [:]

    struct ServingView: Sendable {
        var pid: Int32
        var port: Int
        var healthPath: String
        var healthy: Bool
        var tenantsInFile: Set<String>
        var confirmed: Set<String>
    }
}
