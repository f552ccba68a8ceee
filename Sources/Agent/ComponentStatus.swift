import Foundation

/// Where a component is in its life on this instance.
public enum ComponentState: Sendable, Hashable, CustomStringConvertible {
    /// Spawned; no health probe has answered 2xx yet (within the startup grace period).
    case starting
    /// Alive and was healthy, but its last probe(s) failed, fewer than
    /// ``AgentConfiguration/unhealthyAfterFailures`` in a row (a blip, not yet unhealthy).
    case running
    /// Alive and its last health probe answered 2xx.
    case healthy
    /// Alive but failing its health probe (in a row, or never healthy after the startup grace).
    /// The agent reports it and does not restart it: a live but sick process is the peer's call.
    case unhealthy
    /// Exited unexpectedly; restarts at `until` (wall-clock estimate of a monotonic deadline).
    case backingOff(until: Date)
    /// Crashed ``AgentConfiguration/crashLoopLimit`` times within the crash window: no more
    /// restarts until its spec changes or ``Agent/reset(component:)``.
    case crashLoop
    /// SIGTERM sent to its group; SIGKILL follows after its stop timeout.
    case stopping
    /// Not running (the agent was stopped, or it is about to start again after a spec change).
    case stopped
    /// The desired entry was refused (a bound or a malformed field); nothing runs for it.
    case invalid(String)

    public var description: String {
        switch self {
        case .starting: "starting"
        case .running: "running"
        case .healthy: "healthy"
        case .unhealthy: "unhealthy"
        case .backingOff(let until): "backingOff(until: \(until))"
        case .crashLoop: "crashLoop"
        case .stopping: "stopping"
        case .stopped: "stopped"
        case .invalid(let reason): "invalid(\(reason))"
        }
    }
}

/// One row of ``Agent/status()``: a snapshot taken by the supervision loop.
public struct ComponentStatus: Sendable, Hashable {
    public var name: String
    /// The component's process id (also its process group id), nil when no process runs.
    public var pid: Int32?
    public var state: ComponentState
    /// Restarts after unexpected exits since the component was first started (spec changes
    /// and resets do not count).
    public var restarts: Int
    /// How the last process ended: "exit code N" or "signal N"; nil if none ended yet.
    public var lastExit: String?
    /// CPU time of the component's leader process (utime + stime from `/proc/<pid>/stat`)
    /// between the last two samples, in thousandths of one core. Children of the component
    /// are not counted. Nil until two samples exist.
    public var cpuPermille: Int?
    /// Resident memory of the leader process (VmRSS from `/proc/<pid>/status`), in bytes.
    public var rssBytes: Int?
    /// Tenants listed in the component's tenant file.
    public var tenants: Int
    /// When the component entered its current state (wall clock).
    public var since: Date
}
