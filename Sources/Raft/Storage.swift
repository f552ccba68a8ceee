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
    /// The metadata of the current (most recent) snapshot: index, term and configuration.
    func snapshotMetadata() throws(StorageError) -> SnapshotMetadata
    /// Up to `maxBytes` bytes of the CURRENT snapshot's data starting at `offset`: at least one
    /// byte when any remain, never more than `maxBytes`. The chunk's `metadata` and `totalBytes`
    /// name the snapshot it was cut from, so a caller that was reading an older snapshot notices
    /// the change and starts again at 0; its `offset` is `min(offset, totalBytes)`, and `done` is
    /// `offset + data.count == totalBytes`. The core reads snapshots only through this, one
    /// bounded chunk at a time: it never holds a whole snapshot in memory.
    func snapshotChunk(offset: UInt64, maxBytes: Int) throws(StorageError) -> SnapshotChunk
}

extension SnapshotChunk {
    /// Cuts the chunk `[offset, offset + maxBytes)` out of a snapshot held whole in memory
    /// (`MemoryStorage`; tests). Follows the contract of `RaftStorage.snapshotChunk`.
    public static func cut(from snapshot: Snapshot, offset: UInt64, maxBytes: Int) -> SnapshotChunk {
        precondition(maxBytes > 0, "snapshot chunk of \(maxBytes) bytes")
        let total = UInt64(snapshot.data.count)
        let start = min(offset, total)
        let end = start + min(UInt64(maxBytes), total - start)
        return SnapshotChunk(metadata: snapshot.metadata, offset: start, totalBytes: total,
                             data: Array(snapshot.data[Int(start)..<Int(end)]), done: end == total)
    }
}

/// A `RaftStorage` in memory: the simulator's "disk" and the tests' storage.
/// Not thread-safe; owned by one driver.
public final class MemoryStorage: RaftStorage {
    public private(set) var hardState: HardState
    public private(set) var latestSnapshot: Snapshot
    /// A snapshot being received in chunks (`stageSnapshotChunk`), invisible to reads until
    /// `installStagedSnapshot`. Invariant: `staged.data.count <= staged.totalBytes`.
    public private(set) var staged: (metadata: SnapshotMetadata, totalBytes: UInt64, data: [UInt8])?
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
        c.staged = staged
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

    public func snapshotMetadata() throws(StorageError) -> SnapshotMetadata { latestSnapshot.metadata }

    public func snapshotChunk(offset: UInt64, maxBytes: Int) throws(StorageError) -> SnapshotChunk {
        SnapshotChunk.cut(from: latestSnapshot, offset: offset, maxBytes: maxBytes)
    }

    /// Persists what a `Ready` asks for, in the contract's order: stage `snapshotChunks`, install
    /// `snapshot`, append `entries`, set `hardState`.
    public func persist(_ rd: Ready) {
        for c in rd.snapshotChunks { stageSnapshotChunk(c) }
        if let s = rd.snapshot { installStagedSnapshot(s) }
        append(rd.entries)
        if let hs = rd.hardState { setHardState(hs) }
    }

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

    /// Stages one chunk of a snapshot sent by the leader (`Ready.snapshotChunks`). A chunk at
    /// offset 0 starts a new staging, dropping whatever was staged; any other chunk must continue
    /// the staged snapshot exactly where it ends (the core guarantees it: a driver bug otherwise).
    public func stageSnapshotChunk(_ c: SnapshotChunk) {
        if c.offset == 0 {
            staged = (c.metadata, c.totalBytes, [])
        }
        precondition(staged != nil && staged!.metadata == c.metadata && staged!.totalBytes == c.totalBytes,
                     "chunk of snapshot \(c.metadata.index)/t\(c.metadata.term) at offset \(c.offset) continues no staged snapshot")
        precondition(UInt64(staged!.data.count) == c.offset,
                     "chunk at offset \(c.offset) does not continue the staged \(staged!.data.count) bytes")
        staged!.data.append(contentsOf: c.data)
        precondition(UInt64(staged!.data.count) <= c.totalBytes, "staged snapshot longer than its \(c.totalBytes) bytes")
    }

    /// Installs the completely staged snapshot, which must be `metadata` (`Ready.snapshot`), and
    /// discards the whole log: the core installs a snapshot only when its log does not hold the
    /// snapshot's last entry (otherwise it keeps the log and moves its commit index instead).
    public func installStagedSnapshot(_ metadata: SnapshotMetadata) {
        guard let s = staged, s.metadata == metadata, UInt64(s.data.count) == s.totalBytes else {
            preconditionFailure("install of snapshot \(metadata.index)/t\(metadata.term), which is not completely staged")
        }
        precondition(metadata.index > latestSnapshot.metadata.index,
                     "install of snapshot \(metadata.index) not newer than the stored \(latestSnapshot.metadata.index)")
        latestSnapshot = Snapshot(metadata: metadata, data: s.data)
        staged = nil
        log = [Entry(term: metadata.term, index: metadata.index)]
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
