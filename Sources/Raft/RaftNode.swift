/// One Raft peer's consensus state machine. Pure: inputs are `tick()`, `step(_:)`,
/// `propose(_:)` and `campaign()`; output is a `Ready` that the driver handles and then
/// acknowledges with `advance(_:)`. It reads durable entries through `RaftStorage` and never
/// writes; it has no clock (time is `tick()`) and no randomness but its injected generator.
///
/// Driver contract (asserted): between `ready()` and `advance(_:)` no other input is given.
public struct RaftNode {
    public let id: NodeID
    let config: RaftConfig

    public internal(set) var term: Term = 0
    public internal(set) var vote: NodeID = noNode
    public internal(set) var role: Role = .follower
    public internal(set) var leader: NodeID = noNode
    public internal(set) var conf: ConfState

    var log: RaftLog
    /// The leader's view of every peer, itself included. Maintained in every role.
    var progress: [NodeID: Progress] = [:]
    /// Votes (or pre-votes) received in the current campaign.
    var votes: [NodeID: Bool] = [:]

    /// Ticks since the last election timeout reset (leader contact, vote granted, or step-down check).
    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    var rng: any RandomNumberGenerator

    /// Payload bytes appended as leader and not yet handed to the application.
    var uncommittedBytes = 0
    /// Proposals arrived since the last Ready: one broadcast carries them all.
    var proposalsPending = false

    /// Leadership transfer in progress to this voter (thesis §3.10), or `noNode`.
    public internal(set) var leadTransferee: NodeID = noNode
    /// Linearizable reads waiting for leadership confirmation (thesis §6.4).
    var reads = ReadIndexQueue()
    /// Reads confirmed since the last Ready.
    var readStates: [ReadState] = []

    /// The snapshot this follower is receiving, in chunks (volatile: a restart loses it and the
    /// leader starts over at offset 0).
    var staging: SnapshotStaging?
    /// Chunks accepted in order since the last Ready: the driver stages them (`Ready.snapshotChunks`).
    var chunksToStage: [SnapshotChunk] = []

    /// Messages produced since the last Ready.
    var outbox: [Message] = []
    var prevHardState: HardState
    var prevSoftState: SoftState
    var awaitingAdvance = false

    /// Set when a storage read failed. A halted node neither sends nor accepts anything.
    public internal(set) var haltReason: String?
    public internal(set) var counters = RaftCounters()

    /// Starts a node from whatever `storage` holds (an empty storage means a fresh node).
    /// `rng` drives the randomized election timeout; seed it for reproducible runs.
    public init(config: RaftConfig, storage: any RaftStorage, rng: any RandomNumberGenerator) throws(StorageError) {
        if let why = config.validationError() { preconditionFailure("invalid RaftConfig: \(why)") }
        self.id = config.id
        self.config = config
        self.rng = rng
        let (hs, cs) = try storage.initialState()
        conf = cs
        log = try RaftLog(storage: storage, committed: hs.commit, applied: config.applied)
        term = hs.term
        vote = hs.vote
        prevHardState = hs
        prevSoftState = SoftState(leader: noNode, role: .follower)
        becomeFollower(term: hs.term, leader: noNode)
    }

    /// Convenience: the election timeout is randomized by SplitMix64 seeded with `seed`.
    public init(config: RaftConfig, storage: any RaftStorage, seed: UInt64) throws(StorageError) {
        try self.init(config: config, storage: storage, rng: SplitMix64(seed: seed))
    }

