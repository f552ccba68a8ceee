import Raft

/// The most recent durable entries, in memory, so that replication and the core's term checks
/// do not query SQLite on every call.
///
/// Invariants: the cached entries are a contiguous run (`entries[head + i].index == first + i`)
/// that always ends at the store's last index; nothing enters the cache before the transaction
/// that wrote it has committed (and so was fsync'd), so the cache never answers anything that is
/// not durable. Bounded by `entriesMax` and `bytesMax` (whichever is hit first); the oldest
/// entries are evicted first (an entry larger than `bytesMax` is not cached), and a read of an
/// entry not in the cache goes to SQLite.
struct EntryCache {
    let entriesMax: Int
    let bytesMax: Int
    /// Live entries are `storage[head...]`; the dead prefix is dropped in bulk (amortized O(1)).
    private var storage: [Entry] = []
    private var head = 0
    private(set) var bytes = 0

    init(entriesMax: Int, bytesMax: Int) {
        precondition(entriesMax >= 0 && bytesMax >= 0, "cache limits must be >= 0")
        self.entriesMax = entriesMax
        self.bytesMax = bytesMax
    }

    var count: Int { storage.count - head }

    /// Index of the oldest cached entry, or nil when the cache is empty.
    var firstIndex: LogIndex? { count > 0 ? storage[head].index : nil }

    func entry(_ index: LogIndex) -> Entry? {
        guard let first = firstIndex, index >= first else { return nil }
        let i = head + Int(index - first)
        return i < storage.count ? storage[i] : nil
    }

    /// Records entries just made durable. `new` starts at most one past the cached suffix (the
    /// store checks the log's own contiguity); an overlapping suffix is replaced, as on disk.
    mutating func append(_ new: [Entry]) {
        guard let start = new.first?.index else { return }
        if let first = firstIndex {
            let end = first + LogIndex(count)
            if start < first || start > end {
                // Not contiguous with what we hold: restart the cache at `start`.
                clear()
            } else {
                truncate(from: start)
            }
        }
        for e in new {
            storage.append(e)
            bytes += e.sizeBytes
        }
        evict()
    }

    /// Forgets cached entries at or after `index` (a conflicting suffix was replaced).
    mutating func truncate(from index: LogIndex) {
        guard let first = firstIndex else { return }
        if index <= first { clear(); return }
        let keep = head + Int(index - first)
        guard keep < storage.count else { return }
        for e in storage[keep...] { bytes -= e.sizeBytes }
        storage.removeSubrange(keep...)
    }

    /// Forgets cached entries at or before `index` (compacted into a snapshot).
    mutating func dropPrefix(through index: LogIndex) {
        while let first = firstIndex, first <= index {
            bytes -= storage[head].sizeBytes
            head += 1
        }
        compactStorage()
    }

    mutating func clear() {
        storage.removeAll(keepingCapacity: true)
        head = 0
        bytes = 0
    }

    private mutating func evict() {
        while count > 0 && (count > entriesMax || bytes > bytesMax) {
            bytes -= storage[head].sizeBytes
            head += 1
        }
        compactStorage()
    }

    private mutating func compactStorage() {
        if count == 0 {
            clear()
        } else if head > 1024 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }
}
