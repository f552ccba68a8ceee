import Raft

/// Where in a Ready's handling (persist, send, apply, advance) a crash strikes.
enum CrashPoint: CaseIterable {
    case none
    /// In the middle of the write: a prefix of it survives (a torn write).
    case midPersist
    /// After the write, before any message after it goes out.
    case afterPersist
    /// Between two sends.
    case midSend
    /// After the sends, before the application applies the committed entries.
    case afterSend
    /// After applying, before `advance`.
    case afterApply
}

/// One simulated peer: a `RaftNode` while it is up, and its disk, which survives crashes.
struct SimNode {
    let id: NodeID
    let config: RaftConfig
    /// What is durable. The running node reads it; only `persist` writes it.
    let disk: MemoryStorage
    var raft: RaftNode?
    /// `raft != nil`, kept as a flag: testing the optional copies the whole node.
    private(set) var isUp = false
    var incarnation = 0
    /// Where the node crashes in its next Ready handling, if anywhere.
    var crashAtNextReady = CrashPoint.none
    /// The last hard state written with fsync. A write without fsync (`mustSync == false`, only
    /// the commit index moved) may be lost in a crash.
    var syncedHardState = HardState.empty
    var unsyncedWrite = false
    /// The application: a digest of every entry applied, in order, up to `appliedIndex`
    /// (volatile: rebuilt at start from the disk's snapshot, then by re-applying the log).
    var app = SimApp()
    /// This node's clock rate in per mille of real time, and the fraction of a tick it has
    /// accumulated: each real tick adds `clockRate`, and every 1000 is one tick of the node.
    var clockRate = 1000
    var clockCarry = 0
    /// Non-zero while the process is paused: the real tick at which it resumes.
    var pausedUntil: UInt64 = 0
    /// Until this real tick the driver is slow: it handles at most one Ready of this node per
    /// event, so the application falls behind the commit index.
    var slowUntil: UInt64 = 0
    /// While down: the real tick at which its supervisor starts it again.
    var restartAt: UInt64 = 0

    var isPaused: Bool { pausedUntil != 0 }
    var isLeader: Bool { isUp && raft!.role == .leader }
    /// A mutating getter reads the node in place: a copy of a `RaftNode` retains every buffer.
    var hasReady: Bool {
        mutating get { raft!.hasReady }
    }

    init(id: NodeID, config: RaftConfig, disk: MemoryStorage) {
        self.id = id
        self.config = config
        self.disk = disk
    }

    mutating func start(seed: UInt64) {
        incarnation += 1
        restartAt = 0
        isUp = true
        app = SimApp(restoring: disk.latestSnapshot)
        do {
            raft = try RaftNode(config: config, storage: disk, seed: seed)
        } catch {
            preconditionFailure("memory storage cannot fail: \(error)")
        }
    }

    /// Writes a Ready's durable part, in the order the contract gives.
    mutating func persist(_ rd: Ready) {
        disk.persist(rd)
        if rd.mustSync {
            syncedHardState = disk.hardState
            unsyncedWrite = false
        } else if rd.hardState != nil {
            unsyncedWrite = true
        }
    }

    /// The process dies in the middle of writing `rd`, before the write was synced: the first
    /// `kept` of its writes reached the disk, in the contract's order (staged chunks, the
    /// snapshot install, each entry, the hard state), the rest did not. The disk writes in
    /// order, so earlier writes are durable once any part of this one is.
    mutating func crashTearing(_ rd: Ready, kept: Int) {
        var left = kept
        for c in rd.snapshotChunks where left > 0 {
            disk.stageSnapshotChunk(c)
            left -= 1
        }
        if let s = rd.snapshot, left > 0 {
            disk.installStagedSnapshot(s)
            left -= 1
        }
        if left > 0 && !rd.entries.isEmpty {
            disk.append(Array(rd.entries.prefix(left)))
            left -= min(left, rd.entries.count)
        }
        if let hs = rd.hardState, left > 0 { disk.setHardState(hs) }
        if kept > 0 {
            syncedHardState = disk.hardState
            unsyncedWrite = false
        }
        crash(loseUnsynced: true)
    }

    /// How many separate writes `crashTearing` may keep of `rd`.
    static func writeCount(_ rd: Ready) -> Int {
        rd.snapshotChunks.count + (rd.snapshot == nil ? 0 : 1) + rd.entries.count + (rd.hardState == nil ? 0 : 1)
    }

