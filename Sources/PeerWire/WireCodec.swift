import Foundation
import Raft
import SwiftProtobuf

/// The hello both sides exchange after TLS (docs/transport.md §Hello).
public struct Hello: Sendable, Hashable {
    public var clusterID: String
    public var nodeID: NodeID
    public var protocolVersionMin: UInt32
    public var protocolVersionMax: UInt32
    /// Set in the accepting side's answer only; 0 in the dialling side's hello.
    public var protocolVersionChosen: UInt32

    public init(clusterID: String, nodeID: NodeID, protocolVersionMin: UInt32, protocolVersionMax: UInt32,
                protocolVersionChosen: UInt32 = 0) {
        self.clusterID = clusterID
        self.nodeID = nodeID
        self.protocolVersionMin = protocolVersionMin
        self.protocolVersionMax = protocolVersionMax
        self.protocolVersionChosen = protocolVersionChosen
    }
}

/// One decoded, validated frame.
public enum WireFrame: Sendable, Hashable {
    case hello(Hello)
    case message(Raft.Message)
    /// The sender refuses the connection; `reason` is a `RejectReason` raw value (or a newer one).
    case reject(reason: String, detail: String)
}

/// Why a frame body was refused. Each names the field at fault.
public enum WireDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    case notProtobuf(String)
    case noBody
    case unknownMessageKind(UInt32)
    case zeroNodeID(field: String)
    case unknownEntryKind(UInt32, entryIndex: UInt64)
    case entriesNotContiguous(expected: UInt64, found: UInt64)
    case entriesNotAllowed(kind: MessageKind)
    case snapshotMissing
    case snapshotNotAllowed(kind: MessageKind)
    case snapshotMetadataMissing
    case invalidConfState(String)
    case snapshotChunkOutOfRange(offset: UInt64, bytes: Int, totalBytes: UInt64)
    case invalidHello(String)
    case fieldTooLong(field: String, bytes: Int, bytesMax: Int)

    public var description: String {
        switch self {
        case .notProtobuf(let s): return "not a valid protobuf Frame: \(s)"
        case .noBody: return "frame has no body"
        case .unknownMessageKind(let k): return "unknown message kind \(k)"
        case .zeroNodeID(let f): return "message field \(f) is node id 0 (reserved)"
        case .unknownEntryKind(let k, let i): return "entry \(i) has unknown kind \(k)"
        case .entriesNotContiguous(let e, let f): return "entries not contiguous: expected index \(e), found \(f)"
        case .entriesNotAllowed(let k): return "entries in a \(k) message"
        case .snapshotMissing: return "snapshot message without a snapshot chunk"
        case .snapshotNotAllowed(let k): return "snapshot chunk in a \(k) message"
        case .snapshotMetadataMissing: return "snapshot chunk without metadata"
        case .invalidConfState(let s): return "invalid snapshot conf state: \(s)"
        case .snapshotChunkOutOfRange(let o, let n, let t): return "snapshot chunk offset \(o) + \(n) bytes exceeds total \(t)"
        case .invalidHello(let s): return "invalid hello: \(s)"
        case .fieldTooLong(let f, let n, let max): return "\(f) is \(n) bytes, more than \(max)"
        }
    }
}

/// Converts between `WireFrame` and protobuf bytes. Decoding validates everything the Swift types
/// assume (node ids non-zero, known enum tags, disjoint conf sets), so no input can trap later.
public enum WireCodec {
    /// Cluster ids on the wire, like in certificates, are short.
    public static let clusterIDBytesMax = 63

    public static func encode(_ frame: WireFrame) -> [UInt8] {
        var pb = Peer_Transport_V1_Frame()
        switch frame {
        case .hello(let h):
            var p = Peer_Transport_V1_Hello()
            p.clusterID = h.clusterID
            p.nodeID = h.nodeID
            p.protocolVersionMin = h.protocolVersionMin
            p.protocolVersionMax = h.protocolVersionMax
            p.protocolVersionChosen = h.protocolVersionChosen
            pb.hello = p
        case .message(let m):
            pb.message = encodeMessage(m)
        case .reject(let reason, let detail):
            var r = Peer_Transport_V1_Reject()
            r.reason = reason
            r.detail = detail
            pb.reject = r
        }
        // Serializing a message we built ourselves cannot fail (no required fields in proto3).
        do { return try pb.serializedBytes() } catch { preconditionFailure("protobuf encode failed: \(error)") }
    }

    public static func decode(_ bytes: [UInt8]) throws(WireDecodeError) -> WireFrame {
        let pb: Peer_Transport_V1_Frame
        do {
            pb = try Peer_Transport_V1_Frame(serializedBytes: bytes)
        } catch {
            throw .notProtobuf("\(error)")
        }
        switch pb.body {
        case .none:
            throw .noBody
        case .hello(let h):
            return .hello(try decodeHello(h))
        case .message(let m):
            return .message(try decodeMessage(m))
        case .reject(let r):
            let detailBytesMax = 1024
            guard r.reason.utf8.count <= 64 else { throw .fieldTooLong(field: "reject.reason", bytes: r.reason.utf8.count, bytesMax: 64) }
            return .reject(reason: r.reason, detail: String(r.detail.prefix(detailBytesMax)))
        }
    }

