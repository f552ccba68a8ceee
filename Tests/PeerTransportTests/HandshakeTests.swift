import Foundation
import NIOCore
import NIOEmbedded
import PeerCerts
@testable import PeerTransport
@testable import PeerWire
import Raft
import Testing
import X509

@Suite struct HandshakeTests {
    let local = Hello(clusterID: "c", nodeID: 1, protocolVersionMin: 1, protocolVersionMax: 2)

    @Test func inboundEstablishesOnAMatchingHelloAndPicksTheHighestCommonVersion() {
        var m = InboundHandshake(local: local, members: [2])
        _ = m.transportReady(certified: 2)
        let action = m.frameReceived(.hello(Hello(clusterID: "c", nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 5)))
        var answer = local
        answer.protocolVersionChosen = 2
        #expect(action == .answerAndEstablish(answer, peer: 2, version: 2))
        let msg = Message(kind: .heartbeat, from: 2, to: 1, term: 1)
        #expect(m.frameReceived(.message(msg)) == .deliver(msg))
    }

    @Test func inboundRefusesAHelloForAnotherCluster() {
        var m = InboundHandshake(local: local, members: [2])
        _ = m.transportReady(certified: 2)
        guard case .reject(.helloClusterMismatch, _, true) = m.frameReceived(
            .hello(Hello(clusterID: "other", nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 1)))
        else { Issue.record("expected hello-cluster-mismatch"); return }
    }

    @Test func inboundRefusesAHelloClaimingAnotherPeerThanTheCertificate() {
        var m = InboundHandshake(local: local, members: [2, 3])
        _ = m.transportReady(certified: 3)
        guard case .reject(.helloNodeMismatch, _, _) = m.frameReceived(
            .hello(Hello(clusterID: "c", nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 1)))
        else { Issue.record("expected hello-node-mismatch"); return }
    }

    @Test func inboundRefusesDisjointVersionRanges() {
        var m = InboundHandshake(local: local, members: [2])
        _ = m.transportReady(certified: 2)
        guard case .reject(.noCommonProtocolVersion, _, _) = m.frameReceived(
            .hello(Hello(clusterID: "c", nodeID: 2, protocolVersionMin: 3, protocolVersionMax: 4)))
        else { Issue.record("expected no-common-protocol-version"); return }
    }

    @Test func inboundRefusesMessagesBeforeHelloAndMisaddressedMessagesAfter() {
        var early = InboundHandshake(local: local, members: [2])
        _ = early.transportReady(certified: 2)
        guard case .reject(.expectedHello, _, _) = early.frameReceived(.message(Message(kind: .heartbeat, from: 2, to: 1, term: 1)))
        else { Issue.record("expected expected-hello"); return }

        var m = InboundHandshake(local: local, members: [2, 3])
        _ = m.transportReady(certified: 2)
        _ = m.frameReceived(.hello(Hello(clusterID: "c", nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 1)))
        guard case .reject(.messageMisaddressed, _, _) = m.frameReceived(.message(Message(kind: .heartbeat, from: 3, to: 1, term: 1)))
        else { Issue.record("expected message-misaddressed"); return }
        #expect(m.frameReceived(.message(Message(kind: .heartbeat, from: 2, to: 1, term: 1))) == .none)
    }

    @Test func plaintextInboundAcceptsOnlyKnownPeersClaimedInTheHello() {
        var m = InboundHandshake(local: local, members: [2])
        _ = m.transportReady(certified: nil)
        guard case .reject(.unknownPeer, _, _) = m.frameReceived(
            .hello(Hello(clusterID: "c", nodeID: 9, protocolVersionMin: 1, protocolVersionMax: 1)))
        else { Issue.record("expected unknown-peer"); return }
    }

