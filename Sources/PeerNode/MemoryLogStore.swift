import Raft

/// A `LogStore` in memory (Raft's `MemoryStorage`), counting durable writes: for tests and
/// single-process tools. Nothing survives the process. Only the node's thread may touch it
/// while the node runs; read `persists`/`syncedPersists` after `stop()`.
public final class MemoryLogStore: LogStore, @unchecked Sendable {
    public let memory: MemoryStorage
    public private(set) var persists = 0
    public private(set) var syncedPersists = 0

    public init(conf: ConfState) { memory = MemoryStorage(conf: conf) }

    public func initialState() throws(StorageError) -> (HardState, ConfState) { try memory.initialState() }
    public func firstIndex() throws(StorageError) -> LogIndex { try memory.firstIndex() }
    public func lastIndex() throws(StorageError) -> LogIndex { try memory.lastIndex() }
    public func term(_ index: LogIndex) throws(StorageError) -> Term { try memory.term(index) }
    public func entries(_ lo: LogIndex, _ hi: LogIndex, maxBytes: Int) throws(StorageError) -> [Entry] { try memory.entries(lo, hi, maxBytes: maxBytes) }
    public func snapshotMetadata() throws(StorageError) -> SnapshotMetadata { try memory.snapshotMetadata() }
    public func snapshotChunk(offset: UInt64, maxBytes: Int) throws(StorageError) -> SnapshotChunk { try memory.snapshotChunk(offset: offset, maxBytes: maxBytes) }

    public func persist(_ ready: Ready) throws {
        persists += 1
        if ready.mustSync { syncedPersists += 1 }
        memory.persist(ready)
    }

    /// Pieces of the snapshot being staged, and how many `stageCompaction` calls wrote them.
    private var staged: (metadata: SnapshotMetadata, data: [UInt8])?
    public private(set) var compactionPieces = 0

    public func stageCompaction(_ chunk: SnapshotChunk) throws {
        if chunk.offset == 0 { staged = (chunk.metadata, []) }
        precondition(staged?.metadata == chunk.metadata && UInt64(staged!.data.count) == chunk.offset,
                     "compaction piece at \(chunk.offset) does not continue the staged snapshot")
        staged!.data += chunk.data
        compactionPieces += 1
    }

    @discardableResult
    public func finishCompaction(_ metadata: SnapshotMetadata) throws -> Bool {
        guard let s = staged, s.metadata == metadata else { preconditionFailure("finishCompaction without a staged snapshot") }
        staged = nil
        guard metadata.index > memory.latestSnapshot.metadata.index else { return false }
        memory.createSnapshot(at: metadata.index, conf: metadata.conf, data: s.data)
        return true
    }

    /// Memory is freed with the replaced snapshot itself: nothing to reclaim.
    @discardableResult
    public func reclaimSpace() throws -> Bool { false }

    public func currentSnapshotData() throws -> [UInt8] { memory.latestSnapshot.data }
}