    static func decodeHello(_ h: Peer_Transport_V1_Hello) throws(WireDecodeError) -> Hello {
        guard h.clusterID.utf8.count <= clusterIDBytesMax else {
            throw .fieldTooLong(field: "hello.cluster_id", bytes: h.clusterID.utf8.count, bytesMax: clusterIDBytesMax)
        }
        guard !h.clusterID.isEmpty else { throw .invalidHello("empty cluster id") }
        guard h.nodeID != 0 else { throw .zeroNodeID(field: "hello.node_id") }
        guard h.protocolVersionMin <= h.protocolVersionMax, h.protocolVersionMin > 0 else {
            throw .invalidHello("protocol version range \(h.protocolVersionMin)...\(h.protocolVersionMax)")
        }
        return Hello(clusterID: h.clusterID, nodeID: h.nodeID, protocolVersionMin: h.protocolVersionMin,
                     protocolVersionMax: h.protocolVersionMax, protocolVersionChosen: h.protocolVersionChosen)
    }

    static func encodeMessage(_ m: Raft.Message) -> Peer_Transport_V1_RaftMessage {
        var p = Peer_Transport_V1_RaftMessage()
        p.kind = UInt32(m.kind.rawValue)
        p.from = m.from
        p.to = m.to
        p.term = m.term
        p.logTerm = m.logTerm
        p.index = m.index
        p.commit = m.commit
        p.reject = m.reject
        p.rejectHint = m.rejectHint
        p.context = m.context
        if !m.entries.isEmpty {
            p.entries = m.entries.map { e in
                var pe = Peer_Transport_V1_Entry()
                pe.term = e.term
                pe.index = e.index
                pe.kind = UInt32(e.kind.rawValue)
                pe.data = Data(e.data)
                return pe
            }
        }
        if let c = m.snapshot {
            var pc = Peer_Transport_V1_SnapshotChunk()
            pc.metadata.index = c.metadata.index
            pc.metadata.term = c.metadata.term
            // Sorted so equal conf states encode to equal bytes.
            pc.metadata.conf.voters = c.metadata.conf.voters.sorted()
            pc.metadata.conf.learners = c.metadata.conf.learners.sorted()
            pc.offset = c.offset
            pc.totalBytes = c.totalBytes
            pc.data = Data(c.data)
            pc.done = c.done
            p.snapshot = pc
        }
        return p
    }

    static func decodeMessage(_ p: Peer_Transport_V1_RaftMessage) throws(WireDecodeError) -> Raft.Message {
        guard p.kind <= UInt32(UInt8.max), let kind = MessageKind(rawValue: UInt8(p.kind)) else {
            throw .unknownMessageKind(p.kind)
        }
        guard p.from != 0 else { throw .zeroNodeID(field: "from") }
        guard p.to != 0 else { throw .zeroNodeID(field: "to") }
        let entries = try decodeEntries(p.entries, kind: kind)
        var chunk: SnapshotChunk?
        if kind == .snapshot {
            guard p.hasSnapshot else { throw .snapshotMissing }
            chunk = try decodeChunk(p.snapshot)
        } else if p.hasSnapshot {
            throw .snapshotNotAllowed(kind: kind)
        }
        return Raft.Message(
            kind: kind, from: p.from, to: p.to, term: p.term, logTerm: p.logTerm, index: p.index,
            entries: entries, commit: p.commit, reject: p.reject, rejectHint: p.rejectHint,
            context: p.context, snapshot: chunk)
    }

    static func decodeEntries(_ pes: [Peer_Transport_V1_Entry], kind: MessageKind) throws(WireDecodeError) -> [Entry] {
        guard !pes.isEmpty else { return [] }
        guard kind == .append else { throw .entriesNotAllowed(kind: kind) }
        var entries: [Entry] = []
        entries.reserveCapacity(pes.count)
        for pe in pes {
            guard pe.kind <= UInt32(UInt8.max), let ek = EntryKind(rawValue: UInt8(pe.kind)) else {
                throw .unknownEntryKind(pe.kind, entryIndex: pe.index)
            }
            // Contiguity is what Raft's append path assumes of a batch; checking it here keeps a
            // hostile batch from reaching the core at all.
            if let last = entries.last {
                guard last.index != UInt64.max, pe.index == last.index + 1 else {
                    throw .entriesNotContiguous(expected: last.index &+ 1, found: pe.index)
                }
            }
            entries.append(Entry(term: pe.term, index: pe.index, kind: ek, data: [UInt8](pe.data)))
        }
        return entries
    }

    static func decodeChunk(_ pc: Peer_Transport_V1_SnapshotChunk) throws(WireDecodeError) -> SnapshotChunk {
        guard pc.hasMetadata else { throw .snapshotMetadataMissing }
        let voters = Set(pc.metadata.conf.voters)
        let learners = Set(pc.metadata.conf.learners)
        // ConfState's initializer traps on these; a peer's bytes must never reach a trap.
        guard voters.isDisjoint(with: learners) else { throw .invalidConfState("voters and learners overlap") }
        guard !voters.contains(noNode), !learners.contains(noNode) else { throw .invalidConfState("node id 0") }
        let (end, overflow) = pc.offset.addingReportingOverflow(UInt64(pc.data.count))
        guard !overflow, end <= pc.totalBytes else {
            throw .snapshotChunkOutOfRange(offset: pc.offset, bytes: pc.data.count, totalBytes: pc.totalBytes)
        }
        let metadata = SnapshotMetadata(
            index: pc.metadata.index, term: pc.metadata.term, conf: ConfState(voters: voters, learners: learners))
        return SnapshotChunk(metadata: metadata, offset: pc.offset, totalBytes: pc.totalBytes,
                             data: [UInt8](pc.data), done: pc.done)
    }
}
