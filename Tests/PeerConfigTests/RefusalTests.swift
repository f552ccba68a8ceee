import Foundation
import PeerConfig
import Testing

/// Every way a file is refused, each with the key path and the reason an operator reads.
@Suite struct RefusalTests {
    // MARK: the document

    @Test func anEmptyFileIsRefused() {
        let reason = "the file is empty: expected a mapping with at least 'cluster', 'dataDir', 'tlsDir' and 'peers'"
        expectRefused("", keyPath: "", reason: reason)
        expectRefused("# only a comment\n\n", keyPath: "", reason: reason)
    }

    @Test func aDocumentThatIsNotAMappingIsRefused() {
        let what = "must be a mapping of cluster settings (cluster, dataDir, tlsDir, runDir, timing, peers, admin, broker, catalog, components, router, limits, providers, balancer, events)"
        expectRefused("- a\n- b\n", keyPath: "", reason: what + ", got a list", line: 1)
        expectRefused("hello\n", keyPath: "", reason: what + ", got 'hello'", line: 1)
    }

    @Test func invalidYAMLIsRefusedWithItsLine() throws {
        let error = try #require(throws: ConfigError.self) { try parse("cluster: a\n  dataDir: b\n") }
        #expect(error.line == 2)
        #expect(error.keyPath == "")
        #expect(error.reason == "invalid YAML at column 10: mapping values are not allowed in this context")
    }

    @Test func anUnquotedIPv6AddressGetsAHintWithTheSyntaxError() throws {
        let yaml = validYAML(replacing: "peer: 127.0.0.1:7102", with: "peer: [::1]:7102")
        let error = try #require(throws: ConfigError.self) { try parse(yaml) }
        #expect(error.line == 11)
        #expect(error.reason.hasPrefix("invalid YAML at column "))
        #expect(error.reason.hasSuffix("; an IPv6 address must be quoted: \"[::1]:7101\""))
    }

    @Test func twoDocumentsAreRefused() throws {
        let error = try #require(throws: ConfigError.self) { try parse(validYAML + "\n---\ncluster: b\n") }
        #expect(error.reason.contains("but found another document"), "\(error)")
        #expect(error.line == 18)
    }

    @Test func theDescriptionNamesFileLineKeyPathAndReason() throws {
        let error = try #require(throws: ConfigError.self) { try parse(validYAML(replacing: "7202", with: "70000")) }
        #expect(error.description == "test.yaml:12: peers[1].api: port 70000 is out of range 1-65535")
    }

    // MARK: keys

    @Test func unknownKeysAreRefusedWithTheNearestKnownOne() {
        expectRefused(validYAML + "\ntiming:\n  tikMs: 100\n", keyPath: "timing.tikMs",
                      reason: "unknown key 'tikMs' (did you mean 'tickMs'?)", line: 19)
        expectRefused(validYAML + "\nTLSDir: x\n", keyPath: "TLSDir", reason: "unknown key 'TLSDir' (did you mean 'tlsDir'?)")
        expectRefused(validYAML + "\nlogLevel: debug\n", keyPath: "logLevel", reason: "unknown key 'logLevel'")
        expectRefused(validYAML(replacing: "router: 127.0.0.1:7302", with: "routr: 127.0.0.1:7302"),
                      keyPath: "peers[1].routr", reason: "unknown key 'routr' (did you mean 'router'?)", line: 13)
        expectRefused(validYAML + "\nadmin:\n  token: x\n", keyPath: "admin.token", reason: "unknown key 'token'")
    }

    @Test func anUnknownKeyIsReportedBeforeTheRequiredKeyItMisspells() {
        expectRefused(validYAML(replacing: "cluster: test-1", with: "clustr: test-1"), keyPath: "clustr",
                      reason: "unknown key 'clustr' (did you mean 'cluster'?)", line: 1)
    }

    @Test func duplicateKeysAreRefused() {
        expectRefused(validYAML + "\ncluster: again\n", keyPath: "cluster", reason: "duplicate key 'cluster' (also on line 1)", line: 18)
        expectRefused(validYAML(replacing: "id: 2", with: "id: 2\n    id: 4"), keyPath: "peers[1].id",
                      reason: "duplicate key 'id' (also on line 10)", line: 11)
    }

