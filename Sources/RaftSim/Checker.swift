import Raft

/// Checks the Raft safety properties (paper Figure 3) against a global view of the cluster,
/// incrementally, after every event:
/// - election safety: at most one leader per term;
/// - log matching: an (index, term) pair names one entry, with one predecessor term;
/// - leader completeness: a leader's log holds every entry committed in an earlier term (a
///   leader of an older term, elected late by votes that were delayed or held by a pause, may
///   lack entries a newer term committed: it can commit nothing);
/// - state machine safety: every node applies a prefix of one sequence;
/// - committed entries never change, on any node, across crashes;
/// - commit index never decreases (in memory per incarnation; on disk across crashes);
/// - a vote, once persisted for a term, never changes in that term;
/// - a snapshot (created or installed) holds exactly the state of the committed prefix it names,
///   and installing one never discards a committed entry;
/// - decisions only by a quorum of the configuration in force: a new leader received granted
///   votes for its term from a quorum of its configuration's voters, and a leader advances its
///   commit index to `i` only when a quorum of its voters acknowledged `i` (the simulator sees
///   every delivered message, so it knows both without asking the core).
struct Checker {
    struct EntryKey: Hashable {
        var index: LogIndex
        var term: Term
    }

    struct EntryFacts {
        var data: [UInt8]
        var prevTerm: Term
    }

    private var leaderOfTerm: [Term: NodeID] = [:]
    /// `committedTerms[i - 1]` is the term of committed entry `i`.
    private(set) var committedTerms: [Term] = []
    /// `commitTerms[i - 1]` is the term in which entry `i` was first known committed: the term
    /// of the leader that committed it (a leader learns a commit before anyone it tells).
    private var commitTerms: [Term] = []
    /// The one sequence every state machine applies a prefix of.
    private var appliedSequence: [Entry] = []
    /// `digests[i - 1]` is the application state (`SimApp.digest`) after applying entry `i`.
    private var digests: [UInt64] = []
    private var registry: [EntryKey: EntryFacts] = [:]
    private var lastCommit: [LogIndex]
    private var verifiedCommit: [LogIndex]
    private var nextApply: [LogIndex]
    private var leaderCheckedTerm: [Term]
    /// Granted (real) votes delivered to each candidate, per term.
    private var votesGranted: [NodeKey: Set<NodeID>] = [:]
    /// Highest index each follower acknowledged to each leader, per term.
    private var appendAcks: [NodeKey: [NodeID: LogIndex]] = [:]
    /// Per node: the term it leads and the commit index already justified in it.
    private var leaderCommitChecked: [(term: Term, commit: LogIndex)]
    /// Membership changes applied (each counted once, when first applied anywhere).
    private(set) var confChangesApplied = 0
    /// The configuration the applied sequence has reached (the founders', then each change's).
    private var appliedConf: ConfState

    struct ReadArrival {
        var leader: NodeID
        var term: Term
        /// Order of arrival at leaders, over the whole run.
        var seq: UInt64
    }

    /// Each read's arrival at the leader that confirms it.
    var readArrival: [UInt64: ReadArrival] = [:]
    var readArrivals: UInt64 = 0
    /// Per leader and term, per voter: the latest read arrival a heartbeat answer confirmed.
    var readConfirmations: [NodeKey: [NodeID: UInt64]] = [:]

    struct RoundKey: Hashable {
        var leader: NodeID
        var term: Term
        var round: UInt64
    }

    /// Each heartbeat round a leader sent (its `context`): how many reads had arrived at
    /// leaders when it went out.
    var roundsSent: [RoundKey: UInt64] = [:]

    struct NodeKey: Hashable {
        var node: NodeID
        var term: Term
    }

    init(nodeCount: Int, founders: ConfState) {
        appliedConf = founders
        lastCommit = Array(repeating: 0, count: nodeCount)
        verifiedCommit = Array(repeating: 0, count: nodeCount)
        nextApply = Array(repeating: 1, count: nodeCount)
        leaderCheckedTerm = Array(repeating: 0, count: nodeCount)
        leaderCommitChecked = Array(repeating: (0, 0), count: nodeCount)
    }