    @Test func helloTimeoutDuringTLSClosesWithoutAReject() {
        // Nothing can be written before TLS is up: waiting for a Reject write would never close.
        var inbound = InboundHandshake(local: local, members: [2])
        guard case .reject(.helloTimeout, _, tellRemote: false) = inbound.timedOut() else { Issue.record("expected a silent close"); return }
        var outbound = OutboundHandshake(local: local, expectedPeer: 2)
        guard case .reject(.helloTimeout, _, tellRemote: false) = outbound.timedOut() else { Issue.record("expected a silent close"); return }
        // Once TLS is up, the other side is told why.
        var afterTLS = InboundHandshake(local: local, members: [2])
        _ = afterTLS.transportReady(certified: 2)
        guard case .reject(.helloTimeout, _, tellRemote: true) = afterTLS.timedOut() else { Issue.record("expected a Reject"); return }
    }

    @Test func helloTimeoutClosesOnlyUnfinishedHandshakes() {
        var m = InboundHandshake(local: local, members: [2])
        guard case .reject(.helloTimeout, _, _) = m.timedOut() else { Issue.record("expected hello-timeout"); return }
        #expect(m.timedOut() == .none)
    }

    @Test func outboundSendsHelloAndEstablishesOnlyOnAnAnswerFromTheDialledPeer() {
        var m = OutboundHandshake(local: local, expectedPeer: 2)
        #expect(m.transportReady() == .send(.hello(local)))
        #expect(m.frameReceived(.hello(Hello(clusterID: "c", nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 1,
                                             protocolVersionChosen: 1))) == .establish(peer: 2, version: 1))

        var wrong = OutboundHandshake(local: local, expectedPeer: 2)
        _ = wrong.transportReady()
        guard case .reject(.helloNodeMismatch, _, _) = wrong.frameReceived(
            .hello(Hello(clusterID: "c", nodeID: 3, protocolVersionMin: 1, protocolVersionMax: 1, protocolVersionChosen: 1)))
        else { Issue.record("expected hello-node-mismatch"); return }
    }

    @Test func outboundReportsARemoteRejectWithItsReason() {
        var m = OutboundHandshake(local: local, expectedPeer: 2)
        _ = m.transportReady()
        #expect(m.frameReceived(.reject(reason: "unknown-peer", detail: "d")) == .reject(.rejectedByRemote, "unknown-peer: d", tellRemote: false))
    }

    @Test func versionNegotiationPicksTheHighestOverlap() {
        #expect(ProtocolVersion.negotiate(localMin: 1, localMax: 3, remoteMin: 2, remoteMax: 5) == 3)
        #expect(ProtocolVersion.negotiate(localMin: 1, localMax: 1, remoteMin: 2, remoteMax: 5) == nil)
    }

    @Test func frameDecoderInAChannelClosesOnAnOversizedFrameOnly() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(frameBytesMax: 8)))
        var ok = ByteBuffer()
        Framing.writeFrame([1, 2, 3], into: &ok)
        try channel.writeInbound(ok)
        #expect(try channel.readInbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == [1, 2, 3])
        var big = ByteBuffer()
        Framing.writeFrame(Array(repeating: 0, count: 9), into: &big)
        #expect(throws: FrameError.tooLarge(lengthBytes: 9, frameBytesMax: 8)) { try channel.writeInbound(big) }
        _ = try? channel.finish()
    }
}