    /// The process dies: volatile state is gone; an unsynced hard-state write may be lost too.
    mutating func crash(loseUnsynced: Bool) {
        raft = nil
        isUp = false
        crashAtNextReady = .none
        pausedUntil = 0
        slowUntil = 0
        clockCarry = 0
        if unsyncedWrite && loseUnsynced {
            disk.setHardState(syncedHardState)
        }
        unsyncedWrite = false
    }
}

/// The simulated application: its whole state is a running digest of the applied entries, so
/// the checker can compare replicas (and snapshots) by value.
struct SimApp {
    private(set) var appliedIndex: LogIndex = 0
    private(set) var digest: UInt64 = SimApp.initialDigest

    static let initialDigest: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a offset basis

    init() {}

    /// The state a snapshot holds (index 0: the empty state).
    init(restoring snap: Snapshot) {
        guard snap.metadata.index > 0 else { return }
        guard let (index, digest) = SimApp.decode(snap.data), index == snap.metadata.index else {
            preconditionFailure("snapshot \(snap.metadata.index) holds no simulated state")
        }
        appliedIndex = index
        self.digest = digest
    }

    mutating func apply(_ e: Entry) {
        precondition(e.index == appliedIndex + 1, "app applies \(e.index) after \(appliedIndex)")
        digest = SimApp.mix(digest, e)
        appliedIndex = e.index
    }

    static func mix(_ digest: UInt64, _ e: Entry) -> UInt64 {
        var h = digest
        func byte(_ b: UInt8) { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        for k in 0..<8 { byte(UInt8(truncatingIfNeeded: e.index >> (8 * UInt64(k)))) }
        for k in 0..<8 { byte(UInt8(truncatingIfNeeded: e.term >> (8 * UInt64(k)))) }
        byte(e.kind.rawValue)
        for b in e.data { byte(b) }
        return h
    }

    /// Snapshot data: index and digest (16 bytes), then 0-199 filler bytes derived from them,
    /// so snapshots span several chunks and a corrupted or misplaced chunk changes the bytes.
    static func encode(index: LogIndex, digest: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: index >> (8 * UInt64(k)))) }
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: digest >> (8 * UInt64(k)))) }
        var rng = SplitMix64(seed: digest ^ index)
        for _ in 0..<Int(digest % 200) { out.append(UInt8(truncatingIfNeeded: rng.next())) }
        return out
    }

    static func decode(_ data: [UInt8]) -> (LogIndex, UInt64)? {
        guard data.count >= 16 else { return nil }
        var index: UInt64 = 0, digest: UInt64 = 0
        for k in 0..<8 { index |= UInt64(data[k]) << (8 * UInt64(k)) }
        for k in 0..<8 { digest |= UInt64(data[8 + k]) << (8 * UInt64(k)) }
        guard data == encode(index: index, digest: digest) else { return nil }
        return (index, digest)
    }

    var snapshotData: [UInt8] { SimApp.encode(index: appliedIndex, digest: digest) }
}

/// The simulated network: messages waiting for their delivery tick, messages already due,
/// messages held for a paused node, and blocked links. A ring of buckets indexed by delivery
/// tick holds every future message (delays are below the ring's length); due messages are
/// taken in random order (reordering).
struct SimNetwork {
    private var future: [[Message]]
    private var due: [Message] = []
    /// Every bucket for a tick `<= flushedThrough` has been moved into `due`.
    private var flushedThrough: UInt64 = 0
    private var blocked: Set<UInt64> = []
    /// Nodes that are paused: messages due to them wait in `held` until they resume.
    private var paused: Set<NodeID> = []
    private var held: [Message] = []

    /// `delayTicksMax`: the longest delay `enqueue` will be asked for.
    init(delayTicksMax: Int) {
        future = Array(repeating: [], count: delayTicksMax + 1)
    }

    var delayTicksMax: UInt64 { UInt64(future.count - 1) }

    private static func link(_ from: NodeID, _ to: NodeID) -> UInt64 { from << 32 | to }

    func isBlocked(from: NodeID, to: NodeID) -> Bool { blocked.contains(Self.link(from, to)) }

    mutating func block(from: NodeID, to: NodeID) { blocked.insert(Self.link(from, to)) }

    /// Cuts every link between `side` and the rest, both ways.
    mutating func isolate(_ side: [NodeID], from all: [NodeID]) {
        for a in side {
            for b in all where !side.contains(b) {
                blocked.insert(Self.link(a, b))
                blocked.insert(Self.link(b, a))
            }
        }
    }

