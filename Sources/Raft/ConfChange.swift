// Membership changes, one server at a time (docs/adr/0005-membership-changes.md).

/// One single-server membership change. Adding a voter is two changes: `addLearner`, then
/// `promote` once the learner caught up.
public enum ConfChange: Sendable, Hashable {
    /// A new node joins as a learner: it receives the log and snapshots, never counts in a quorum.
    case addLearner(NodeID)
    /// A learner becomes a voter.
    case promote(NodeID)
    /// A voter or a learner leaves.
    case removeNode(NodeID)

    public var node: NodeID {
        switch self {
        case .addLearner(let n), .promote(let n), .removeNode(let n): return n
        }
    }

    /// The configuration after this change, or why it cannot be made to `conf`.
    public func applied(to conf: ConfState) throws(ConfChangeRefusal) -> ConfState {
        let n = node
        if n == noNode { throw .invalidNodeID }
        var voters = conf.voters
        var learners = conf.learners
        switch self {
        case .addLearner:
            if conf.contains(n) { throw .alreadyMember(n) }
            learners.insert(n)
        case .promote:
            if voters.contains(n) { throw .alreadyVoter(n) }
            guard learners.remove(n) != nil else { throw .unknownNode(n) }
            voters.insert(n)
        case .removeNode:
            guard conf.contains(n) else { throw .unknownNode(n) }
            if voters.contains(n) && voters.count == 1 { throw .wouldRemoveLastVoter(n) }
            voters.remove(n)
            learners.remove(n)
        }
        return ConfState(voters: voters, learners: learners)
    }
}

/// Why `RaftNode.proposeConfChange` refused a change (inside `ProposalError.confChangeRefused`),
/// or why a committed change could not be applied. Nothing was appended when it is thrown.
public enum ConfChangeRefusal: Error, Sendable, Hashable {
    /// Another change is not yet applied (one change at a time): it is at `index`.
    case changePending(index: LogIndex)
    /// A new leader proposes a change only after it committed an entry of its own term
    /// (Ongaro's fix to single-server changes, raft-dev 2015; thesis §4.1 errata).
    case noCommitInTerm(term: Term)
    /// A learner is promoted only when caught up: its match index within
    /// `learnerCatchUpEntriesMax` of the leader's last index, and heard from within an
    /// election timeout.
    case learnerNotCaughtUp(NodeID, match: LogIndex, lastIndex: LogIndex, ticksSinceHeard: Int)
    /// The configuration needs at least one voter.
    case wouldRemoveLastVoter(NodeID)
    /// Promote or remove a node that is not a member (promote: not a learner).
    case unknownNode(NodeID)
    /// Add a node that is already a voter or learner.
    case alreadyMember(NodeID)
    /// Promote a node that is already a voter.
    case alreadyVoter(NodeID)
    /// Node id 0 is reserved.
    case invalidNodeID
}

/// What a `.confChange` entry holds: the change and the configuration it produces. Carrying the
/// result lets a node that joined knowing nothing of the configuration (an empty store) learn it
/// from the first change it applies, whatever came before in the log.
/// Invariant (checked by `decode`): `conf` is consistent with `change` (the node is a learner
/// after `addLearner`, a voter after `promote`, absent after `removeNode`), has a voter.
public struct ConfChangeEntry: Sendable, Hashable {
    public var change: ConfChange
    public var conf: ConfState

    public init(change: ConfChange, conf: ConfState) {
        self.change = change
        self.conf = conf
    }

    /// Members per list in an encoded entry, at most: bounds what a decoder allocates.
    public static let membersMax = 1024
    static let formatVersion: UInt8 = 1

    /// `version(1) kind(1) node(8) voterCount(4) voters(8 each) learnerCount(4) learners(8 each)`,
    /// little-endian, ids sorted ascending: equal entries encode to equal bytes.
    public func encode() -> [UInt8] {
        var out: [UInt8] = [Self.formatVersion]
        switch change {
        case .addLearner: out.append(1)
        case .promote: out.append(2)
        case .removeNode: out.append(3)
        }
        Self.put(change.node, into: &out)
        for list in [conf.voters.sorted(), conf.learners.sorted()] {
            Self.put32(UInt32(list.count), into: &out)
            for id in list { Self.put(id, into: &out) }
        }
        return out
    }

