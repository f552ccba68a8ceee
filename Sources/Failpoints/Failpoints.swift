import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Named points in the leader's multi-step work where a test can make the process die at that
/// exact step, with no sleep and no race (the shape of etcd's gofail). Off unless the process
/// was started with `PEER_FAILPOINT` set:
///
/// - `PEER_FAILPOINT=drain.after-move-started peer run ...` arms that failpoint from the start;
/// - `PEER_FAILPOINT=armable` arms none, but lets the admin API arm one later
///   (`peer failpoints arm NAME --member ID`): a test arms exactly the peer that leads.
///
/// An armed process exits with status 86 the first time it passes there, as `kill -9` would
/// leave things: nothing flushed, nothing said to anyone. `peer failpoints` lists every name;
/// chaos scripts iterate over that list.
public enum Failpoint: String, CaseIterable, Sendable {
    case drainAfterCommit = "drain.after-commit"
    case drainAfterMoveStarted = "drain.after-move-started"
    case drainBeforeDrained = "drain.before-drained"
    case moveAfterStarted = "move.after-started"
    case moveAfterTargetActive = "move.after-target-active"
    case moveBeforePlacementGone = "move.before-placement-gone"
    case provisionAfterCommit = "provision.after-commit"
    case provisionAfterCreate = "provision.after-create"
    case provisionAfterAddInstance = "provision.after-add-instance"
    case provisionAfterLearner = "provision.after-learner"
    case decommissionAfterCommit = "decommission.after-commit"
    case decommissionAfterMemberRemoved = "decommission.after-member-removed"
    case decommissionAfterDestroy = "decommission.after-destroy"
    case balancerAfterDecision = "balancer.after-decision"
    case balancerAfterMoveStarted = "balancer.after-move-started"

    /// Where the process is when it dies there.
    public var meaning: String {
        switch self {
        case .drainAfterCommit: "the API committed an instance's drain (state draining) and answered nothing yet"
        case .drainAfterMoveStarted: "the leader committed the start of one of a drain's tenant moves"
        case .drainBeforeDrained: "the leader found the draining instance empty and is about to commit drained"
        case .moveAfterStarted: "a move's target placement (preparing) was committed: by the API (answering nothing yet) or by a drain"
        case .moveAfterTargetActive: "the leader committed the move's switch (target active, source draining)"
        case .moveBeforePlacementGone: "the leader is about to commit the removal of a move's source placement (or of its withdrawn target)"
        case .provisionAfterCommit: "the API committed an add's provision intent and answered nothing yet"
        case .provisionAfterCreate: "the provider created the new instance; its AddInstance is not committed yet"
        case .provisionAfterAddInstance: "the new instance is in the state (joining); it is not in the Raft configuration yet"
        case .provisionAfterLearner: "the new instance joined the Raft configuration as a learner; it is not active yet"
        case .decommissionAfterCommit: "the API committed a removal's decommission intent and answered nothing yet"
        case .decommissionAfterMemberRemoved: "the removed instance left the Raft configuration; the provider has not destroyed it yet"
        case .decommissionAfterDestroy: "the provider destroyed the removed instance; it is not marked removed yet"
        case .balancerAfterDecision: "the balancer committed a decision (its event, and the intent of a scale-up or scale-down); nothing of it is carried out yet"
        case .balancerAfterMoveStarted: "the balancer committed the start of one of a decision's tenant moves"
        }
    }

    /// The environment variable that enables failpoints in this process.
    public static let environmentVariable = "PEER_FAILPOINT"
    /// Its value that enables them without arming one.
    public static let armableValue = "armable"
    /// The exit status of a process that died at its failpoint.
    public static let exitStatus: Int32 = 86

    /// What `PEER_FAILPOINT` said at start: nil when unset or empty.
    static let setting: String? = {
        guard let raw = getenv(environmentVariable) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }()

    /// Whether this process accepts failpoints at all (it was started with `PEER_FAILPOINT`).
    public static var enabled: Bool { setting != nil && unknownSetting == nil }

    /// The value of `PEER_FAILPOINT` when it is neither a failpoint nor `armable`: `peer run`
    /// refuses to start with it.
    public static var unknownSetting: String? {
        guard let value = setting, value != armableValue, Failpoint(rawValue: value) == nil else { return nil }
        return value
    }

    /// Index into `allCases` + 1 of the armed failpoint; 0: none.
    private static let armedIndex = Atomic<Int>(setting.flatMap { Failpoint(rawValue: $0) }.flatMap { f in allCases.firstIndex(of: f).map { $0 + 1 } } ?? 0)

    /// The failpoint this process dies at, if any.
    public static var armed: Failpoint? {
        let i = armedIndex.load(ordering: .acquiring)
        return i == 0 ? nil : allCases[i - 1]
    }

    /// Arms `failpoint` (nil disarms). False when this process was not started with
    /// `PEER_FAILPOINT`: then nothing changes.
    @discardableResult
    public static func arm(_ failpoint: Failpoint?) -> Bool {
        guard enabled else { return false }
        armedIndex.store(failpoint.flatMap { allCases.firstIndex(of: $0).map { $0 + 1 } } ?? 0, ordering: .releasing)
        return true
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