    mutating func healAll() { blocked.removeAll() }

    /// Messages due to `node` wait until `resume(node)` (a paused process reads no socket).
    mutating func pause(_ node: NodeID) { paused.insert(node) }

    /// The node reads its sockets again: what arrived meanwhile is due now, in random order
    /// with the rest.
    mutating func resume(_ node: NodeID) {
        guard paused.remove(node) != nil else { return }
        var kept: [Message] = []
        for m in held {
            if m.to == node { due.append(m) } else { kept.append(m) }
        }
        held = kept
    }

    /// Sends `m` to arrive `delay` ticks from `now` (`delay <= delayTicksMax`).
    mutating func enqueue(_ m: Message, now: UInt64, delay: UInt64) {
        precondition(delay <= delayTicksMax, "delay \(delay) beyond the network's \(delayTicksMax) ticks")
        flush(through: now)
        if delay == 0 {
            due.append(m)
        } else {
            future[Int((now + delay) % UInt64(future.count))].append(m)
        }
    }

    /// Removes and returns a random message that is due, if any (random choice = reordering).
    /// Messages on a link cut after they were sent are lost on delivery; messages to a paused
    /// node are held for it.
    mutating func takeDue(now: UInt64, rng: inout SplitMix64) -> Message? {
        flush(through: now)
        while !due.isEmpty {
            let k = Int(rng.next() % UInt64(due.count))
            due.swapAt(k, due.count - 1)
            let m = due.removeLast()
            if isBlocked(from: m.from, to: m.to) { continue }
            if paused.contains(m.to) {
                held.append(m)
                continue
            }
            return m
        }
        return nil
    }

    private mutating func flush(through now: UInt64) {
        while flushedThrough < now {
            flushedThrough += 1
            let slot = Int(flushedThrough % UInt64(future.count))
            due.append(contentsOf: future[slot])
            future[slot].removeAll(keepingCapacity: true)
        }
    }
}

/// What clients proposed and what they were told. A proposal is acknowledged when the node it
/// was proposed to applies the entry at its index with its term.
struct ClientLedger {
    struct Record {
        var node: NodeID
        var index: LogIndex
        var term: Term
        var acked = false
        var failed = false
    }

    private var nextID: UInt64 = 1
    private var records: [UInt64: Record] = [:]
    private(set) var ackedCount = 0
    private(set) var maxAckedIndex: LogIndex = 0

    mutating func newPayload(paddingBytes: Int) -> [UInt8] {
        var p = withUnsafeBytes(of: nextID.littleEndian) { Array($0) }
        p.append(contentsOf: repeatElement(UInt8(truncatingIfNeeded: nextID), count: paddingBytes))
        nextID += 1
        return p
    }

    static func payloadID(_ data: [UInt8]) -> UInt64? {
        guard data.count >= 8 else { return nil }
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(data[k]) << (8 * UInt64(k)) }
        return v
    }

    mutating func submitted(_ payload: [UInt8], node: NodeID, index: LogIndex, term: Term) {
        records[Self.payloadID(payload)!] = Record(node: node, index: index, term: term)
    }

    /// Called for every entry a node applies; returns the payload id if this acknowledges a proposal.
    mutating func appliedAt(node: NodeID, entry: Entry) -> UInt64? {
        guard let id = Self.payloadID(entry.data), var r = records[id], !r.acked, r.node == node else { return nil }
        if r.index == entry.index && r.term == entry.term {
            r.acked = true
            ackedCount += 1
            maxAckedIndex = max(maxAckedIndex, entry.index)
            records[id] = r
            return id
        }
        return nil
    }

    func isAcked(_ payload: [UInt8]) -> Bool { records[Self.payloadID(payload)!]?.acked == true }

    /// True once the proposal can no longer be acknowledged as things stand: the proposer applied
    /// past its index without acknowledging it, or no longer holds it in its log. The client then
    /// retries with a new proposal (the old one may still commit; that is fine).
    func isSuperseded(_ payload: [UInt8], proposer: (NodeID) -> RaftNode?) -> Bool {
        guard let r = records[Self.payloadID(payload)!], !r.acked else { return false }
        guard let node = proposer(r.node) else { return true }
        return node.appliedIndex >= r.index || node.term(at: r.index) != r.term
    }
}
