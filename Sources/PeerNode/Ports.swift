import Raft

// The driver's ports (ARCHITECTURE.md §4): PeerNode knows these protocols, not SQLite or NIO.
// The `peer` executable plugs PeerStore and PeerTransport into them.

/// The durable Raft log the driver writes. Reads come through `RaftStorage` (the core reads
/// them too); writes happen only on the node's thread, in the order the Ready contract gives.
public protocol LogStore: RaftStorage {
    /// Persists what `ready` asks for (snapshot, entries, hard state) in one durable write
    /// (fsync'd when `ready.mustSync`). Returns only once every read reflects it.
    func persist(_ ready: Ready) throws
    /// Incremental compaction, so that no single write holds the node long: each piece of a
    /// snapshot of the application at `chunk.metadata.index` (applied) is written by its own
    /// call, in order from offset 0; nothing current changes until `finishCompaction`.
    func stageCompaction(_ chunk: SnapshotChunk) throws
    /// Makes the completely staged snapshot current and drops the log up to its index. Returns
    /// false (and drops the staged one) if a newer snapshot was installed meanwhile.
    @discardableResult
    func finishCompaction(_ metadata: SnapshotMetadata) throws -> Bool
    /// Frees a bounded part of the space a replaced snapshot held; true while some remains.
    /// Called once per loop turn when no snapshot is being written.
    @discardableResult
    func reclaimSpace() throws -> Bool
    /// The application bytes of the current snapshot (empty when there is none).
    func currentSnapshotData() throws -> [UInt8]
}

/// Sends a Raft message to its `to` peer. Must not block: a transport drops what it cannot
/// queue (Raft retries), it never waits.
public typealias MessageSender = @Sendable (Message) -> Void
