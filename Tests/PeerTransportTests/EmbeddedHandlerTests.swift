import NIOCore
import NIOEmbedded
@testable import PeerTransport
@testable import PeerWire
import Raft
import Testing

/// The inbound handler driven through an EmbeddedChannel: no sockets, no TLS (plaintext mode),
/// every byte in and out inspected.
@Suite struct EmbeddedHandlerTests {
    func makeChannel() throws -> (EmbeddedChannel, AsyncStream<Message>, AsyncStream<TransportEvent>) {
        let (channel, messages, events, _) = try makeChannelAndCore()
        return (channel, messages, events)
    }

    func makeChannelAndCore() throws -> (EmbeddedChannel, AsyncStream<Message>, AsyncStream<TransportEvent>, TransportCore) {
        let config = TransportConfiguration(
            clusterID: "c", nodeID: 1, listen: PeerAddress(host: "127.0.0.1", port: 0), security: .insecurePlaintext)
        let (messages, mc) = AsyncStream.makeStream(of: Message.self)
        let (events, ec) = AsyncStream.makeStream(of: TransportEvent.self)
        let core = TransportCore(config: config, tls: nil, events: ec, incoming: mc)
        core.setMember(2, present: true)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(frameBytesMax: 1024)))
        try channel.pipeline.syncOperations.addHandler(InboundConnectionHandler(core: core, verdict: nil))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return (channel, messages, events, core)
    }

    func framed(_ f: WireFrame) -> ByteBuffer { ByteBuffer(bytes: frameBytes(f)) }

    func readFrame(_ channel: EmbeddedChannel) throws -> WireFrame? {
        guard var out = try channel.readOutbound(as: ByteBuffer.self),
              let body = try Framing.nextFrame(from: &out, frameBytesMax: 1024) else { return nil }
        return try WireCodec.decode(Array(body.readableBytesView))
    }

    @Test func helloIsAnsweredThenMessagesAreDeliveredThenGarbageClosesWithAReject() async throws {
        let (channel, messages, events) = try makeChannel()
        try channel.writeInbound(framed(.hello(Hello(clusterID: "c", nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 3))))
        #expect(try readFrame(channel) == .hello(Hello(clusterID: "c", nodeID: 1, protocolVersionMin: 1, protocolVersionMax: 1,
                                                       protocolVersionChosen: 1)))
        let m = Message(kind: .heartbeat, from: 2, to: 1, term: 4, commit: 2)
        try channel.writeInbound(framed(.message(m)))
        var it = messages.makeAsyncIterator()
        #expect(await it.next() == m)

        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 2, 0xFF, 0xFF]))
        guard case .reject(let reason, _)? = try readFrame(channel) else {
            Issue.record("expected a Reject frame")
            return
        }
        #expect(reason == RejectReason.malformedFrame.rawValue)
        #expect(!channel.isActive)
        var ev = events.makeAsyncIterator()
        #expect(await ev.next() == .inboundEstablished(2, protocolVersion: 1))
        guard case .connectionRejected(let r)? = await ev.next() else {
            Issue.record("expected a rejection event")
            return
        }
        #expect(r.reason == .malformedFrame)
    }

    @Test func peerRemovedDuringTheHandshakeIsRefusedAtTheHello() throws {
        // The handler was set up while 2 was a member (as when the TLS check passed); `removePeer`
        // runs before the hello arrives. The connection must not register afterwards (S4).
        let (channel, _, _, core) = try makeChannelAndCore()
        _ = core.removeMember(2)
        try channel.writeInbound(framed(.hello(Hello(clusterID: "c", nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 1))))
        guard case .reject(let reason, _)? = try readFrame(channel) else {
            Issue.record("expected a Reject frame, not a hello answer")
            return
        }
        #expect(reason == RejectReason.unknownPeer.rawValue)
        #expect(!channel.isActive)
        #expect(core.takeInbound(nil).isEmpty, "a removed peer's connection was registered")
    }

    @Test func oversizedLengthClosesWithFrameTooLarge() throws {
        let (channel, _, _) = try makeChannel()
        // 0x00001000 = 4096 > frameBytesMax 1024: refused on the length alone.
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0x10, 0]))
        guard case .reject(let reason, _)? = try readFrame(channel) else {
            Issue.record("expected a Reject frame")
            return
        }
        #expect(reason == RejectReason.frameTooLarge.rawValue)
        #expect(!channel.isActive)
    }
}