    @Test func missingRequiredKeysAreRefused() {
        expectRefused(validYAML(replacing: "cluster: test-1\n", with: ""), keyPath: "cluster",
                      reason: "missing required key 'cluster'", line: 1)
        expectRefused(validYAML(replacing: "dataDir: data\n", with: ""), keyPath: "dataDir", reason: "missing required key 'dataDir'")
        expectRefused(validYAML(replacing: "tlsDir: tls\n", with: ""), keyPath: "tlsDir", reason: "missing required key 'tlsDir'")
        expectRefused("cluster: a\ndataDir: b\ntlsDir: c\n", keyPath: "peers", reason: "missing required key 'peers'")
        expectRefused(validYAML(replacing: "    api: 127.0.0.1:7202\n", with: ""), keyPath: "peers[1].api",
                      reason: "missing required key 'api'", line: 10)
        expectRefused(validYAML(replacing: "  - id: 2\n    peer:", with: "  - peer:"), keyPath: "peers[1].id",
                      reason: "missing required key 'id'", line: 10)
        expectRefused(validYAML(replacing: "cluster: test-1", with: "cluster:"), keyPath: "cluster",
                      reason: "missing value for required key 'cluster'", line: 1)
        expectRefused(validYAML(replacing: "cluster: test-1", with: "cluster: ~"), keyPath: "cluster",
                      reason: "missing value for required key 'cluster'", line: 1)
    }

    @Test func keysMustBePlainNames() {
        expectRefused(validYAML + "\n[a]: b\n", keyPath: "", reason: "keys must be plain names, got a list", line: 18)
    }

    // MARK: values

    @Test func theClusterIDIsOneLowerCaseDNSLabel() {
        let rule = "use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit"
        for bad in ["Local-3", "local_3", "-a", "a-", "a.b", String(repeating: "a", count: 64)] {
            expectRefused(validYAML(replacing: "cluster: test-1", with: "cluster: \(bad)"), keyPath: "cluster",
                          reason: "invalid cluster id '\(bad)': \(rule)", line: 1)
        }
        expectRefused(validYAML(replacing: "cluster: test-1", with: "cluster: ''"), keyPath: "cluster", reason: "must not be empty")
        expectRefused(validYAML(replacing: "cluster: test-1", with: "cluster: [a]"), keyPath: "cluster",
                      reason: "must be a string, got a list")
    }

    @Test func integersMustBeWrittenAsPlainDecimalNumbers() {
        expectRefused(validYAML(replacing: "id: 2", with: "id: abc"), keyPath: "peers[1].id", reason: "must be an integer, got 'abc'", line: 10)
        expectRefused(validYAML(replacing: "id: 2", with: "id: \"2\""), keyPath: "peers[1].id",
                      reason: "must be an integer, got the quoted string '2' (remove the quotes)")
        expectRefused(validYAML(replacing: "id: 2", with: "id: 0x2"), keyPath: "peers[1].id", reason: "must be an integer, got '0x2'")
        expectRefused(validYAML(replacing: "id: 2", with: "id: 2.0"), keyPath: "peers[1].id", reason: "must be an integer, got '2.0'")
        expectRefused(validYAML(replacing: "id: 2", with: "id: 1_000"), keyPath: "peers[1].id", reason: "must be an integer, got '1_000'")
        expectRefused(validYAML(replacing: "id: 2", with: "id: {a: 1}"), keyPath: "peers[1].id", reason: "must be an integer, got a mapping")
        expectRefused(validYAML + "\ntiming:\n  tickMs: 100.5\n", keyPath: "timing.tickMs", reason: "must be an integer, got '100.5'")
    }

    @Test func peerIDsAre1To2To63Minus1() {
        expectRefused(validYAML(replacing: "id: 2", with: "id: 0"), keyPath: "peers[1].id",
                      reason: "0 is out of range 1-9223372036854775807")
        expectRefused(validYAML(replacing: "id: 2", with: "id: -2"), keyPath: "peers[1].id",
                      reason: "-2 is out of range 1-9223372036854775807")
        expectRefused(validYAML(replacing: "id: 2", with: "id: 9223372036854775808"), keyPath: "peers[1].id",
                      reason: "9223372036854775808 is out of range 1-9223372036854775807")
        expectRefused(validYAML(replacing: "id: 2", with: "id: 99999999999999999999999"), keyPath: "peers[1].id",
                      reason: "99999999999999999999999 is out of range 1-9223372036854775807")
    }

    @Test func timingsAreRangeChecked() {
        expectRefused(validYAML + "\ntiming:\n  tickMs: 0\n", keyPath: "timing.tickMs", reason: "0 is out of range 1-10000", line: 19)
        expectRefused(validYAML + "\ntiming:\n  heartbeatTicks: 0\n", keyPath: "timing.heartbeatTicks", reason: "0 is out of range 1-10000")
        expectRefused(validYAML + "\ntiming:\n  electionTicks: 2\n", keyPath: "timing.electionTicks", reason: "2 is out of range 3-100000")
        expectRefused(validYAML + "\ntiming:\n  snapshotEveryEntries: 0\n", keyPath: "timing.snapshotEveryEntries",
                      reason: "0 is out of range 1-1000000000")
        expectRefused(validYAML + "\ntiming: fast\n", keyPath: "timing", reason: "must be a mapping of Raft timings, got 'fast'")
    }

