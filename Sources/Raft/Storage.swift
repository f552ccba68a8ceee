/// Why a read of stable storage did not return what was asked.
public enum StorageError: Error, Sendable, Hashable {
    /// The entries were compacted into a snapshot.
    case compacted
    /// The entries are not (yet) in storage.
    case unavailable
    /// The storage could not be read (an I/O error). The core halts: it must not act on a
    /// log it cannot read. The string says what failed, for the operator.
    case failed(String)
}

/// Read access to what the driver has made durable. The core only reads; the driver writes
/// (after handling a `Ready`) through the concrete type. Implementations: `MemoryStorage` here,
/// the SQLite store in `PeerStore`.
///
/// Contract: every method reflects exactly the writes the driver completed before calling
/// `advance`; `firstIndex() - 1` is the snapshot index (the log's dummy position), and
/// `term(firstIndex() - 1)` must answer.
public protocol RaftStorage: AnyObject {
    /// The persisted hard state and configuration, read once when a node starts.
    func initialState() throws(StorageError) -> (HardState, ConfState)
    /// Index of the first entry still available (snapshot index + 1).
    func firstIndex() throws(StorageError) -> LogIndex
    /// Index of the last entry stored (snapshot index if the log is empty).
    func lastIndex() throws(StorageError) -> LogIndex
    /// Term of the entry at `index`, for `firstIndex()-1 ... lastIndex()`.
    func term(_ index: LogIndex) throws(StorageError) -> Term
    /// Entries `[lo, hi)`, at least one if any, then only while the total stays within `maxBytes`.
    func entries(_ lo: LogIndex, _ hi: LogIndex, maxBytes: Int) throws(StorageError) -> [Entry]
    /// The most recent snapshot.
    func snapshot() throws(StorageError) -> Snapshot
}

/// A `RaftStorage` in memory: the simulator's "disk" and the tests' storage.
/// Not thread-safe; owned by one driver.
public final class MemoryStorage: RaftStorage {
    public private(set) var hardState: HardState
    public private(set) var latestSnapshot: Snapshot
    /// `log[0]` is a dummy entry at the snapshot's index and term.
    /// Invariant: `log[i].index == log[0].index + i`.
    private var log: [Entry]

    public init(conf: ConfState) {
        hardState = .empty
        latestSnapshot = Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, conf: conf), data: [])
        log = [Entry(term: 0, index: 0)]
    }

    /// A deep copy: what survives a crash is a copy of what was durable.
    public func copy() -> MemoryStorage {
        let c = MemoryStorage(conf: latestSnapshot.metadata.conf)
        c.hardState = hardState
        c.latestSnapshot = latestSnapshot
        c.log = log
        return c
    }

    public func initialState() throws(StorageError) -> (HardState, ConfState) {
        (hardState, latestSnapshot.metadata.conf)
    }

    public func firstIndex() throws(StorageError) -> LogIndex { log[0].index + 1 }
    public func lastIndex() throws(StorageError) -> LogIndex { log[0].index + LogIndex(log.count - 1) }

    public func term(_ index: LogIndex) throws(StorageError) -> Term {
        let offset = log[0].index
        if index < offset { throw .compacted }
        let i = Int(index - offset)
        if i >= log.count { throw .unavailable }
        return log[i].term
    }

    public func entries(_ lo: LogIndex, _ hi: LogIndex, maxBytes: Int) throws(StorageError) -> [Entry] {
        let offset = log[0].index
        if lo <= offset { throw .compacted }
        precondition(lo <= hi, "entries(\(lo), \(hi)): lo > hi")
        if hi > offset + LogIndex(log.count) { throw .unavailable }
        if lo == hi { return [] }
        var out: [Entry] = []
        var size = 0
        for i in Int(lo - offset)..<Int(hi - offset) {
            let e = log[i]
            size += e.sizeBytes
            if !out.isEmpty && size > maxBytes { break }
            out.append(e)
        }
        return out
    }

    public func snapshot() throws(StorageError) -> Snapshot { latestSnapshot }

    /// Persists the hard state.
    public func setHardState(_ hs: HardState) { hardState = hs }

    /// Appends entries, replacing any conflicting suffix. `entries` must be contiguous and start
    /// at most one past the current last index, and after the snapshot.
    public func append(_ entries: [Entry]) {
        guard let first = entries.first else { return }
        let offset = log[0].index
        precondition(first.index > offset, "append at \(first.index) is inside the snapshot (\(offset))")
        let last = offset + LogIndex(log.count - 1)
        precondition(first.index <= last + 1, "append at \(first.index) leaves a gap after \(last)")
        log.removeSubrange(Int(first.index - offset)...)
        log.append(contentsOf: entries)
    }

    /// Installs a snapshot, discarding the whole log. Older snapshots are ignored.
    public func applySnapshot(_ snap: Snapshot) {
        guard snap.metadata.index > latestSnapshot.metadata.index else { return }
        latestSnapshot = snap
        log = [Entry(term: snap.metadata.term, index: snap.metadata.index)]
    }

    /// Records a snapshot at `index` (which must be applied) and discards entries before it.
    public func createSnapshot(at index: LogIndex, conf: ConfState, data: [UInt8]) {
        let offset = log[0].index
        guard index > latestSnapshot.metadata.index else { return }
        precondition(index <= offset + LogIndex(log.count - 1), "snapshot at \(index) beyond the log")
        let term = log[Int(index - offset)].term
        latestSnapshot = Snapshot(metadata: SnapshotMetadata(index: index, term: term, conf: conf), data: data)
        log.removeSubrange(0..<Int(index - offset))
        log[0] = Entry(term: term, index: index)
    }
}
