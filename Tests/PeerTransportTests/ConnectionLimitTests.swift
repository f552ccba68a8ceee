import NIOCore
import NIOEmbedded
import NIOPosix
@testable import PeerTransport
@testable import PeerWire
import Raft
import Testing

/// Inbound connection limits (S1): connections still in their handshake, and established
/// connections per peer.
@Suite(.serialized) struct ConnectionLimitTests {
    @Test func connectionsBeyondTheHandshakeCapAreClosedAtOnce() async throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        // A hello timeout far beyond the test's bound: only the cap can close the extra client.
        let a = try await Node.start(1, security: .mutualTLS(try pki.peer(1))) {
            $0.handshakingConnectionsMax = 2
            $0.helloTimeoutMs = 60_000
        }
        a.transport.setPeer(2, address: PeerAddress(host: "127.0.0.1", port: 1))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var raws: [any Channel] = []
        try await withCleanup {
            let bootstrap = ClientBootstrap(group: group)
            // Two silent clients fill the handshake slots.
            for _ in 0..<2 { raws.append(try await bootstrap.connect(host: "127.0.0.1", port: a.address.port).get()) }
            let third = try await bootstrap.connect(host: "127.0.0.1", port: a.address.port).get()
            raws.append(third)
            #expect(await closes(third, within: .seconds(5)), "a connection beyond the handshake cap was kept")
            #expect(await a.rejection(.tooManyHandshakes) != nil)
            #expect(raws[0].isActive && raws[1].isActive, "connections within the cap were closed")
            // Freeing the slots lets a real peer in.
            for raw in raws { try? await raw.close() }
            try await TLSTransportTests.goodPeerStillServed(by: a, pki: pki)
        } cleanup: {
            for raw in raws { try? await raw.close() }
            await a.transport.shutdown()
            try? await group.shutdownGracefully()
        }
    }

    @Test func aPeersOldestConnectionIsClosedBeyondThePerPeerCap() throws {
        var config = TransportConfiguration(
            clusterID: "c", nodeID: 1, listen: PeerAddress(host: "127.0.0.1", port: 0), security: .insecurePlaintext)
        config.inboundConnectionsPerPeerMax = 2
        let (_, mc) = AsyncStream.makeStream(of: Message.self)
        let (_, ec) = AsyncStream.makeStream(of: TransportEvent.self)
        let core = TransportCore(config: config, tls: nil, events: ec, incoming: mc)
        core.setMember(2, present: true)
        var channels: [EmbeddedChannel] = []
        for i in 0..<3 {
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(frameBytesMax: 1024)))
            try channel.pipeline.syncOperations.addHandler(InboundConnectionHandler(core: core, verdict: nil))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9 + i)).wait()
            try channel.writeInbound(ByteBuffer(bytes: frameBytes(.hello(Hello(clusterID: "c", nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 1)))))
            channels.append(channel)
        }
        #expect(!channels[0].isActive, "the oldest connection of peer 2 was kept beyond the cap")
        #expect(channels[1].isActive && channels[2].isActive)
        #expect(core.takeInbound(2).count == 2)
    }
}