    @Test func electionTicksMustBeAtLeastThreeHeartbeats() {
        expectRefused(validYAML + "\ntiming:\n  electionTicks: 5\n  heartbeatTicks: 2\n", keyPath: "timing.electionTicks",
                      reason: "electionTicks (5) must be at least 3 x heartbeatTicks (2), that is 6", line: 19)
        // Against the default electionTicks (10), the heartbeat is the value at fault.
        expectRefused(validYAML + "\ntiming:\n  heartbeatTicks: 4\n", keyPath: "timing.heartbeatTicks",
                      reason: "electionTicks (10) must be at least 3 x heartbeatTicks (4), that is 12", line: 19)
        #expect(throws: Never.self) { try parse(validYAML + "\ntiming:\n  electionTicks: 6\n  heartbeatTicks: 2\n") }
    }

    @Test func autopilotsDeadVoterThresholdIsTheLongerOne() throws {
        expectRefused(validYAML + "\ntiming:\n  instanceLostAfterMs: 5000\n  deadVoterRemoveAfterMs: 4000\n", keyPath: "timing.deadVoterRemoveAfterMs",
                      reason: "deadVoterRemoveAfterMs (4000) must be 0 (never) or at least instanceLostAfterMs (5000)", line: 20)
        expectRefused(validYAML + "\ntiming:\n  learnerStableMs: -1\n", keyPath: "timing.learnerStableMs", reason: "-1 is out of range 0-3600000")
        let off = try parse(validYAML + "\ntiming:\n  deadVoterRemoveAfterMs: 0\n")
        #expect(off.timing.deadVoterRemoveAfterMs == 0 && off.timing.learnerStableMs == 10_000)
        #expect(try parse(validYAML).timing.deadVoterRemoveAfterMs == 120_000)
    }

    @Test func addressesAreCheckedWithTheirKeyPath() {
        expectRefused(validYAML(replacing: "7202", with: "70000"), keyPath: "peers[1].api",
                      reason: "port 70000 is out of range 1-65535", line: 12)
        expectRefused(validYAML(replacing: "127.0.0.1:7101", with: "127.0.0.1"), keyPath: "peers[0].peer",
                      reason: "must be host:port (IPv6 in brackets: \"[::1]:7101\"), got '127.0.0.1'", line: 7)
        expectRefused(validYAML(replacing: "127.0.0.1:7303", with: "'::1:7303'"), keyPath: "peers[2].router",
                      reason: "an IPv6 address must be in brackets, e.g. \"[::1]:7101\", got '::1:7303'")
        expectRefused(validYAML(replacing: "127.0.0.1:7101", with: "{host: a}"), keyPath: "peers[0].peer",
                      reason: "must be a string host:port, got a mapping (quote an IPv6 address: \"[::1]:7101\")")
    }

    @Test func peersAndTheAPIMustNotListenOnEveryAddress() {
        expectRefused(validYAML(replacing: "127.0.0.1:7101", with: "0.0.0.0:7101"), keyPath: "peers[0].peer",
                      reason: "0.0.0.0:7101 means every address of the machine, which no one can dial; give this peer's own address")
        expectRefused(validYAML(replacing: "127.0.0.1:7201", with: "'[::]:7201'"), keyPath: "peers[0].api",
                      reason: "[::]:7201 means every address of the machine, which no one can dial; give this peer's own address")
    }

    @Test func pathsAreNeverEmptyOrTildeRelative() {
        expectRefused(validYAML(replacing: "dataDir: data", with: "dataDir: ~/data"), keyPath: "dataDir",
                      reason: "'~' is not expanded; use an absolute path or one relative to the config file, got '~/data'")
        expectRefused(validYAML(replacing: "tlsDir: tls", with: "tlsDir: \"\""), keyPath: "tlsDir", reason: "must not be empty")
        expectRefused(validYAML + "\nadmin:\n  tokenFile: [a]\n", keyPath: "admin.tokenFile", reason: "must be a string, got a list")
    }

    // MARK: peers as a whole

    @Test func atLeastOnePeerIsRequired() {
        let head = "cluster: a\ndataDir: b\ntlsDir: c\n"
        expectRefused(head + "peers: []\n", keyPath: "peers", reason: "at least one peer is required", line: 4)
        expectRefused(head + "peers:\n", keyPath: "peers", reason: "missing value for required key 'peers'")
        expectRefused(head + "peers:\n  id: 1\n", keyPath: "peers",
                      reason: "must be a list of peers (each with id, peer, api), got a mapping")
        expectRefused(head + "peers:\n  - 1\n", keyPath: "peers[0]",
                      reason: "must be a mapping of peer settings (id, peer, api, router, routerControl, components), got '1'")
    }

