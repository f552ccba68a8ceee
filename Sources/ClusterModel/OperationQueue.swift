/// The operations in progress in the order they started (started index, then id): what the
/// leader's operation driver works through, oldest first, every round. Derived, not encoded.
///
/// Operations start in apply order, so a start is an append. A finish only counts the finished
/// key as garbage; keys are dropped from the front as soon as the oldest ones finished, and the
/// array is rebuilt when garbage outgrows the live keys, so every operation costs O(1) amortized
/// and reading the oldest `n` costs O(n + garbage skipped): the driver reads it every round, so
/// sorting the operations in progress there would cost a busy leader most of its CPU
/// (measured: docs/benchmarks.md).
///
/// Garbage depends on the order of finishes, not only on the set of live operations, so two
/// queues holding the same live keys are equal whatever their garbage: the state's equality
/// stays a function of what is replicated.
struct OperationQueue: Sendable {
    struct Key: Comparable, Hashable, Sendable {
        var index: UInt64
        var id: String
        static func < (a: Key, b: Key) -> Bool { (a.index, a.id) < (b.index, b.id) }
    }

    /// Ascending; `keys[head...]` holds every live key and at most `garbage` finished ones.
    private var keys: [Key] = []
    private var head = 0
    private(set) var liveCount = 0
    private var garbage = 0

    var isEmpty: Bool { liveCount == 0 }

    init() {}

    /// A queue of these live keys (a snapshot's operations in progress), in any order.
    init(live: [Key]) {
        keys = live.sorted()
        liveCount = keys.count
    }

    /// Records a started operation. Keys arrive in ascending order from apply (one operation
    /// starts per entry); a smaller one would be inserted in place.
    mutating func started(_ key: Key) {
        if let last = keys.last, key < last {
            let position = keys[head...].firstIndex { key < $0 } ?? keys.endIndex
            keys.insert(key, at: position)
        } else {
            keys.append(key)
        }
        liveCount += 1
    }

    /// Records that the operation with `key` finished. `isLive` says whether a key is still in
    /// progress (the state's operations are the truth; this is only their order).
    mutating func finished(_ key: Key, isLive: (Key) -> Bool) {
        precondition(liveCount > 0, "operation queue: finish without a start")
        liveCount -= 1
        garbage += 1
        while head < keys.count, !isLive(keys[head]) {
            head += 1
            garbage -= 1
        }
        if head == keys.count {
            keys.removeAll(keepingCapacity: true)
            head = 0
            garbage = 0
        } else if garbage > 64 && garbage > liveCount {
            keys = keys[head...].filter(isLive)
            head = 0
            garbage = 0
        }
    }

    /// The oldest `limit` live keys.
    func oldest(_ limit: Int, isLive: (Key) -> Bool) -> [Key] {
        var out: [Key] = []
        out.reserveCapacity(Swift.min(limit, liveCount))
        var i = head
        while i < keys.count, out.count < limit {
            if isLive(keys[i]) { out.append(keys[i]) }
            i += 1
        }
        return out
    }
}

extension OperationQueue: Equatable {
    /// Which keys are live is a function of the state's `operations` (compared by the state's own
    /// equality); garbage depends on the order of finishes. So two queues are equal when they
    /// hold as many live operations.
    static func == (a: OperationQueue, b: OperationQueue) -> Bool { a.liveCount == b.liveCount }
}

/// The finished operations in start order (started index): when `operations` holds
/// `ClusterLimits.operationsMax` records, the finished one that started first gives way to a new
/// operation, so a long-lived cluster keeps the newest records instead of refusing every new
/// operation. Derived, not encoded: a function of the finished operations' started indexes, so a
/// restored state orders them as the replicas that applied every finish do.
///
/// Start order, not finish order, because a tenant's operations run one at a time: its older
/// operations started, and finished, before its newer ones, so they are forgotten first, and
/// once its latest operation is forgotten none of its operations is left (`last_operation`
/// answers the same on every replica, restored or not).
///
/// Operations mostly finish in the order they started (the driver works oldest first), so an
/// insert is an append or lands near the end; forgetting takes from the front.
struct FinishedOperations: Sendable {
    /// Ascending by started index; `keys[head...]` are the finished operations still recorded.
    private var keys: [OperationQueue.Key] = []
    private var head = 0

    var count: Int { keys.count - head }
    var isEmpty: Bool { head == keys.count }

    init() {}

    /// The finished operations of a restored state, in any order.
    init(_ keys: [OperationQueue.Key]) { self.keys = keys.sorted() }

    mutating func insert(_ key: OperationQueue.Key) {
        guard let last = keys.last, key < last else {
            keys.append(key)
            return
        }
        var lo = head
        var hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        keys.insert(key, at: lo)
    }

    /// Takes the finished operation that started first.
    mutating func removeOldest() -> OperationQueue.Key? {
        guard head < keys.count else { return nil }
        let key = keys[head]
        head += 1
        if head == keys.count {
            keys.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= keys.count {
            keys.removeFirst(head)
            head = 0
        }
        return key
    }
}

extension FinishedOperations: Equatable {
    static func == (a: FinishedOperations, b: FinishedOperations) -> Bool {
        a.keys[a.head...].elementsEqual(b.keys[b.head...])
    }
}