    public var hardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }
    public var softState: SoftState { SoftState(leader: leader, role: role) }
    public var commitIndex: LogIndex { log.committed }
    public var appliedIndex: LogIndex { log.applied }
    public var lastIndex: LogIndex { log.lastIndex }
    public var firstIndex: LogIndex { log.firstIndex }

    /// Term of the entry at `index` as this node sees it, if it has it.
    public func term(at index: LogIndex) -> Term? { log.term(index) }

    /// True if this node may campaign: a voter that has not halted.
    var isPromotable: Bool { conf.voters.contains(id) && haltReason == nil }

    // MARK: - Inputs

    /// Advances logical time by one tick.
    public mutating func tick() {
        precondition(!awaitingAdvance, "tick() between ready() and advance()")
        guard haltReason == nil else { return }
        if role == .leader {
            tickLeader()
        } else {
            tickElection()
        }
        checkStorage()
    }

    /// Starts an election now (with a pre-vote round if enabled), as if the timeout fired.
    public mutating func campaign() {
        precondition(!awaitingAdvance, "campaign() between ready() and advance()")
        hup()
        checkStorage()
    }

    /// Proposes one entry. On the leader returns where it was appended; otherwise throws.
    @discardableResult
    public mutating func propose(_ data: [UInt8]) throws(ProposalError) -> ProposalTicket {
        let range = try propose(batch: CollectionOfOne(data))
        return ProposalTicket(index: range.lowerBound, term: term)
    }

    /// Proposes a batch of entries, appended contiguously. All or nothing.
    @discardableResult
    public mutating func propose<C: Collection>(batch: C) throws(ProposalError) -> ClosedRange<LogIndex> where C.Element == [UInt8] {
        precondition(!awaitingAdvance, "propose() between ready() and advance()")
        precondition(!batch.isEmpty, "empty proposal batch")
        if let why = haltReason { throw .halted(why) }
        guard role == .leader else { throw .notLeader(leader: leader) }
        if leadTransferee != noNode { throw .transferInProgress(to: leadTransferee) }
        let bytes = batch.reduce(0) { $0 + $1.count }
        if config.uncommittedBytesMax > 0 && uncommittedBytes > 0 && uncommittedBytes + bytes > config.uncommittedBytesMax {
            counters.proposalsRefused += 1
            throw .uncommittedLogFull(uncommittedBytes: uncommittedBytes, proposedBytes: bytes, limitBytes: config.uncommittedBytesMax)
        }
        uncommittedBytes += bytes
        let first = log.lastIndex + 1
        var entries: [Entry] = []
        entries.reserveCapacity(batch.count)
        var index = first
        for data in batch {
            entries.append(Entry(term: term, index: index, data: data))
            index += 1
        }
        appendAsLeader(entries)
        proposalsPending = true
        return first...(index - 1)
    }

    /// Feeds a message from a peer. Invalid or irrelevant messages are ignored, and the
    /// result says why; a message can never crash the node.
    @discardableResult
    public mutating func step(_ m: Message) -> StepResult {
        precondition(!awaitingAdvance, "step() between ready() and advance()")
        if let why = haltReason { return .ignored(.halted(why)) }
        let result = stepChecked(m)
        if case .ignored(let reason) = result { counters.noteIgnored(reason) }
        checkStorage()
        return result
    }

    // MARK: - Output

    /// True if `ready()` has something for the driver.
    public var hasReady: Bool {
        if proposalsPending || !outbox.isEmpty || !readStates.isEmpty || !log.unstable.isEmpty || log.unstableSnapshot != nil
            || !chunksToStage.isEmpty { return true }
        if softState != prevSoftState || reportedHardState != prevHardState { return true }
        return log.hasNextCommittedEntries
    }

    /// Collects what the driver must do. Handle it in this order, then call `advance(_:)`:
    /// 1. persist `snapshotChunks` (stage them), `snapshot` (install it), `entries` and
    ///    `hardState` (durably if `mustSync`);
    /// 2. send `messages`; 3. apply `committedEntries`.
    public mutating func ready() -> Ready {
        precondition(!awaitingAdvance, "ready() called twice without advance()")
        if proposalsPending {
            proposalsPending = false
            if role == .leader { broadcastAppend(sendIfEmpty: false) }
        }
        var rd = Ready()
        rd.entries = log.unstable
        rd.snapshotChunks = chunksToStage
        chunksToStage = []
        rd.snapshot = log.unstableSnapshot
        rd.committedEntries = log.nextCommittedEntries(maxBytes: config.applyBytesMaxPerReady)
        rd.messages = outbox
        outbox = []
        rd.readStates = readStates
        readStates = []
        let hs = reportedHardState
        if hs != prevHardState {
            rd.hardState = hs
            rd.mustSync = hs.term != prevHardState.term || hs.vote != prevHardState.vote
        }
        if !rd.entries.isEmpty || rd.snapshot != nil || !rd.snapshotChunks.isEmpty { rd.mustSync = true }
        let ss = softState
        if ss != prevSoftState { rd.softState = ss }
        rd.haltReason = haltReason
        awaitingAdvance = true
        return rd
    }

    /// The driver finished handling `rd` (persisted, sent, applied).
    public mutating func advance(_ rd: Ready) {
        precondition(awaitingAdvance, "advance() without ready()")
        awaitingAdvance = false
        if let hs = rd.hardState { prevHardState = hs }
        if let ss = rd.softState { prevSoftState = ss }
        if let s = rd.snapshot { log.stableSnapshot(s) }
        if let last = rd.entries.last { log.stable(to: last.index, term: last.term) }
        if let last = rd.committedEntries.last {
            precondition(last.index == log.applied + LogIndex(rd.committedEntries.count), "applied entries not contiguous")
            log.applied = last.index
            if role == .leader {
                let bytes = rd.committedEntries.reduce(0) { $0 + $1.data.count }
                uncommittedBytes = max(0, uncommittedBytes - bytes)
            }
        }
    }

    /// The hard state as reported to the driver (a planted bug may hide the vote).
    var reportedHardState: HardState {
        var hs = hardState
        if config.plantedBugs.contains(.voteNotPersisted) {
            hs.vote = hs.term == prevHardState.term ? prevHardState.vote : noNode
        }
        return hs
    }

    // MARK: - Role transitions

    mutating func becomeFollower(term newTerm: Term, leader newLeader: NodeID) {
        reset(term: newTerm)
        leader = newLeader
        role = .follower
    }

    mutating func becomePreCandidate() {
        precondition(role != .leader, "leader cannot become pre-candidate")
        // Neither the term nor the vote changes: a pre-vote disturbs nobody (thesis §9.6).
        votes = [:]
        leader = noNode
        role = .preCandidate
    }

    mutating func becomeCandidate() {
        precondition(role != .leader, "leader cannot become candidate")
        reset(term: term + 1)
        vote = id
        role = .candidate
    }

    mutating func becomeLeader() {
        precondition(role == .candidate, "only a candidate becomes leader, was \(role)")
        reset(term: term)
        leader = id
        role = .leader
        progress[id]?.becomeReplicate()
        counters.leadersElected += 1
        // Raft thesis §6.4 / paper §8: a new leader commits an entry of its own term, which
        // commits every earlier entry (Figure 8 rule) and lets it serve reads.
        appendAsLeader([Entry(term: term, index: log.lastIndex + 1)])
    }

    mutating func reset(term newTerm: Term) {
        if term != newTerm {
            term = newTerm
            vote = noNode
        }
        leader = noNode
        electionElapsed = 0
        heartbeatElapsed = 0
        resetRandomizedElectionTimeout()
        votes = [:]
        uncommittedBytes = 0
        proposalsPending = false
        leadTransferee = noNode
        // Unconfirmed reads are dropped: the driver fails them when it sees the role change.
        reads = ReadIndexQueue()
        let last = log.lastIndex
        var fresh: [NodeID: Progress] = [:]
        for peer in conf.all {
            var pr = Progress(next: last + 1, inflightMax: config.inflightMessagesMax, isLearner: conf.learners.contains(peer))
            if peer == id { pr.match = last }
            fresh[peer] = pr
        }
        progress = fresh
    }

    mutating func resetRandomizedElectionTimeout() {
        let base = config.electionTimeoutTicks
        randomizedElectionTimeout = base + Int.random(in: 0..<base, using: &rng)
    }

    // MARK: - Helpers

    mutating func send(_ m: Message) {
        precondition(m.to != id, "message to self: \(m)")
        outbox.append(m)
    }

    mutating func checkStorage() {
        if haltReason == nil, let why = log.storageFailure {
            haltReason = "storage read failed: \(why)"
            outbox = []
            chunksToStage = []
            staging = nil
            role = .follower
            leader = noNode
        }
    }
}

