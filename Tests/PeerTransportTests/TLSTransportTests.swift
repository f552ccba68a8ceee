import Foundation
import NIOCore
import NIOPosix
import PeerCerts
@testable import PeerTransport
@testable import PeerWire
import Raft
import Testing

/// Two real transports over TLS sockets on 127.0.0.1, and OpenSSL's command-line tools as an
/// independent TLS implementation proving what the server refuses (ARCHITECTURE.md §8).
/// `.serialized`: each test starts processes and sockets; one at a time keeps the 2-core machine calm.
@Suite(.serialized) struct TLSTransportTests {
    /// Starts node 1 (the server under test) knowing peers 2 and 3.
    static func startServer(_ pki: TestPKI, _ scope: NodeScope) async throws -> Node {
        let a = try await scope.start(1, security: .mutualTLS(try pki.peer(1)))
        // Peers 2 and 3 are members (they may dial us); their addresses do not matter here.
        a.transport.setPeer(2, address: PeerAddress(host: "127.0.0.1", port: 1))
        a.transport.setPeer(3, address: PeerAddress(host: "127.0.0.1", port: 1))
        return a
    }

    /// Proves the server still serves a good peer: node 2 dials it and a message arrives.
    static func goodPeerStillServed(by a: Node, pki: TestPKI) async throws {
        let b = try await Node.start(2, security: .mutualTLS(try pki.peer(2)))
        try await withCleanup {
            b.transport.setPeer(1, address: a.address)
            #expect(await b.connected(to: 1), "good peer 2 could not connect after a refusal")
            let m = Message(kind: .heartbeat, from: 2, to: 1, term: 42, commit: 5)
            #expect(b.transport.send(m) == .queued)
            #expect(await a.received { $0 == m } != nil, "node 1 did not receive from the good peer")
        } cleanup: {
            await b.transport.shutdown()
        }
    }

    static func sClient(_ a: Node, _ extra: [String]) -> OpenSSLProcess {
        OpenSSLProcess(["s_client", "-connect", "127.0.0.1:\(a.address.port)", "-quiet", "-no_ign_eof"] + extra)
    }

    static func certArgs(_ f: TLSFiles) -> [String] {
        ["-cert", f.certificatePath, "-key", f.privateKeyPath, "-CAfile", f.caCertificatePath]
    }

    @Test func twoTransportsExchangeRaftMessagesOverMutualTLS() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await scope.start(1, security: .mutualTLS(try pki.peer(1)))
            let b = try await scope.start(2, security: .mutualTLS(try pki.peer(2)))
            a.transport.setPeer(2, address: b.address)
            b.transport.setPeer(1, address: a.address)
            #expect(await a.connected(to: 2))
            #expect(await b.connected(to: 1))

            let append = sampleAppend(from: 1, to: 2, entries: 5, bytes: 256)
            #expect(a.transport.send(append) == .queued)
            #expect(await b.received { $0 == append } != nil)
            let reply = Message(kind: .appendResponse, from: 2, to: 1, term: 7, index: 15)
            #expect(b.transport.send(reply) == .queued)
            #expect(await a.received { $0 == reply } != nil)

