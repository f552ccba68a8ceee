/// Why a command was refused. The code is stable (it is stored in client sessions and in
/// snapshots, so a retried command answers with the same reason on every replica); the detail
/// is for people.
public enum RejectionCode: UInt32, Sendable, CaseIterable {
    /// The entry's bytes are not a `Command`, or a required envelope field is missing.
    case malformedCommand = 100
    /// The request id's sequence is older than the client's last applied one (Raft thesis §6.3).
    case staleSequence = 101
    /// A field is missing, too long, out of range or not in the allowed alphabet.
    case invalidField = 102
    /// An object with this id exists already.
    case alreadyExists = 103
    /// The command names an object that does not exist.
    case notFound = 104
    /// The object's state machine does not allow this step.
    case invalidTransition = 105
    /// The step would break another object's invariant (e.g. one move in flight per tenant).
    case conflict = 106
    /// A limit of the state (`...Max`) is reached.
    case limitReached = 107
    /// A version is below the cluster's min protocol version, or the gate would move backwards.
    case belowMinVersion = 108
    /// The command type needs a protocol version that not every member has yet (ARCHITECTURE §12).
    case commandGated = 109
    /// Removing the object would leave dangling references (placements on an instance, ...).
    case notEmpty = 110
    /// Deactivating the only active placement of a tenant that stays would lose its traffic.
    case breakBeforeMake = 111
}

/// A refusal with its specific reason. Applying a rejected command changes nothing but the
/// applied index and the client's session.
public struct Rejection: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: RejectionCode
    public let detail: String

    public init(_ code: RejectionCode, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }
}

/// What applying one command did, as remembered in the client's session.
public enum Outcome: Equatable, Sendable {
    case applied
    /// An unknown command flagged `skippable_if_unknown` by its proposer.
    case skipped(reason: String)
    case rejected(Rejection)
}

/// The typed result of `ClusterState.apply`, returned to the proposer when its entry applies.
public enum ApplyResult: Equatable, Sendable {
    case applied
    case skipped(reason: String)
    case rejected(Rejection)
    /// The request id was applied before (a retry): nothing changed; this is the first outcome.
    case duplicate(previous: Outcome)

    init(_ outcome: Outcome) {
        switch outcome {
        case .applied: self = .applied
        case .skipped(let reason): self = .skipped(reason: reason)
        case .rejected(let rejection): self = .rejected(rejection)
        }
    }
}

/// Apply cannot go on: the entry holds a command this version does not know and its proposer
/// did not flag it skippable. The state and applied index are unchanged; the peer must stop
/// applying (and say this reason) until it is upgraded, never skip the entry.
public enum ApplyHalt: Error, Equatable, Sendable {
    case unsupportedCommand(index: UInt64, fieldNumbers: [UInt64])
    /// Entry `index` raises the cluster version above the highest this peer applies: the peer is
    /// too old for the cluster and must be upgraded before it goes on.
    case tooOld(index: UInt64, clusterVersion: UInt32, supported: UInt32)
}

extension ApplyHalt: CustomStringConvertible {
    public var description: String {
        switch self {
        case .unsupportedCommand(let index, let fields):
            "entry \(index) holds a command this version does not know (field \(fields.map(String.init).joined(separator: ", "))): upgrade this peer"
        case .tooOld(let index, let v, let supported):
            "entry \(index) raises the cluster version to \(v), but this peer applies protocol versions up to \(supported): it is too old for this cluster; run a newer build on the same data"
        }
    }
}

extension Outcome {
    /// Outcome codes below 100 are not rejections.
    static let appliedCode: UInt32 = 0
    static let skippedCode: UInt32 = 1

    var wire: PBOutcome {
        var pb = PBOutcome()
        switch self {
        case .applied: pb.code = Self.appliedCode
        case .skipped(let reason):
            pb.code = Self.skippedCode
            pb.detail = reason
        case .rejected(let rejection):
            pb.code = rejection.code.rawValue
            pb.detail = rejection.detail
        }
        return pb
    }

    init?(wire: PBOutcome) {
        switch wire.code {
        case Self.appliedCode: self = .applied
        case Self.skippedCode: self = .skipped(reason: wire.detail)
        default:
            guard let code = RejectionCode(rawValue: wire.code) else { return nil }
            self = .rejected(Rejection(code, wire.detail))
        }
    }
}