    @Test func atMost256PeersAreListed() {
        let peers = (1...257).map { "  - {id: \($0), peer: \"10.0.\($0 / 200).\($0 % 200):1\", api: \"10.0.\($0 / 200).\($0 % 200):2\"}" }
        expectRefused("cluster: a\ndataDir: b\ntlsDir: c\npeers:\n" + peers.joined(separator: "\n"), keyPath: "peers",
                      reason: "257 peers is more than the 256 a file may list")
    }

    @Test func duplicatePeerIDsAreRefused() {
        expectRefused(validYAML(replacing: "id: 3", with: "id: 2"), keyPath: "peers[2].id",
                      reason: "duplicate peer id 2 (also peers[1])", line: 14)
    }

    @Test func anAddressUsedTwiceIsRefused() {
        expectRefused(validYAML(replacing: "127.0.0.1:7202", with: "127.0.0.1:7101"), keyPath: "peers[1].api",
                      reason: "address 127.0.0.1:7101 is already used by peers[0].peer", line: 12)
        expectRefused(validYAML(replacing: "127.0.0.1:7301", with: "127.0.0.1:7201"), keyPath: "peers[0].router",
                      reason: "address 127.0.0.1:7201 is already used by peers[0].api")
    }

    @Test func twoSpellingsOfOneAddressAreTheSameAddress() {
        let yaml = """
            cluster: a
            dataDir: b
            tlsDir: c
            peers:
              - {id: 1, peer: "[::1]:7101", api: "[::1]:7201"}
              - {id: 2, peer: "[0:0:0:0:0:0:0:1]:7101", api: "[::1]:7202"}
            """
        expectRefused(yaml, keyPath: "peers[1].peer", reason: "address [::1]:7101 is already used by peers[0].peer", line: 6)
    }

    @Test func aRouterOnEveryAddressTakesItsPortOnItsOwnMachineOnly() throws {
        expectRefused(validYAML(replacing: "127.0.0.1:7302", with: "0.0.0.0:7301"), keyPath: "peers[1].router",
                      reason: "address 0.0.0.0:7301 overlaps 127.0.0.1:7301 (peers[0].router) on the same host 127.0.0.1: both take port 7301")
        expectRefused(validYAML(replacing: "127.0.0.1:7301", with: "0.0.0.0:80").replacingOccurrences(of: "127.0.0.1:7302", with: "0.0.0.0:80"),
                      keyPath: "peers[1].router", reason: "address 0.0.0.0:80 is already used by peers[0].router", line: 13)
        // One peer per machine, every router on 0.0.0.0:80: the production shape, accepted.
        let config = try parse("""
            cluster: a
            dataDir: b
            tlsDir: c
            peers:
              - {id: 1, peer: "10.0.0.1:7101", api: "10.0.0.1:7201", router: "0.0.0.0:80"}
              - {id: 2, peer: "10.0.0.2:7101", api: "10.0.0.2:7201", router: "0.0.0.0:80"}
            """)
        #expect(config.peers.map { $0.routerAddress?.description } == ["0.0.0.0:80", "0.0.0.0:80"])
    }

    // MARK: files

    @Test func loadRefusesWhatIsNotAReadableUTF8File() throws {
        let dir = TempDir(); defer { dir.remove() }
        let missing = try #require(throws: ConfigError.self) { try ClusterConfig.load(path: dir.file("nope.yaml")) }
        #expect(missing == ConfigError(file: dir.file("nope.yaml"), keyPath: "", line: nil, reason: "no such file"))
        let directory = try #require(throws: ConfigError.self) { try ClusterConfig.load(path: dir.path) }
        #expect(directory.reason == "is a directory, not a configuration file")
        _ = FileManager.default.createFile(atPath: dir.file("latin1.yaml"), contents: Data([0x63, 0x3A, 0x20, 0xE9, 0x0A]))
        let notUTF8 = try #require(throws: ConfigError.self) { try ClusterConfig.load(path: dir.file("latin1.yaml")) }
        #expect(notUTF8.reason == "is not UTF-8 text")
        _ = FileManager.default.createFile(atPath: dir.file("big.yaml"), contents: Data(count: ClusterConfig.fileBytesMax + 1))
        let big = try #require(throws: ConfigError.self) { try ClusterConfig.load(path: dir.file("big.yaml")) }
        #expect(big.reason == "is 1048577 bytes, more than the 1048576 a configuration file may have")
    }

    @Test func loadNamesTheFileAsGivenInItsErrors() throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("bad.yaml", validYAML(replacing: "id: 3", with: "id: 1"))
        let error = try #require(throws: ConfigError.self) { try ClusterConfig.load(path: dir.file("bad.yaml")) }
        #expect(error.description == "\(dir.file("bad.yaml")):14: peers[2].id: duplicate peer id 1 (also peers[0])")
    }
}