    /// Every delivered message: the evidence a node's decisions must rest on.
    mutating func delivered(_ m: Message) {
        switch m.kind {
        case .voteResponse where !m.reject:
            votesGranted[NodeKey(node: m.to, term: m.term), default: []].insert(m.from)
        case .appendResponse where !m.reject:
            let key = NodeKey(node: m.to, term: m.term)
            appendAcks[key, default: [:]][m.from] = max(appendAcks[key]?[m.from] ?? 0, m.index)
        default:
            break
        }
    }

    mutating func nodeStarted(_ i: Int, raft: RaftNode, disk: MemoryStorage) {
        lastCommit[i] = raft.commitIndex
        // Re-verify the restarted node's whole committed prefix: committed entries must survive.
        verifiedCommit[i] = 0
        nextApply[i] = raft.appliedIndex + 1
        leaderCheckedTerm[i] = 0
    }

    /// After every event, for every live node.
    mutating func observe(_ i: Int, raft: inout RaftNode, confBefore: ConfState?) -> Violation? {
        if raft.role == .leader, let v = checkLeader(i, raft: raft) { return v }
        if raft.role == .leader, let v = checkCommitQuorum(i, raft: raft, confBefore: confBefore) { return v }
        if raft.commitIndex < lastCommit[i] {
            return Violation(invariant: "commit-monotonic", detail: "node \(raft.id) commit fell from \(lastCommit[i]) to \(raft.commitIndex)")
        }
        lastCommit[i] = raft.commitIndex
        return absorbCommits(i, raft: raft)
    }

    mutating func becameLeader(_ i: Int, raft: inout RaftNode) -> Violation? {
        let voters = raft.conf.voters
        let granted = (votesGranted[NodeKey(node: raft.id, term: raft.term)] ?? []).union([raft.id])
        let counted = granted.intersection(voters)
        if counted.count < voters.count / 2 + 1 {
            return Violation(invariant: "vote-quorum",
                             detail: "node \(raft.id) leads term \(raft.term) with votes from \(counted.sorted()) of voters \(voters.sorted()) (grants from \(granted.sorted()))")
        }
        leaderCommitChecked[i] = (raft.term, raft.commitIndex)
        return checkLeader(i, raft: raft)
    }

    /// A leader's commit index moved: a quorum of its voters (itself by its own log) must
    /// have acknowledged the new commit index in this term. The configuration in force is the
    /// one after the event or, for a commit decided before a change applied in the same event,
    /// the one before it.
    private mutating func checkCommitQuorum(_ i: Int, raft: RaftNode, confBefore: ConfState?) -> Violation? {
        let commit = raft.commitIndex
        guard leaderCommitChecked[i].term == raft.term, commit > leaderCommitChecked[i].commit else { return nil }
        // Paper §5.4.2 (Figure 8): a leader commits by counting replicas only an entry of its
        // own term; earlier entries commit with it.
        if raft.term(at: commit) != raft.term {
            return Violation(invariant: "commit-own-term",
                             detail: "leader \(raft.id) of term \(raft.term) commits \(commit), an entry of \(raft.term(at: commit).map { "term \($0)" } ?? "no term it holds")")
        }
        let acks = appendAcks[NodeKey(node: raft.id, term: raft.term)] ?? [:]
        func holding(_ voters: Set<NodeID>) -> Set<NodeID> {
            voters.filter { $0 == raft.id ? raft.lastIndex >= commit : (acks[$0] ?? 0) >= commit }
        }
        let voters = raft.conf.voters
        let before = confBefore?.voters ?? voters
        if holding(voters).count < voters.count / 2 + 1 && holding(before).count < before.count / 2 + 1 {
            return Violation(invariant: "commit-quorum",
                             detail: "leader \(raft.id) of term \(raft.term) commits \(commit) acknowledged only by \(holding(voters).sorted()) of voters \(voters.sorted()) (before: \(holding(before).sorted()) of \(before.sorted()))")
        }
        leaderCommitChecked[i].commit = commit
        return nil
    }

