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

    /// Leader: index of the last configuration change it appended (or its last index when it
    /// took office, which may hold changes of earlier leaders). Another change may be proposed
    /// only once this is applied: one change at a time.
    var pendingConfIndex: LogIndex = 0
    /// Configuration changes applied at the last `advance`, for the next Ready.
    var confResults: [ConfChangeResult] = []

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
        if log.applied >= log.firstIndex { restoreAppliedConf() }
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

    /// True if this node may campaign: a voter, or a node outside its configuration (removed,
    /// and perhaps needed to hand over: ADR 0005), that has not halted. Learners never campaign.
    /// A candidate counts only the votes of its configuration's voters, so a non-member's own
    /// vote never counts.
    var isPromotable: Bool { haltReason == nil && (conf.voters.contains(id) || !conf.contains(id)) }

    /// A leader that is not a voter of its configuration (it applied its own removal, or won an
    /// election as a removed node): it serves no client and hands leadership to a voter.
    public var isHandingOver: Bool { role == .leader && !conf.voters.contains(id) }

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
        guard role == .leader, !isHandingOver else { throw .notLeader(leader: role == .leader ? noNode : leader) }
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
            || !chunksToStage.isEmpty || !confResults.isEmpty { return true }
        if softState != prevSoftState || reportedHardState != prevHardState { return true }
        return log.hasNextCommittedEntries
    }

    /// Collects what the driver must do. Handle it in this order, then call `advance(_:)`:
    /// 0. (optionally) send the first `sendableBeforePersist` of `messages`;
    /// 1. persist `snapshotChunks` (stage them), `snapshot` (install it), `entries` and
    ///    `hardState` (durably if `mustSync`);
    /// 2. send the rest of `messages`; 3. apply `committedEntries`.
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
        rd.confChanges = confResults
        confResults = []
        let hs = reportedHardState
        if hs != prevHardState {
            rd.hardState = hs
            rd.mustSync = hs.term != prevHardState.term || hs.vote != prevHardState.vote
        }
        if !rd.entries.isEmpty || rd.snapshot != nil || !rd.snapshotChunks.isEmpty { rd.mustSync = true }
        let ss = softState
        if ss != prevSoftState { rd.softState = ss }
        rd.haltReason = haltReason
        orderSendableBeforePersist(&rd)
        awaitingAdvance = true
        return rd
    }

    /// Moves the messages that may go out before `rd` is persisted to the front of
    /// `rd.messages`, keeping the order within each group, and counts them.
    func orderSendableBeforePersist(_ rd: inout Ready) {
        guard role == .leader, !rd.messages.isEmpty, rd.snapshot == nil, rd.snapshotChunks.isEmpty else { return }
        if let hs = rd.hardState, hs.term != prevHardState.term || hs.vote != prevHardState.vote { return }
        // The highest index durable before this Ready: its entries start right after it.
        let durableLast = rd.entries.first.map { $0.index - 1 } ?? LogIndex.max
        func early(_ m: Message) -> Bool {
            (m.kind == .append || m.kind == .heartbeat) && m.term == prevHardState.term && m.commit <= durableLast
        }
        // Usually already in order (a leader's Ready holds only appends and heartbeats): then
        // nothing moves and nothing is allocated.
        guard let firstLate = rd.messages.firstIndex(where: { !early($0) }) else {
            rd.sendableBeforePersist = rd.messages.count
            return
        }
        guard rd.messages[(firstLate + 1)...].contains(where: early) else {
            rd.sendableBeforePersist = firstLate
            return
        }
        var first: [Message] = []
        var rest: [Message] = []
        first.reserveCapacity(rd.messages.count)
        for m in rd.messages {
            if early(m) { first.append(m) } else { rest.append(m) }
        }
        rd.sendableBeforePersist = first.count
        first.append(contentsOf: rest)
        rd.messages = first
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
            // The application applied them: configuration changes take effect now (ADR 0005).
            applyConfChanges(in: rd.committedEntries)
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
        // The log may hold changes of earlier leaders, not yet applied: the first change of this
        // term waits until everything up to here is applied (and an entry of this term committed).
        pendingConfIndex = log.lastIndex
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
        reads.dropAll()
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
    /// Send AFTER persisting, except the first `sendableBeforePersist`. Delivery may fail: Raft
    /// retries.
    public var messages: [Message] = []
    /// How many of `messages`, from the front, may be sent BEFORE persisting this Ready, so that
    /// the leader's own fsync runs while its followers receive and persist the same entries
    /// (Raft thesis §10.2.1). Only a leader's `append` and `heartbeat` messages qualify, and only
    /// when this Ready changes neither term nor vote (the message's term is already durable)
    /// and no such message announces a commit index reaching this Ready's `entries` (what a
    /// follower may apply is already durable here). Safe because the leader counts itself
    /// towards a quorum for entries it has not persisted only until the driver steps the next
    /// message: every acknowledgement is stepped after this Ready is persisted. A driver that
    /// steps messages while a Ready is being persisted must send everything after persisting.
    public var sendableBeforePersist = 0
    /// Confirmed linearizable reads: serve each once the applied index reaches `index`.
    public var readStates: [ReadState] = []
    /// Configuration changes the core applied when the PREVIOUS Ready was advanced (the
    /// application had applied their entries): the configuration now in force (update the
    /// transport's peers), or why an entry's data was malformed (it changed nothing).
    public var confChanges: [ConfChangeResult] = []
    /// Whether the writes above must be fsync'd before sending (false when only `commit` moved).
    public var mustSync = false
    /// Set once the node halted (storage failure): stop the peer and report it.
    public var haltReason: String?

    public init() {}

    public var isEmpty: Bool {
        softState == nil && hardState == nil && entries.isEmpty && snapshot == nil && snapshotChunks.isEmpty
            && committedEntries.isEmpty && messages.isEmpty && readStates.isEmpty && confChanges.isEmpty
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
    /// Configuration changes applied, and `.confChange` entries whose data was malformed.
    public var confChangesApplied = 0
    public var confChangesMalformed = 0
    /// `leaderConnectionLost()` calls that started a pre-vote.
    public var leaderConnectionsLost = 0

    mutating func noteIgnored(_ reason: IgnoreReason) {
        messagesIgnored += 1
        if case .malformed = reason { malformedMessages += 1 }
    }
}
