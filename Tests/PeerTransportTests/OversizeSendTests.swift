@testable import PeerTransport
import Raft
import Testing

/// A message whose frame would exceed `frameBytesMax` is refused by `send` (S5), not queued and
/// then silently dropped at flush time forever.
@Suite(.serialized) struct OversizeSendTests {
    @Test func sendRefusesAMessageLargerThanAFrameAndCountsIt() async throws {
        let frameBytesMax = 4096
        let tune: (inout TransportConfiguration) -> Void = { $0.frameBytesMax = frameBytesMax }
        try await withNodes { scope in
            let a = try await scope.start(1, security: .insecurePlaintext, tune: tune)
            let b = try await scope.start(2, security: .insecurePlaintext, tune: tune)
            a.transport.setPeer(2, address: b.address)
            b.transport.setPeer(1, address: a.address)
            #expect(await a.connected(to: 2))

            let big = sampleAppend(from: 1, to: 2, entries: 1, bytes: frameBytesMax + 1)
            #expect(a.transport.send(big) == .dropped(.tooLarge))
            #expect(a.transport.droppedMessages(to: 2) == 1)
            let event = await a.events.first {
                if case .messagesDropped(2, _, .tooLarge) = $0 { return true }
                return false
            }
            #expect(event != nil)

            // Just under the limit still goes through, and the link is unharmed.
            let fits = sampleAppend(from: 1, to: 2, entries: 1, bytes: frameBytesMax - 200)
            #expect(a.transport.send(fits) == .queued)
            #expect(await b.received { $0 == fits } != nil)
        }
    }

    @Test func sizeCheckIsExactNearTheLimit() {
        // Many small entries: the payload estimate alone is under the limit, the frame is not.
        let m = sampleAppend(from: 1, to: 2, entries: 200, bytes: 8)
        let encoded = WireCodecSize.bytes(m)
        #expect(OutboundLink.exceedsFrame(m, frameBytesMax: encoded - 1))
        #expect(!OutboundLink.exceedsFrame(m, frameBytesMax: encoded))
    }
}

import PeerWire

enum WireCodecSize {
    static func bytes(_ m: Message) -> Int { WireCodec.encode(.message(m)).count }
}
