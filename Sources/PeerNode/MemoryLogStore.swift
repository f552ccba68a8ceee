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

    public func compact(upTo index: LogIndex, conf: ConfState, data: [UInt8]) throws {
        memory.createSnapshot(at: index, conf: conf, data: data)
    }

    public func currentSnapshotData() throws -> [UInt8] { memory.latestSnapshot.data }
}
