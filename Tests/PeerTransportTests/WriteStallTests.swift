import NIOCore
import NIOPosix
@testable import PeerTransport
@testable import PeerWire
import Raft
import Testing

/// Answers the hello like a peer, then stops reading: TCP back-pressure never eases.
final class HelloThenStallHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .hello(let hello)? = try? WireCodec.decode(Array(unwrapInboundIn(data).readableBytesView)) else { return }
        let answer = Hello(clusterID: hello.clusterID, nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 1, protocolVersionChosen: 1)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: frameBytes(.hello(answer)))), promise: nil)
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
    }
}

/// A dialled connection that stays unwritable longer than `writeStallMsMax` is closed and the
/// peer reported unreachable (S3).
@Suite(.serialized) struct WriteStallTests {
    @Test func peerThatStopsReadingIsReportedUnreachable() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let stalled = try await ServerBootstrap(group: group)
            .childChannelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 4096)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(frameBytesMax: 1 << 20)))
                    try channel.pipeline.syncOperations.addHandler(HelloThenStallHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let a = try await Node.start(1, security: .insecurePlaintext) {
            $0.writeStallMsMax = 500
            $0.backoff = Backoff(initialMs: 60_000, maxMs: 60_000)
        }
        try await withCleanup {
            a.transport.setPeer(2, address: PeerAddress(host: "127.0.0.1", port: stalled.localAddress!.port!))
            #expect(await a.connected(to: 2))
            // Far more than socket buffers hold; each message is well under a frame.
            for _ in 0..<60 { a.transport.send(sampleAppend(from: 1, to: 2, entries: 1, bytes: 1 << 20)) }
            let unreachable = await a.events.first(timeout: .seconds(20)) {
                if case .peerUnreachable(2, let reason) = $0 { return reason.contains("write stalled") }
                return false
            }
            #expect(unreachable != nil, "a peer that stopped reading was never reported unreachable")
        } cleanup: {
            await a.transport.shutdown()
            try? await stalled.close()
            try? await group.shutdownGracefully()
        }
    }
}
