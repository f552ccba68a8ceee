#if canImport(Glibc)
import Glibc
#endif

/// Named points in the leader's multi-step work where a test can make the process die at that
/// exact step, with no sleep and no race: `PEER_FAILPOINT=drain.after-move-started peer run ...`
/// makes that peer exit (status 86, as `kill -9` would leave things: nothing flushed, nothing
/// said to anyone) the first time it passes there. Off unless the variable is set; a process
/// reads it once. `peer failpoints` lists every name; chaos scripts iterate over that list.
public enum Failpoint: String, CaseIterable, Sendable {
    case drainAfterCommit = "drain.after-commit"
    case drainAfterMoveStarted = "drain.after-move-started"
    case drainBeforeDrained = "drain.before-drained"
    case moveAfterStarted = "move.after-started"
    case moveAfterTargetActive = "move.after-target-active"
    case moveBeforePlacementGone = "move.before-placement-gone"

    /// What the process has just done when it dies there.
    public var meaning: String {
        switch self {
        case .drainAfterCommit: "the API committed an instance's drain (state draining) and answered nothing yet"
        case .drainAfterMoveStarted: "the leader committed the start of one of a drain's tenant moves"
        case .drainBeforeDrained: "the leader found the draining instance empty and is about to commit drained"
        case .moveAfterStarted: "the leader committed a move's target placement (preparing)"
        case .moveAfterTargetActive: "the leader committed the move's switch (target active, source draining)"
        case .moveBeforePlacementGone: "the leader is about to commit the removal of a move's source placement (or of its withdrawn target)"
        }
    }

    /// The environment variable naming the failpoint this process dies at.
    public static let environmentVariable = "PEER_FAILPOINT"
    /// The exit status of a process that died at its failpoint.
    public static let exitStatus: Int32 = 86

    /// The failpoint this process was started with, if any (read once).
    public static let armed: Failpoint? = {
        guard let raw = getenv(environmentVariable) else { return nil }
        return Failpoint(rawValue: String(cString: raw))
    }()

    /// The value of `PEER_FAILPOINT` when it names no failpoint: `peer run` refuses to start with it.
    public static var unknownSetting: String? {
        guard let raw = getenv(environmentVariable) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty || Failpoint(rawValue: value) != nil ? nil : value
    }

    /// Dies here if this is the armed failpoint: one line to stderr, then `_exit` (no atexit
    /// handlers, no buffered output flushed, no graceful shutdown).
    public func hit() {
        guard Self.armed == self else { return }
        let line = "peer: failpoint \(rawValue) reached: exiting with status \(Self.exitStatus) (\(Self.environmentVariable))\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        _exit(Self.exitStatus)
    }
}