@Suite struct PolicyTests {
    @Test func certificatePolicyNamesEachReason() throws {
        let pki = try TestPKI()
        defer { pki.cleanup() }
        let policy = PeerCertificatePolicy(clusterCA: pki.ca.certificate, clusterID: pki.clusterID)
        func verdict(_ files: TLSFiles, _ e: PeerCertificatePolicy.Expectation, usage: ExtendedKeyUsage.Usage = .clientAuth) throws -> PeerCertificatePolicy.Verdict {
            policy.verify(chain: [try loadCertificate(path: files.certificatePath)], expecting: e, usage: usage, now: Date())
        }
        func reason(_ v: PeerCertificatePolicy.Verdict) -> RejectReason? {
            if case .rejected(let r, _) = v { return r }
            return nil
        }
        let two = try pki.peer(2), three = try pki.peer(3), seven = try pki.peer(7)
        let foreign = try pki.peerFromOtherCA(2)
        let past = Date().addingTimeInterval(-10 * 86_400)
        let expired = try pki.peer(2, validity: Validity(notBefore: past, notAfter: past.addingTimeInterval(86_400)), tag: "expired")
        let future = Date().addingTimeInterval(10 * 86_400)
        let early = try pki.peer(2, validity: Validity(notBefore: future, notAfter: future.addingTimeInterval(86_400)), tag: "early")
        let client = try pki.client("ops")

        let acceptedInbound = try verdict(two, .anyOf([2, 3]))
        let acceptedOutbound = try verdict(two, .exactly(2), usage: .serverAuth)
        #expect(acceptedInbound == .accepted(2))
        #expect(acceptedOutbound == .accepted(2))
        let cases: [(PeerCertificatePolicy.Verdict, RejectReason)] = [
            (try verdict(three, .exactly(2)), .certificateNamesOtherPeer),
            (try verdict(seven, .anyOf([2, 3])), .unknownPeer),
            (try verdict(foreign, .anyOf([2])), .certificateNotFromClusterCA),
            (try verdict(expired, .anyOf([2])), .certificateExpired),
            (try verdict(early, .anyOf([2])), .certificateNotYetValid),
            (try verdict(client, .anyOf([2])), .certificateNotAPeer),
            (try verdict(client, .exactly(2), usage: .serverAuth), .certificateUnfit),
        ]
        for (v, expected) in cases {
            let got = reason(v)
            #expect(got == expected)
        }
    }
}

@Suite struct QueueAndBackoffTests {
    @Test func sendQueueDropsTheNewestMessageWhenFullByCountOrBytes() {
        var q = SendQueue(messagesMax: 2, bytesMax: 10_000)
        let first = q.push(Message(kind: .heartbeat, from: 1, to: 2, term: 1))
        let second = q.push(Message(kind: .heartbeat, from: 1, to: 2, term: 2))
        let third = q.push(Message(kind: .heartbeat, from: 1, to: 2, term: 3))
        #expect(first && second && !third)
        let popped = q.pop(bytesBudget: 1).map(\.term)
        #expect(popped == [1])

        var b = SendQueue(messagesMax: 100, bytesMax: 500)
        let big1 = b.push(sampleAppend(from: 1, to: 2, entries: 1, bytes: 300))
        let big2 = b.push(sampleAppend(from: 1, to: 2, entries: 1, bytes: 300))
        #expect(big1 && !big2)
        #expect(b.count == 1)
    }

    @Test func backoffGrowsExponentiallyWithJitterAndStaysWithinItsCap() {
        let backoff = Backoff(initialMs: 100, maxMs: 1_000)
        var rng = SplitMix(seed: 42)
        #expect((1...6).map { backoff.nominalMs(attempt: $0) } == [100, 200, 400, 800, 1_000, 1_000])
        for attempt in 1...50 {
            let d = backoff.delayMs(attempt: attempt, using: &rng)
            let nominal = backoff.nominalMs(attempt: attempt)
            #expect(d >= nominal / 2 && d <= nominal)
        }
        #expect(backoff.nominalMs(attempt: 10_000) == 1_000)
    }
}

/// A small seeded generator so jitter tests repeat exactly.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct RemoteTextTests {
    @Test func remoteRejectTextCannotForgeLogLines() {
        var m = InboundHandshake(local: Hello(clusterID: "c", nodeID: 1, protocolVersionMin: 1, protocolVersionMax: 1), members: [2])
        _ = m.transportReady(certified: 2)
        let forged = "bye\nlevel=info msg=\"all good\"\u{1B}[2J" + String(repeating: "x", count: 2000)
        guard case .reject(.rejectedByRemote, let detail, false) = m.frameReceived(.reject(reason: "r\r", detail: forged)) else {
            Issue.record("expected rejected-by-remote")
            return
        }
        #expect(!detail.contains("\n") && !detail.contains("\r") && !detail.contains("\u{1B}"))
        #expect(detail.contains("\\n") && detail.hasSuffix("…(cut)"))
        #expect(detail.count < 600)
    }
}
