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
    /// A snapshot at `pendingIndex` is being sent; appends wait.
    case snapshot(pendingIndex: LogIndex)
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
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match + 1
        probeSent = false
        inflights.reset()
    }

    mutating func becomeSnapshot(_ index: LogIndex) {
        state = .snapshot(pendingIndex: index)
        probeSent = false
        inflights.reset()
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