    /// Decodes and validates an entry's data. Never traps: any byte string gives an entry or a
    /// typed error.
    public static func decode(_ data: [UInt8]) throws(ConfChangeDecodeError) -> ConfChangeEntry {
        var r = Reader(bytes: data)
        guard let version = r.byte() else { throw .truncated }
        guard version == formatVersion else { throw .unknownVersion(version) }
        guard let kind = r.byte(), let node = r.u64() else { throw .truncated }
        guard node != noNode else { throw .zeroNodeID }
        let change: ConfChange
        switch kind {
        case 1: change = .addLearner(node)
        case 2: change = .promote(node)
        case 3: change = .removeNode(node)
        default: throw .unknownKind(kind)
        }
        var lists: [[NodeID]] = []
        for _ in 0..<2 {
            guard let count = r.u32() else { throw .truncated }
            guard count <= membersMax else { throw .tooManyMembers(Int(count)) }
            var ids: [NodeID] = []
            for _ in 0..<count {
                guard let id = r.u64() else { throw .truncated }
                guard id != noNode else { throw .zeroNodeID }
                if let last = ids.last, id <= last { throw .notCanonical }
                ids.append(id)
            }
            lists.append(ids)
        }
        guard r.atEnd else { throw .trailingBytes(r.remaining) }
        let voters = Set(lists[0]), learners = Set(lists[1])
        guard voters.isDisjoint(with: learners) else { throw .overlappingMembers }
        guard !voters.isEmpty else { throw .noVoters }
        let conf = ConfState(voters: voters, learners: learners)
        let consistent: Bool
        switch change {
        case .addLearner(let n): consistent = learners.contains(n)
        case .promote(let n): consistent = voters.contains(n)
        case .removeNode(let n): consistent = !conf.contains(n)
        }
        guard consistent else { throw .inconsistent }
        return ConfChangeEntry(change: change, conf: conf)
    }

    private static func put(_ v: UInt64, into out: inout [UInt8]) {
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) }
    }

    private static func put32(_ v: UInt32, into out: inout [UInt8]) {
        for k in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) }
    }

    private struct Reader {
        let bytes: [UInt8]
        var at = 0
        var atEnd: Bool { at == bytes.count }
        var remaining: Int { bytes.count - at }

        mutating func byte() -> UInt8? {
            guard at < bytes.count else { return nil }
            defer { at += 1 }
            return bytes[at]
        }

        mutating func u64() -> UInt64? {
            guard remaining >= 8 else { return nil }
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[at + k]) << (8 * UInt64(k)) }
            at += 8
            return v
        }

        mutating func u32() -> UInt32? {
            guard remaining >= 4 else { return nil }
            var v: UInt32 = 0
            for k in 0..<4 { v |= UInt32(bytes[at + k]) << (8 * UInt32(k)) }
            at += 4
            return v
        }
    }
}

/// Why the data of a `.confChange` entry is not a valid `ConfChangeEntry`.
public enum ConfChangeDecodeError: Error, Sendable, Hashable {
    case truncated
    case unknownVersion(UInt8)
    case unknownKind(UInt8)
    case zeroNodeID
    case tooManyMembers(Int)
    /// Ids not strictly ascending: a second encoding of the same entry.
    case notCanonical
    case trailingBytes(Int)
    case overlappingMembers
    case noVoters
    /// The configuration does not follow from the change (e.g. an added learner absent from it).
    case inconsistent
}

/// A configuration change the core applied (or could not apply) when the application applied
/// its entry; reported in the next `Ready.confChanges`.
public struct ConfChangeResult: Sendable, Hashable {
    /// The `.confChange` entry's index.
    public var index: LogIndex
    /// The decoded change, or nil when the entry's data is malformed.
    public var change: ConfChange?
    /// Why the entry changed nothing (malformed data); nil when applied.
    public var error: ConfChangeDecodeError?
    /// The configuration in force after this entry.
    public var conf: ConfState

    public init(index: LogIndex, change: ConfChange?, error: ConfChangeDecodeError?, conf: ConfState) {
        self.index = index
        self.change = change
        self.error = error
        self.conf = conf
    }
}

extension ConfChangeRefusal: CustomStringConvertible {
    public var description: String {
        switch self {
        case .changePending(let index): "another membership change (entry \(index)) is not applied yet: one change at a time"
        case .noCommitInTerm(let term): "the leader has not committed an entry of its term \(term) yet; retry in a moment"
        case .learnerNotCaughtUp(let n, let match, let last, let ticks):
            "learner \(n) is not caught up (it holds entry \(match) of \(last), last heard \(ticks) tick(s) ago)"
        case .wouldRemoveLastVoter(let n): "peer \(n) is the last voter"
        case .unknownNode(let n): "peer \(n) is not a member (or, to promote, not a learner)"
        case .alreadyMember(let n): "peer \(n) is already a member"
        case .alreadyVoter(let n): "peer \(n) is already a voter"
        case .invalidNodeID: "node id 0 is reserved"
        }
    }
}
