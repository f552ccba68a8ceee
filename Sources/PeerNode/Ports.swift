import Raft

// The driver's ports (ARCHITECTURE.md §4): PeerNode knows these protocols, not SQLite or NIO.
// The `peer` executable plugs PeerStore and PeerTransport into them.

/// The durable Raft log the driver writes. Reads come through `RaftStorage` (the core reads
/// them too); writes happen only on the node's thread, in the order the Ready contract gives.
public protocol LogStore: RaftStorage {
    /// Persists what `ready` asks for (snapshot, entries, hard state) in one durable write
    /// (fsync'd when `ready.mustSync`). Returns only once every read reflects it.
    func persist(_ ready: Ready) throws
    /// Records a snapshot of the application at `index` (applied) and drops the log up to it.
    func compact(upTo index: LogIndex, conf: ConfState, data: [UInt8]) throws
    /// The application bytes of the current snapshot (empty when there is none).
    func currentSnapshotData() throws -> [UInt8]
}

/// Sends a Raft message to its `to` peer. Must not block: a transport drops what it cannot
/// queue (Raft retries), it never waits.
public typealias MessageSender = @Sendable (Message) -> Void