/// What the driver must do next. See `RaftNode.ready()` for the order.
public struct Ready: Sendable {
    /// New leader or role, if changed. Informational: nothing to persist.
    public var softState: SoftState?
    /// Persist BEFORE sending `messages` (a vote must be durable before the vote is sent).
    public var hardState: HardState?
    /// Append to stable storage BEFORE sending `messages`, replacing every stored entry at or
    /// after `entries[0].index` (a conflicting suffix is truncated).
    public var entries: [Entry] = []
    /// Snapshot chunks to stage, in order, BEFORE everything else. A chunk at offset 0 starts a
    /// new staged snapshot (drop what was staged); every other chunk continues the staged one
    /// exactly where it ends. Staged data is invisible to reads until installed. Persisting
    /// them is what the acknowledgements in `messages` vouch for.
    public var snapshotChunks: [SnapshotChunk] = []
    /// A completely staged snapshot to INSTALL, after staging `snapshotChunks` and BEFORE
    /// `entries`: it becomes the store's snapshot (its data is the staged data) and the whole log
    /// is discarded (the core asks for an install only when its log lacks the snapshot's last
    /// entry). The application then restores its state from the snapshot's data, read from the
    /// store, before applying `committedEntries` (which all follow `snapshot.index`).
    public var snapshot: SnapshotMetadata?
    /// Apply in order, AFTER persisting the above. All of them are already durable locally.
    public var committedEntries: [Entry] = []
    /// Send AFTER persisting. Delivery may fail: Raft retries.
    public var messages: [Message] = []
    /// Confirmed linearizable reads: serve each once the applied index reaches `index`.
    public var readStates: [ReadState] = []
    /// Whether the writes above must be fsync'd before sending (false when only `commit` moved).
    public var mustSync = false
    /// Set once the node halted (storage failure): stop the peer and report it.
    public var haltReason: String?

