import Foundation
import PeerConfig
import Testing

/// `limits:`: defaults when absent, each key read, and every value of 0, below or above its
/// range refused at load with the file, line and reason.
@Suite struct LimitsConfigTests {
    @Test func absentLimitsAreTheDocumentedDefaults() throws {
        let limits = try parse(validYAML).limits
        #expect(limits == .defaults)
        #expect(limits.api.connectionsMax == 1024 && limits.api.connectionsPerAddressMax == 256)
        #expect(limits.api.handshakeTimeoutMs == 10_000 && limits.api.idleTimeoutMs == 60_000 && limits.api.bodyTimeoutMs == 30_000)
        #expect(limits.api.headerBytesMax == 65_536 && limits.api.bodyBytesMax == 65_536)
        #expect(limits.transport.handshakingConnectionsMax == 64 && limits.transport.helloTimeoutMs == 5_000)
        #expect(limits.transport.handshakingPerAddressMax == 16)
        #expect(limits.transport.inboundConnectionsPerPeerMax == 2 && limits.routerControl.timeoutMs == 5_000)
        // 1024 clients + (3 × 128 + 64) members + 2 × 128 own admin connections + 64 handshakes
        // + 3 peers × 3 + 256.
        #expect(limits.openFilesNeeded(peerCount: 3) == 2057)
    }

    @Test func everyKeyIsRead() throws {
        let yaml = validYAML + """

            limits:
              api:
                connectionsMax: 200
                connectionsPerAddressMax: 16
                handshakeTimeoutMs: 2000
                idleTimeoutMs: 2500
                bodyTimeoutMs: 3000
                headerBytesMax: 8192
                bodyBytesMax: 4096
              transport:
                handshakingConnectionsMax: 8
                handshakingPerAddressMax: 4
                helloTimeoutMs: 1500
                inboundConnectionsPerPeerMax: 3
              routerControl:
                timeoutMs: 1500
            """
        let limits = try parse(yaml).limits
        #expect(limits.api.connectionsMax == 200 && limits.api.connectionsPerAddressMax == 16)
        #expect(limits.api.handshakeTimeoutMs == 2000 && limits.api.idleTimeoutMs == 2500 && limits.api.bodyTimeoutMs == 3000)
        #expect(limits.api.headerBytesMax == 8192 && limits.api.bodyBytesMax == 4096)
        #expect(limits.transport.handshakingConnectionsMax == 8 && limits.transport.helloTimeoutMs == 1500)
        #expect(limits.transport.inboundConnectionsPerPeerMax == 3 && limits.transport.handshakingPerAddressMax == 4)
        #expect(limits.routerControl.timeoutMs == 1500)
    }

    @Test func zeroNegativeAndTooLargeValuesAreRefusedWithTheirLine() {
        let cases: [(section: String, key: String, value: String, range: String)] = [
            ("api", "connectionsMax", "0", "16-65536"),
            ("api", "connectionsMax", "65537", "16-65536"),
            ("api", "connectionsPerAddressMax", "-1", "1-65536"),
            ("api", "handshakeTimeoutMs", "0", "100-600000"),
            ("api", "idleTimeoutMs", "3600001", "100-3600000"),
            ("api", "bodyTimeoutMs", "-5", "100-600000"),
            ("api", "headerBytesMax", "0", "1024-1048576"),
            ("api", "bodyBytesMax", "16777217", "1024-16777216"),
            ("transport", "handshakingConnectionsMax", "0", "1-4096"),
            ("transport", "handshakingPerAddressMax", "0", "1-4096"),
            ("transport", "helloTimeoutMs", "60001", "100-60000"),
            ("transport", "inboundConnectionsPerPeerMax", "17", "1-16"),
            ("routerControl", "timeoutMs", "99", "100-600000"),
        ]
        for c in cases {
            expectRefused(
                validYAML + "\nlimits:\n  \(c.section):\n    \(c.key): \(c.value)\n", keyPath: "limits.\(c.section).\(c.key)",
                reason: "\(c.value) is out of range \(c.range)", line: 20)
        }
    }

    @Test func morePerAddressThanInAllAndUnknownKeysAreRefused() {
        expectRefused(
            validYAML + "\nlimits:\n  api:\n    connectionsMax: 100\n    connectionsPerAddressMax: 101\n",
            keyPath: "limits.api.connectionsPerAddressMax", reason: "connectionsPerAddressMax (101) is more than connectionsMax (100)", line: 21)
        expectRefused(
            validYAML + "\nlimits:\n  api:\n    connectionMax: 100\n", keyPath: "limits.api.connectionMax",
            reason: "unknown key 'connectionMax' (did you mean 'connectionsMax'?)", line: 20)
        expectRefused(
            validYAML + "\nlimits:\n  transport:\n    handshakingConnectionsMax: 8\n    handshakingPerAddressMax: 9\n",
            keyPath: "limits.transport.handshakingPerAddressMax", reason: "handshakingPerAddressMax (9) is more than handshakingConnectionsMax (8)", line: 21)
        expectRefused(validYAML + "\nlimits:\n  router: {}\n", keyPath: "limits.router", reason: "unknown key 'router'", line: 19)
    }

    @Test func theFailureDetectorsThresholdIsATimingKeyWithARange() throws {
        #expect(try parse(validYAML).timing.instanceLostAfterMs == 5_000)
        #expect(try parse(validYAML + "\ntiming:\n  instanceLostAfterMs: 2000\n").timing.instanceLostAfterMs == 2_000)
        expectRefused(validYAML + "\ntiming:\n  instanceLostAfterMs: 999\n", keyPath: "timing.instanceLostAfterMs",
                      reason: "999 is out of range 1000-3600000", line: 19)
    }
}