            // Many messages keep their order on one connection.
            for i in 1...200 { b.transport.send(Message(kind: .heartbeat, from: 2, to: 1, term: 100, commit: UInt64(i))) }
            #expect(await a.received { $0.kind == .heartbeat && $0.commit == 200 } != nil)
            let received = await a.messages.items
            let commits = received.filter { $0.kind == .heartbeat }.map(\.commit)
            #expect(commits == Array(1...200))
            #expect(a.logs.contains("inbound peer connected"))
            await a.transport.shutdown()
            await b.transport.shutdown()
        }
    }

    /// `deliverDirectly`: inbound messages reach the receiver on the event loop, in order, and
    /// no longer the `messages` stream (the peer runtime feeds its node's mailbox this way).
    @Test func directDeliveryHandsEveryMessageToTheReceiverInOrder() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await scope.start(1, security: .mutualTLS(try pki.peer(1)))
            let b = try await scope.start(2, security: .mutualTLS(try pki.peer(2)))
            let (stream, continuation) = AsyncStream.makeStream(of: Message.self)
            let direct = Recorder<Message>()
            direct.record(stream)
            b.transport.deliverDirectly { m in continuation.yield(m) }
            a.transport.setPeer(2, address: b.address)
            b.transport.setPeer(1, address: a.address)
            #expect(await a.connected(to: 2))
            let append = sampleAppend(from: 1, to: 2, entries: 3, bytes: 128)
            #expect(a.transport.send(append) == .queued)
            for i in 1...100 { a.transport.send(Message(kind: .heartbeat, from: 1, to: 2, term: 9, commit: UInt64(i))) }
            #expect(await direct.first { $0.kind == .heartbeat && $0.commit == 100 } != nil)
            let received = await direct.items
            #expect(received.first == append)
            #expect(received.filter { $0.kind == .heartbeat }.map(\.commit) == Array(1...100))
            #expect(await b.messages.items.isEmpty, "a message also went to the stream")
            await a.transport.shutdown()
            await b.transport.shutdown()
            // Shutdown lets go of the receiver (it holds the node, which holds the transport).
            #expect(b.transport.hasDirectReceiver == false)
            continuation.finish()
        }
    }

    @Test func plaintextModeExchangesMessagesAndChecksTheHelloAgainstMembership() async throws {
        try await withNodes { scope in
            let a = try await scope.start(1, security: .insecurePlaintext)
            let b = try await scope.start(2, security: .insecurePlaintext)
            a.transport.setPeer(2, address: b.address)
            b.transport.setPeer(1, address: a.address)
            #expect(await a.connected(to: 2))
            let m = sampleAppend(from: 1, to: 2)
            #expect(a.transport.send(m) == .queued)
            #expect(await b.received { $0 == m } != nil)
            // A third node that B does not know is refused on its hello.
            let c = try await scope.start(3, security: .insecurePlaintext)
            c.transport.setPeer(2, address: b.address)
            #expect(await b.rejection(.unknownPeer) != nil)
            await a.transport.shutdown()
            await b.transport.shutdown()
            await c.transport.shutdown()
        }
    }

    @Test func snapshotChunksStreamWithFlowControl() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let tune: (inout TransportConfiguration) -> Void = {
                $0.sendQueueBytesMax = 4 << 20
                $0.sendQueueLowWaterBytes = 2 << 20
            }
            let a = try await scope.start(1, security: .mutualTLS(try pki.peer(1)), tune: tune)
            let b = try await scope.start(2, security: .mutualTLS(try pki.peer(2)), tune: tune)
            a.transport.setPeer(2, address: b.address)
            b.transport.setPeer(1, address: a.address)
            #expect(await a.connected(to: 2))
            let chunkBytes = 1 << 20
            let chunks = 16
            let meta = SnapshotMetadata(index: 50, term: 3, conf: ConfState(voters: [1, 2]))
            for i in 0..<chunks {
                await a.transport.waitForSendCapacity(to: 2)
                let chunk = SnapshotChunk(metadata: meta, offset: UInt64(i * chunkBytes), totalBytes: UInt64(chunks * chunkBytes),
                                          data: Array(repeating: UInt8(i), count: chunkBytes), done: i == chunks - 1)
                #expect(a.transport.send(Message(kind: .snapshot, from: 1, to: 2, term: 3, snapshot: chunk)) == .queued)
            }
            #expect(await b.received(where: { $0.snapshot?.done == true }) != nil)
            let receivedChunks = await b.messages.items
            let offsets = receivedChunks.compactMap { $0.snapshot?.offset }
            #expect(offsets == (0..<chunks).map { UInt64($0 * chunkBytes) })
            #expect(a.transport.droppedMessages(to: 2) == 0)
            await a.transport.shutdown()
            await b.transport.shutdown()
        }
    }

    @Test func unreachablePeerIsReportedThenReconnectedWithBackoff() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await scope.start(1, security: .mutualTLS(try pki.peer(1)))
            // Nothing listens on port 1 of loopback: the dial fails at once.
            a.transport.setPeer(2, address: PeerAddress(host: "127.0.0.1", port: 1))
            #expect(await a.events.first { if case .peerUnreachable(2, _) = $0 { return true }; return false } != nil)
            #expect(a.logs.contains("peer unreachable"))
            // While it backs off, sends are dropped; its next attempt (after a backoff that grows
            // from 100 ms, with jitter) queues them for that attempt. On a loaded machine the event above may be
            // read during an attempt: send until one lands in a backoff (bounded).
            var dropped = false
            let deadline = ContinuousClock.now + .seconds(10)
            while !dropped, ContinuousClock.now < deadline {
                dropped = a.transport.send(Message(kind: .heartbeat, from: 1, to: 2, term: 1)) == .dropped(.peerUnreachable)
                if !dropped { try await Task.sleep(for: .milliseconds(5)) }
            }
            #expect(dropped, "no send was dropped while peer 2 was unreachable")

            let b = try await scope.start(2, security: .mutualTLS(try pki.peer(2)))
            b.transport.setPeer(1, address: a.address)  // makes 1 a member B accepts
            a.transport.setPeer(2, address: b.address)
            #expect(await a.connected(to: 2))
            let m = Message(kind: .heartbeat, from: 1, to: 2, term: 2)
            #expect(a.transport.send(m) == .queued)
            #expect(await b.received { $0 == m } != nil)
            await a.transport.shutdown()
            await b.transport.shutdown()
        }
    }

    @Test func removedPeerIsDisconnectedAndRefusedWhenItRedials() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await scope.start(1, security: .mutualTLS(try pki.peer(1)))
            let b = try await scope.start(2, security: .mutualTLS(try pki.peer(2)))
            a.transport.setPeer(2, address: b.address)
            b.transport.setPeer(1, address: a.address)
            #expect(await b.connected(to: 1))
            #expect(await a.events.first { if case .inboundEstablished(2, _) = $0 { return true }; return false } != nil)

            a.transport.removePeer(2)
            // B's link to A drops, and its redial is refused: membership is the revocation.
            #expect(await b.events.first { if case .peerUnreachable(1, _) = $0 { return true }; return false } != nil)
            #expect(await a.rejection(.unknownPeer) != nil)
            #expect(a.transport.send(Message(kind: .heartbeat, from: 1, to: 2, term: 1)) == .dropped(.unknownPeer))
            await a.transport.shutdown()
            await b.transport.shutdown()
        }
    }

    @Test func peerGoingAwayIsReportedUnreachableNotAsARefusal() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await scope.start(1, security: .mutualTLS(try pki.peer(1)))
            let b = try await scope.start(2, security: .mutualTLS(try pki.peer(2)))
            a.transport.setPeer(2, address: b.address)
            b.transport.setPeer(1, address: a.address)
            #expect(await a.connected(to: 2))
            #expect(await a.events.first { if case .inboundEstablished(2, _) = $0 { return true }; return false } != nil)
            await b.transport.shutdown()
            #expect(await a.events.first { if case .peerUnreachable(2, _) = $0 { return true }; return false } != nil)
            let seen = await a.events.items
            #expect(!seen.contains { if case .connectionRejected = $0 { return true }; return false }, "\(seen)")
            await a.transport.shutdown()
        }
    }

    @Test func transportRefusesToStartWithAnotherNodesCertificate() throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let config = TransportConfiguration(clusterID: pki.clusterID, nodeID: 1, listen: PeerAddress(host: "127.0.0.1", port: 0),
                                            security: .mutualTLS(try pki.peer(2)))
        #expect(throws: TransportSetupError.self) { try PeerTransport(configuration: config) }
    }

    // MARK: - Refusals, with OpenSSL as the other side

    @Test func plaintextClientIsRefusedAndLogged() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await Self.startServer(pki, scope)
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let raw = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: a.address.port).get()
            try await raw.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
            let r = await a.rejection(.notTLS)
            #expect(r != nil)
            #expect(a.logs.contains("reason=not-tls"))
            try? await raw.closeFuture.get()
            try await group.shutdownGracefully()
            try await Self.goodPeerStillServed(by: a, pki: pki)
            await a.transport.shutdown()
        }
    }

    @Test func tls12ClientIsRefusedAndLogged() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await Self.startServer(pki, scope)
            let client = Self.sClient(a, ["-tls1_2"] + Self.certArgs(try pki.peer(2)))
            try client.run()
            #expect(await a.rejection(.tlsVersionRefused) != nil)
            // finish() is nil when s_client did not exit in time: that must fail too, not pass
            // as "not 0".
            let status = await client.finish()
            #expect(status != nil && status != 0, "s_client should exit with an error, got \(String(describing: status))")
            #expect(a.logs.contains("reason=tls-version-refused"))
            try await Self.goodPeerStillServed(by: a, pki: pki)
            await a.transport.shutdown()
        }
    }

    @Test func clientWithoutCertificateIsRefusedAndLogged() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await Self.startServer(pki, scope)
            let client = Self.sClient(a, ["-tls1_3", "-CAfile", pki.caPath])
            try client.run()
            #expect(await a.rejection(.noClientCertificate) != nil)
            await client.finish()
            #expect(a.logs.contains("reason=no-client-certificate"))
            try await Self.goodPeerStillServed(by: a, pki: pki)
            await a.transport.shutdown()
        }
    }

    @Test(arguments: ["other-ca", "expired", "unknown-peer", "client-cert"])
    func badCertificateIsRefusedWithItsReason(kind: String) async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await Self.startServer(pki, scope)
            let files: TLSFiles
            let expected: RejectReason
            switch kind {
            case "other-ca":
                files = try pki.peerFromOtherCA(2)
                expected = .certificateNotFromClusterCA
            case "expired":
                let past = Date().addingTimeInterval(-30 * 86_400)
                files = try pki.peer(2, validity: Validity(notBefore: past, notAfter: past.addingTimeInterval(86_400)), tag: "expired")
                expected = .certificateExpired
            case "unknown-peer":
                files = try pki.peer(7)
                expected = .unknownPeer
            default:
                files = try pki.client("ops")
                expected = .certificateNotAPeer
            }
            // -CAfile is the real CA so the client trusts the server; only the client's cert is bad.
            let client = Self.sClient(a, ["-tls1_3", "-cert", files.certificatePath, "-key", files.privateKeyPath, "-CAfile", pki.caPath])
            try client.run()
            let r = await a.rejection(expected)
            let seen = await a.events.items
            #expect(r != nil, "expected \(expected.rawValue); events: \(seen)")
            await client.finish()
            #expect(a.logs.contains("reason=\(expected.rawValue)"))
            try await Self.goodPeerStillServed(by: a, pki: pki)
            await a.transport.shutdown()
        }
    }

    @Test func helloClaimingAnotherPeerThanTheCertificateIsRefused() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await Self.startServer(pki, scope)
            // Certificate of peer 3 (a member), hello claiming to be peer 2.
            let hello = Hello(clusterID: pki.clusterID, nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 1)
            let client = Self.sClient(a, ["-tls1_3"] + Self.certArgs(try pki.peer(3)))
            try client.run(input: frameBytes(.hello(hello)))
            #expect(await a.rejection(.helloNodeMismatch) != nil)
            await client.finish()
            #expect(a.logs.contains("reason=hello-node-mismatch"))
            try await Self.goodPeerStillServed(by: a, pki: pki)
            await a.transport.shutdown()
        }
    }

    @Test func helloWithWrongClusterIDIsRefused() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await Self.startServer(pki, scope)
            let hello = Hello(clusterID: "another-cluster", nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 1)
            let client = Self.sClient(a, ["-tls1_3"] + Self.certArgs(try pki.peer(2)))
            try client.run(input: frameBytes(.hello(hello)))
            #expect(await a.rejection(.helloClusterMismatch) != nil)
            await client.finish()
            #expect(a.logs.contains("reason=hello-cluster-mismatch"))
            try await Self.goodPeerStillServed(by: a, pki: pki)
            await a.transport.shutdown()
        }
    }

    @Test(arguments: ["oversized", "malformed"])
    func badFrameClosesThatConnectionOnly(kind: String) async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            let a = try await Self.startServer(pki, scope)
            // An established good peer first: its connection must survive the bad one.
            let b = try await scope.start(2, security: .mutualTLS(try pki.peer(2)))
            b.transport.setPeer(1, address: a.address)
            #expect(await b.connected(to: 1))

            let hello = Hello(clusterID: pki.clusterID, nodeID: 3, protocolVersionMin: 1, protocolVersionMax: 1)
            var bad = frameBytes(.hello(hello))
            let expected: RejectReason
            if kind == "oversized" {
                bad += withUnsafeBytes(of: UInt32(Framing.frameBytesMaxDefault + 1).bigEndian) { Array($0) } + [1, 2, 3]
                expected = .frameTooLarge
            } else {
                bad += [0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF]
                expected = .malformedFrame
            }
            let client = Self.sClient(a, ["-tls1_3"] + Self.certArgs(try pki.peer(3)))
            try client.run(input: bad)
            #expect(await a.rejection(expected) != nil)
            await client.finish()
            #expect(a.logs.contains("reason=\(expected.rawValue)"))

            let m = Message(kind: .heartbeat, from: 2, to: 1, term: 3)
            #expect(b.transport.send(m) == .queued)
            #expect(await a.received { $0 == m } != nil, "the good connection was harmed")
            let bEvents = await b.events.items
            #expect(!bEvents.contains { if case .peerUnreachable = $0 { return true }; return false })
            await b.transport.shutdown()
            await a.transport.shutdown()
        }
    }

    @Test func dialledServerNamingAnotherPeerIsRefused() async throws {
        try await withNodes { scope in
            let pki = try TestPKI()
            defer { pki.cleanup() }
            // openssl s_server presents peer 3's certificate where we expect peer 2.
            let three = try pki.peer(3)
            let a = try await scope.start(1, security: .mutualTLS(try pki.peer(1)))
            // The port was free a moment ago; a test running beside this one can take it before
            // s_server binds it, and s_server then exits. Only such an attempt is repeated (a
            // bounded number of times), never one where s_server ran and no rejection came.
            var r: ConnectionRejection?
            for attempt in 1...5 {
                let port = try await freeLoopbackPort()
                let server = OpenSSLProcess(["s_server", "-accept", "127.0.0.1:\(port)", "-tls1_3", "-quiet",
                                             "-cert", three.certificatePath, "-key", three.privateKeyPath,
                                             "-CAfile", pki.caPath, "-Verify", "1"])
                try server.run()
                a.transport.setPeer(2, address: PeerAddress(host: "127.0.0.1", port: port))
                r = await a.rejection(.certificateNamesOtherPeer, timeout: .seconds(10))
                let lostThePort = r == nil && !server.process.isRunning
                await server.terminate()
                if !lostThePort { break }
                print("attempt \(attempt): s_server could not keep port \(port): \(server.outputText)")
            }
            #expect(r?.direction == .outbound)
            #expect(r?.peer == 2)
            #expect(a.logs.contains("reason=certificate-names-other-peer"))
            await a.transport.shutdown()
        }
    }
}

/// A port that was free a moment ago (bind to port 0 on loopback, read it, close).
func freeLoopbackPort() async throws -> Int {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress!.port!
    try await channel.close()
    try await group.shutdownGracefully()
    return port
}