    private mutating func checkLeader(_ i: Int, raft: RaftNode) -> Violation? {
        if let other = leaderOfTerm[raft.term], other != raft.id {
            return Violation(invariant: "election-safety", detail: "nodes \(other) and \(raft.id) both leaders of term \(raft.term)")
        }
        leaderOfTerm[raft.term] = raft.id
        guard leaderCheckedTerm[i] != raft.term else { return nil }
        leaderCheckedTerm[i] = raft.term
        if let v = absorbCommits(i, raft: raft) { return v }
        for (k, t) in committedTerms.enumerated() where commitTerms[k] < raft.term {
            let index = LogIndex(k + 1)
            if index + 1 < raft.firstIndex { continue }  // Compacted: the snapshot holds its state.
            if raft.term(at: index) != t {
                return Violation(invariant: "leader-completeness",
                                 detail: "leader \(raft.id) of term \(raft.term) lacks committed entry \(index)/t\(t) (has \(raft.term(at: index).map { "t\($0)" } ?? "nothing"))")
            }
        }
        return nil
    }

    /// Extends the known-committed sequence with the node's committed prefix, or finds a conflict.
    private mutating func absorbCommits(_ i: Int, raft: RaftNode) -> Violation? {
        let commit = raft.commitIndex
        guard verifiedCommit[i] < commit else { return nil }
        for index in (verifiedCommit[i] + 1)...commit {
            let k = Int(index - 1)
            guard let t = raft.term(at: index) else {
                if index < raft.firstIndex && k < committedTerms.count {
                    continue  // Compacted into a snapshot, whose state was checked when made or installed.
                }
                return Violation(invariant: "committed-entries-stable", detail: "node \(raft.id) commit \(commit) but has no entry \(index)")
            }
            if k < committedTerms.count {
                if committedTerms[k] != t {
                    return Violation(invariant: "state-machine-safety",
                                     detail: "node \(raft.id) committed \(index)/t\(t) but \(index)/t\(committedTerms[k]) was committed before")
                }
            } else {
                committedTerms.append(t)
                commitTerms.append(raft.term)
            }
        }
        verifiedCommit[i] = commit
        return nil
    }

    /// Before a node persists a Ready: the write must not replace committed entries, must agree
    /// with every other copy of the same (index, term), and must not move the vote within a term.
    mutating func willPersist(_ i: Int, _ rd: Ready, node raft: inout RaftNode, disk: MemoryStorage) -> Violation? {
        if let snap = rd.snapshot {
            // Installing discards the log: legal only if no committed entry after the snapshot
            // is among what it discards (the node could be part of the quorum that holds it).
            let diskLast = (try? disk.lastIndex()) ?? 0
            let checkedLast = min(diskLast, LogIndex(committedTerms.count))
            if snap.index < checkedLast {
                for index in (snap.index + 1)...checkedLast where (try? disk.term(index)) == committedTerms[Int(index - 1)] {
                    return Violation(invariant: "committed-entries-stable",
                                     detail: "node \(raft.id) installs snapshot \(snap.index)/t\(snap.term), discarding committed \(index)/t\(committedTerms[Int(index - 1)])")
                }
            }
        }
        if let first = rd.entries.first {
            // A node that holds a committed entry never loses it: Raft truncates only entries
            // that conflict with a leader's log, and every later leader holds every committed
            // entry. (A lagging node may still hold, or even receive from a stale leader of its
            // own term, a different entry at a committed index: that one is replaced later.)
            let committedCount = LogIndex(committedTerms.count)
            let diskLast = (try? disk.lastIndex()) ?? 0
            let lastWritten = rd.entries.last!.index
            let checkedLast = min(diskLast, committedCount)
            if first.index <= checkedLast {
                for index in first.index...checkedLast {
                    let committedTerm = committedTerms[Int(index - 1)]
                    guard (try? disk.term(index)) == committedTerm else { continue }
                    let written = index <= lastWritten ? rd.entries[Int(index - first.index)].term : nil
                    if written != committedTerm {
                        return Violation(invariant: "committed-entries-stable",
                                         detail: "node \(raft.id) replaces committed \(index)/t\(committedTerm) with \(written.map { "t\($0)" } ?? "nothing") (writes \(first.index)...\(lastWritten))")
                    }
                }
            }
            var prevTerm = raft.term(at: first.index - 1) ?? 0
            for e in rd.entries {
                let key = EntryKey(index: e.index, term: e.term)
                if let facts = registry[key] {
                    if facts.data != e.data || facts.prevTerm != prevTerm {
                        return Violation(invariant: "log-matching",
                                         detail: "node \(raft.id) holds \(e.index)/t\(e.term) with different content or predecessor term (t\(prevTerm) vs t\(facts.prevTerm))")
                    }
                } else {
                    registry[key] = EntryFacts(data: e.data, prevTerm: prevTerm)
                }
                prevTerm = e.term
            }
        }
        if let hs = rd.hardState {
            let old = disk.hardState
            if hs.term < old.term {
                return Violation(invariant: "term-monotonic", detail: "node \(raft.id) persists term \(hs.term) after \(old.term)")
            }
            if hs.term == old.term && old.vote != noNode && hs.vote != old.vote {
                return Violation(invariant: "one-vote-per-term",
                                 detail: "node \(raft.id) changes its vote in term \(hs.term) from \(old.vote) to \(hs.vote)")
            }
            if hs.commit < old.commit {
                return Violation(invariant: "commit-monotonic", detail: "node \(raft.id) persists commit \(hs.commit) after \(old.commit)")
            }
        }
        return nil
    }

