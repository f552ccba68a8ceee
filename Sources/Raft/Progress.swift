/// A bounded ring of the last index of each append message in flight to one follower.
/// Pipelining sends up to `capacity` appends without waiting; each acknowledgement frees every
/// message it covers. When full, the leader pauses replication to that follower.
struct Inflights {
    let capacity: Int
    private var buffer: [LogIndex]
    private var start = 0
    private(set) var count = 0

    init(capacity: Int) {
        precondition(capacity > 0, "inflight capacity must be positive")
        self.capacity = capacity
        buffer = []
    }

    var isFull: Bool { count == capacity }

    mutating func add(_ index: LogIndex) {
        precondition(!isFull, "inflights full (capacity \(capacity))")
        if buffer.isEmpty { buffer = Array(repeating: 0, count: capacity) }
        if count > 0 {
            let prev = buffer[(start + count - 1) % capacity]
            precondition(index > prev, "inflight index \(index) not after \(prev)")
        }
        buffer[(start + count) % capacity] = index
        count += 1
    }

    /// Frees every in-flight message whose last index is `<= index`.
    mutating func free(upTo index: LogIndex) {
        while count > 0 && buffer[start] <= index {
            start = (start + 1) % capacity
            count -= 1
        }
        if count == 0 { start = 0 }
    }

    mutating func freeFirst() {
        guard count > 0 else { return }
        start = (start + 1) % capacity
        count -= 1
        if count == 0 { start = 0 }
    }

    mutating func reset() {
        start = 0
        count = 0
    }
}

/// How the leader replicates to one follower (etcd-io/raft `tracker.Progress`).
enum ReplicationState: Sendable, Hashable {
    /// One append at a time until the follower's match point is found.
    case probe
    /// Optimistic pipelining: `next` advances on send, bounded by the inflight window.
    case replicate
    /// A snapshot at `pendingIndex` is being sent (`Progress.transfer`); appends wait.
    case snapshot(pendingIndex: LogIndex)
}

/// The leader's side of one chunked snapshot transfer to one follower.
///
/// Invariants: `ackedOffset <= totalBytes`; `inflightEnds` is ascending, each end in
/// `(ackedOffset, nextOffset]`, and holds at most `snapshotChunksInflightMax` entries.
struct SnapshotTransfer: Sendable, Hashable {
    /// The snapshot being sent (the leader's current one when the transfer (re)started).
    var metadata: SnapshotMetadata
    var totalBytes: UInt64
    /// The follower has durably staged `[0, ackedOffset)` (as far as we know).
    var ackedOffset: UInt64 = 0
    /// The next byte to send.
    var nextOffset: UInt64 = 0
    /// End offsets of the chunks sent and not acknowledged yet, oldest first.
    var inflightEnds: [UInt64] = []
    /// The last chunk (`done`) was sent since the last rewind.
    var lastChunkSent = false
    /// Ticks since the follower last acknowledged new bytes; an election timeout of silence
    /// makes the leader resend from `ackedOffset`.
    var ticksWithoutProgress = 0
    /// Resends from `ackedOffset` after silence, a rejection or unreachability.
    var retries = 0
    /// The transport reported the follower unreachable: nothing is sent until it answers
    /// (a heartbeat or snapshot response) or the silence timeout fires.
    var paused = false

    init(metadata: SnapshotMetadata, totalBytes: UInt64) {
        self.metadata = metadata
        self.totalBytes = totalBytes
    }

    /// Forgets what is in flight and continues from the last acknowledged byte.
    mutating func rewind() {
        nextOffset = ackedOffset
        inflightEnds.removeAll()
        lastChunkSent = false
        ticksWithoutProgress = 0
    }

    /// The follower has staged `offset` bytes. Returns false if that is not news.
    mutating func acknowledge(_ offset: UInt64) -> Bool {
        guard offset > ackedOffset else { return false }
        ackedOffset = offset
        inflightEnds.removeAll { $0 <= offset }
        if nextOffset < offset {
            // The follower had more than we sent since a rewind (duplicates it re-acknowledged).
            nextOffset = offset
            inflightEnds.removeAll()
        }
        ticksWithoutProgress = 0
        paused = false
        return true
    }
}

/// The leader's view of one peer.
/// Invariant: `match < next`.
struct Progress {
    var match: LogIndex = 0
    var next: LogIndex
    var state: ReplicationState = .probe
    /// In probe state: an append was sent and its answer is awaited (one per heartbeat interval).
    var probeSent = false
    /// Heard from since the last check-quorum round.
    var recentActive = false
    var isLearner: Bool
    var inflights: Inflights
    /// The snapshot being sent. Invariant: non-nil exactly when `state` is `.snapshot`.
    var transfer: SnapshotTransfer?

    init(next: LogIndex, inflightMax: Int, isLearner: Bool) {
        self.next = next
        self.isLearner = isLearner
        self.inflights = Inflights(capacity: inflightMax)
    }

    var isPaused: Bool {
        switch state {
        case .probe: return probeSent
        case .replicate: return inflights.isFull
        case .snapshot: return true
        }
    }

    mutating func becomeProbe() {
        if case .snapshot(let pending) = state {
            // After a snapshot, resume right after whichever is further.
            next = max(match + 1, pending + 1)
        } else {
            next = match + 1
        }
        state = .probe
        probeSent = false
        inflights.reset()
        transfer = nil
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match + 1
        probeSent = false
        inflights.reset()
        transfer = nil
    }

    mutating func becomeSnapshot(_ t: SnapshotTransfer) {
        state = .snapshot(pendingIndex: t.metadata.index)
        probeSent = false
        inflights.reset()
        transfer = t
    }

    /// An acknowledgement up to `index`. Returns false if it is stale (tells us nothing new).
    mutating func maybeUpdate(_ index: LogIndex) -> Bool {
        var updated = false
        if match < index {
            match = index
            updated = true
            probeSent = false
        }
        next = max(next, index + 1)
        return updated
    }

    /// A rejection of the append whose previous index was `rejected`; `hint` is where the
    /// follower's log may match. Returns false if the rejection is stale.
    mutating func maybeDecrease(rejected: LogIndex, hint: LogIndex) -> Bool {
        if state == .replicate {
            // Stale if it rejects something at or below what is already known to match.
            if rejected <= match { return false }
            next = match + 1
            return true
        }
        // Probe: only the rejection of the most recent probe (prev index next-1) is news.
        if next == 0 || next - 1 != rejected { return false }
        next = max(min(rejected, hint + 1), match + 1)
        probeSent = false
        return true
    }
}
