import Foundation
import NIOCore
@testable import PeerTransport
@testable import PeerWire
import Raft
import SwiftProtobuf
import Testing

@Suite struct WireCodecTests {
    static let conf = ConfState(voters: [1, 2, 3], learners: [4])

    static var everyKind: [Raft.Message] {
        MessageKind.allCases.map { kind in
            switch kind {
            case .append: return sampleAppend(from: 1, to: 2)
            case .snapshot:
                return Raft.Message(kind: .snapshot, from: 1, to: 2, term: 3, snapshot: SnapshotChunk(
                    metadata: SnapshotMetadata(index: 100, term: 3, conf: conf), offset: 10, totalBytes: 20,
                    data: Array(repeating: 0xAB, count: 10), done: true))
            default:
                return Raft.Message(kind: kind, from: 2, to: 1, term: 9, logTerm: 8, index: 5, commit: 4, reject: true,
                               rejectHint: 3, context: 77)
            }
        }
    }

    @Test func everyMessageKindRoundTripsUnchanged() throws {
        for m in Self.everyKind {
            #expect(try WireCodec.decode(WireCodec.encode(.message(m))) == .message(m))
        }
    }

    @Test func helloAndRejectRoundTrip() throws {
        let hello = Hello(clusterID: "c1", nodeID: 3, protocolVersionMin: 1, protocolVersionMax: 4, protocolVersionChosen: 2)
        #expect(try WireCodec.decode(WireCodec.encode(.hello(hello))) == .hello(hello))
        #expect(try WireCodec.decode(WireCodec.encode(.reject(reason: "x", detail: "y"))) == .reject(reason: "x", detail: "y"))
    }

    @Test func unknownFieldsFromANewerPeerAreIgnored() throws {
        // Field 99 (varint 5) appended to a valid RaftMessage inside field 2 of Frame.
        var inner = try WireCodec.encodeMessage(sampleAppend(from: 1, to: 2)).serializedBytes() as [UInt8]
        inner += [0x98, 0x06, 0x05]
        let frame: [UInt8] = [0x12] + varint(UInt64(inner.count)) + inner
        #expect(try WireCodec.decode(frame) == .message(sampleAppend(from: 1, to: 2)))
    }

    @Test(arguments: [
        (Peer_Transport_V1_RaftMessage.with { $0.kind = 99; $0.from = 1; $0.to = 2 }, WireDecodeError.unknownMessageKind(99)),
        (Peer_Transport_V1_RaftMessage.with { $0.kind = 3; $0.from = 0; $0.to = 2 }, .zeroNodeID(field: "from")),
        (Peer_Transport_V1_RaftMessage.with { $0.kind = 3; $0.from = 1; $0.to = 0 }, .zeroNodeID(field: "to")),
        (Peer_Transport_V1_RaftMessage.with { $0.kind = 9; $0.from = 1; $0.to = 2 }, .snapshotMissing),
        (Peer_Transport_V1_RaftMessage.with {
            $0.kind = 3; $0.from = 1; $0.to = 2; $0.entries = [.with { $0.index = 1 }]
        }, .entriesNotAllowed(kind: .heartbeat)),
        (Peer_Transport_V1_RaftMessage.with {
            $0.kind = 1; $0.from = 1; $0.to = 2; $0.entries = [.with { $0.index = 1 }, .with { $0.index = 3 }]
        }, .entriesNotContiguous(expected: 2, found: 3)),
        (Peer_Transport_V1_RaftMessage.with {
            $0.kind = 1; $0.from = 1; $0.to = 2; $0.entries = [.with { $0.index = 1; $0.kind = 7 }]
        }, .unknownEntryKind(7, entryIndex: 1)),
        (Peer_Transport_V1_RaftMessage.with {
            $0.kind = 9; $0.from = 1; $0.to = 2
            $0.snapshot = .with { $0.metadata.conf.voters = [1, 2]; $0.metadata.conf.learners = [2] }
        }, .invalidConfState("voters and learners overlap")),
        (Peer_Transport_V1_RaftMessage.with {
            $0.kind = 9; $0.from = 1; $0.to = 2
            $0.snapshot = .with { $0.metadata.conf.voters = [0] }
        }, .invalidConfState("node id 0")),
        (Peer_Transport_V1_RaftMessage.with {
            $0.kind = 9; $0.from = 1; $0.to = 2
            $0.snapshot = .with { $0.metadata.index = 1; $0.offset = UInt64.max; $0.data = Data([1]); $0.totalBytes = 5 }
        }, .snapshotChunkOutOfRange(offset: UInt64.max, bytes: 1, totalBytes: 5)),
        (Peer_Transport_V1_RaftMessage.with {
            $0.kind = 3; $0.from = 1; $0.to = 2; $0.snapshot = .with { $0.metadata.index = 1 }
        }, .snapshotNotAllowed(kind: .heartbeat)),
        (Peer_Transport_V1_RaftMessage.with {
            $0.kind = 9; $0.from = 1; $0.to = 2; $0.snapshot = .with { $0.offset = 1 }
        }, .snapshotMetadataMissing),
    ])
    func invalidMessagesAreRefusedWithASpecificError(message: Peer_Transport_V1_RaftMessage, expected: WireDecodeError) throws {
        let bytes: [UInt8] = try Peer_Transport_V1_Frame.with { $0.message = message }.serializedBytes()
        #expect(throws: expected) { try WireCodec.decode(bytes) }
    }

    @Test func garbageAndEmptyFramesAreRefused() {
        #expect(throws: WireDecodeError.noBody) { try WireCodec.decode([]) }
        #expect(throws: WireDecodeError.self) { try WireCodec.decode([0xFF, 0xFF, 0xFF]) }
        let badHello: [UInt8] = (try? Peer_Transport_V1_Frame.with { $0.hello = .with { $0.clusterID = "c"; $0.nodeID = 1 } }.serializedBytes()) ?? []
        #expect(throws: WireDecodeError.invalidHello("protocol version range 0...0")) { try WireCodec.decode(badHello) }
    }

    @Test func framingRefusesAnOversizedLengthBeforeBufferingIt() {
        var buf = ByteBuffer()
        buf.writeInteger(UInt32(1 << 30), endianness: .big)
        #expect(throws: FrameError.tooLarge(lengthBytes: 1 << 30, frameBytesMax: 1024)) {
            _ = try Framing.nextFrame(from: &buf, frameBytesMax: 1024)
        }
    }

    @Test func framingWaitsForAWholeFrameThenYieldsItExactly() throws {
        var full = ByteBuffer()
        Framing.writeFrame([1, 2, 3], into: &full)
        Framing.writeFrame([4], into: &full)
        var partial = full.getSlice(at: 0, length: 5)!
        #expect(try Framing.nextFrame(from: &partial, frameBytesMax: 16) == nil)
        #expect(try Framing.nextFrame(from: &full, frameBytesMax: 16).map { Array($0.readableBytesView) } == [1, 2, 3])
        #expect(try Framing.nextFrame(from: &full, frameBytesMax: 16).map { Array($0.readableBytesView) } == [4])
        #expect(full.readableBytes == 0)
    }
}

func varint(_ v: UInt64) -> [UInt8] {
    var v = v
    var out: [UInt8] = []
    repeat {
        var b = UInt8(v & 0x7F)
        v >>= 7
        if v != 0 { b |= 0x80 }
        out.append(b)
    } while v != 0
    return out
}