    /// When a node applies an entry.
    mutating func applied(_ i: Int, _ e: Entry, raft: inout RaftNode) -> Violation? {
        if e.index != nextApply[i] {
            return Violation(invariant: "apply-order", detail: "node \(raft.id) applies \(e.index), expected \(nextApply[i])")
        }
        if e.index > raft.commitIndex {
            return Violation(invariant: "apply-committed-only", detail: "node \(raft.id) applies \(e.index) beyond its commit \(raft.commitIndex)")
        }
        nextApply[i] = e.index + 1
        let k = Int(e.index - 1)
        if k < appliedSequence.count {
            let want = appliedSequence[k]
            if want.term != e.term || want.data != e.data {
                return Violation(invariant: "state-machine-safety",
                                 detail: "node \(raft.id) applies \(e.index)/t\(e.term) where \(e.index)/t\(want.term) was applied before")
            }
        } else {
            precondition(k == appliedSequence.count, "applied sequence gap")
            digests.append(SimApp.mix(digests.last ?? SimApp.initialDigest, e))
            appliedSequence.append(e)
            if e.kind == .confChange, let change = try? ConfChangeEntry.decode(e.data) {
                confChangesApplied += 1
                // One server at a time (ADR 0005): consecutive configurations differ by at most
                // one voter, so any two quorums of them intersect.
                let moved = change.conf.voters.symmetricDifference(appliedConf.voters)
                if moved.count > 1 {
                    return Violation(invariant: "one-voter-per-change",
                                     detail: "entry \(e.index) (\(change.change)) moves voters \(appliedConf.voters.sorted()) to \(change.conf.voters.sorted()): \(moved.count) voters differ")
                }
                appliedConf = change.conf
            }
        }
        return nil
    }

    /// A node's snapshot (made by compaction, or installed from the leader's) must hold exactly
    /// the state after applying the one applied sequence up to its index, under its term.
    func checkSnapshot(_ meta: SnapshotMetadata, data: [UInt8], node: NodeID, what: String) -> Violation? {
        guard let (index, digest) = SimApp.decode(data), index == meta.index else {
            return Violation(invariant: "snapshot-state", detail: "node \(node) \(what) snapshot \(meta.index)/t\(meta.term) whose data is not the state at \(meta.index) (\(data.count) bytes)")
        }
        let k = Int(index - 1)
        guard k < digests.count else {
            return Violation(invariant: "snapshot-state", detail: "node \(node) \(what) snapshot \(index) beyond every applied entry (\(digests.count))")
        }
        if digests[k] != digest {
            return Violation(invariant: "snapshot-state", detail: "node \(node) \(what) snapshot \(index) whose state differs from the applied sequence's")
        }
        if k < committedTerms.count && committedTerms[k] != meta.term {
            return Violation(invariant: "snapshot-state", detail: "node \(node) \(what) snapshot \(index)/t\(meta.term) but \(index)/t\(committedTerms[k]) was committed")
        }
        return nil
    }

    /// After a node installed a snapshot: it applies from the entry after it.
    mutating func installed(_ i: Int, _ meta: SnapshotMetadata, data: [UInt8], node: NodeID) -> Violation? {
        if let v = checkSnapshot(meta, data: data, node: node, what: "installs") { return v }
        nextApply[i] = meta.index + 1
        return nil
    }
}