    public init() {}

    public var isEmpty: Bool {
        softState == nil && hardState == nil && entries.isEmpty && snapshot == nil && snapshotChunks.isEmpty
            && committedEntries.isEmpty && messages.isEmpty && readStates.isEmpty
    }
}

/// Counters for tests, the simulator and metrics.
public struct RaftCounters: Sendable, Hashable {
    public var electionsStarted = 0
    public var preVotesStarted = 0
    public var leadersElected = 0
    public var proposalsRefused = 0
    public var transfersStarted = 0
    public var readsConfirmed = 0
    public var messagesIgnored = 0
    public var malformedMessages = 0
    /// Leader: snapshot transfers started (including restarts for a newer local snapshot).
    public var snapshotTransfersStarted = 0
    /// Leader: snapshot transfers the follower acknowledged as complete.
    public var snapshotTransfersCompleted = 0
    /// Leader: snapshot chunks sent (resends included).
    public var snapshotChunksSent = 0
    /// Leader: resends from the last acknowledged offset (silence, rejection, unreachable).
    public var snapshotRetries = 0
    /// Follower: snapshots completely received and handed to the driver to install.
    public var snapshotsInstalled = 0

    mutating func noteIgnored(_ reason: IgnoreReason) {
        messagesIgnored += 1
        if case .malformed = reason { malformedMessages += 1 }
    }
}
