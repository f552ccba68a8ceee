import Foundation
import PeerCerts
import PeerConfig
import Testing

/// What a valid file becomes: defaults, resolved paths, the file-name helpers.
@Suite struct ParseTests {
    @Test func aMinimalFileGetsTheDocumentedDefaults() throws {
        let config = try parse("""
            cluster: c
            dataDir: /var/lib/peer
            tlsDir: /etc/peer/tls
            peers:
              - {id: 7, peer: "10.0.0.7:7100", api: "10.0.0.7:7200"}
            """)
        #expect(config.cluster == "c")
        #expect(config.timing == ClusterConfig.Timing(
            tickMs: 100, electionTicks: 10, heartbeatTicks: 1, snapshotEveryEntries: 100_000))
        #expect(config.runDir == "/var/lib/peer/run")
        #expect(config.admin.tokenFile == nil)
        #expect(config.peers.count == 1)
        #expect(config.peers[0].routerAddress == nil)
        #expect(config.file == nil)
    }

    @Test func timingsGivenReplaceOnlyTheirDefaults() throws {
        let config = try parse(validYAML + "\ntiming:\n  tickMs: 50\n  heartbeatTicks: 2\n")
        #expect(config.timing == ClusterConfig.Timing(tickMs: 50, electionTicks: 10, heartbeatTicks: 2))
    }

    @Test func relativePathsResolveAgainstTheBaseDirectoryAndAreNormalized() throws {
        let config = try parse("""
            cluster: c
            dataDir: ../var/./data/
            tlsDir: /abs//tls/.
            runDir: ./run
            admin:
              tokenFile: secrets/admin.token
            peers:
              - {id: 1, peer: "127.0.0.1:1", api: "127.0.0.1:2"}
            """)
        #expect(config.dataDir == "/etc/var/data")
        #expect(config.tlsDir == "/abs/tls")
        #expect(config.runDir == "/etc/peer/run")
        #expect(config.admin.tokenFile == "/etc/peer/secrets/admin.token")
    }

    @Test func loadResolvesPathsAgainstTheFilesOwnDirectory() throws {
        let dir = TempDir(); defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.file("conf"), withIntermediateDirectories: true)
        try dir.write("conf/c.yaml", validYAML)
        let config = try ClusterConfig.load(path: dir.file("conf/c.yaml"))
        #expect(config.dataDir == dir.file("conf/data"))
        #expect(config.tlsDir == dir.file("conf/tls"))
        #expect(config.file == dir.file("conf/c.yaml"))
    }

    @Test func fileHelpersNameEveryFileOfTheCluster() throws {
        let config = try parse(validYAML)
        #expect(config.peer(id: 2)?.apiAddress.description == "127.0.0.1:7202")
        #expect(config.peer(id: 4) == nil)
        #expect(config.dataDirectory(for: 2) == "/etc/peer/data/2")
        #expect(config.caCertificatePath == "/etc/peer/tls/ca.pem")
        #expect(config.caPrivateKeyPath == "/etc/peer/tls/ca.key")
        #expect(config.peerCertificatePath(for: 3) == "/etc/peer/tls/peer-3.pem")
        #expect(config.peerPrivateKeyPath(for: 3) == "/etc/peer/tls/peer-3.key")
        #expect(config.adminCertificatePath == "/etc/peer/tls/client-admin.pem")
        #expect(config.adminPrivateKeyPath == "/etc/peer/tls/client-admin.key")
        #expect(config.pidFilePath(for: 1) == "/etc/peer/run/peer-1.pid")
        #expect(config.logFilePath(for: 1) == "/etc/peer/run/peer-1.log")
    }

    /// PeerConfig spells the certificate file names itself (it may not import PeerCerts); this
    /// keeps the two spellings one.
    @Test func fileNamesMatchPeerCerts() throws {
        let config = try parse(validYAML)
        let tls = config.tlsDir + "/"
        #expect(config.caCertificatePath == tls + CertificateFiles.caCertificate)
        #expect(config.caPrivateKeyPath == tls + CertificateFiles.caPrivateKey)
        #expect(config.peerCertificatePath(for: 12) == tls + CertificateFiles.peerCertificate(nodeID: 12))
        #expect(config.peerPrivateKeyPath(for: 12) == tls + CertificateFiles.peerPrivateKey(nodeID: 12))
        #expect(config.adminCertificatePath == tls + CertificateFiles.clientCertificate(name: ClusterConfig.adminClientName))
        #expect(config.adminPrivateKeyPath == tls + CertificateFiles.clientPrivateKey(name: ClusterConfig.adminClientName))
        #expect(PeerIdentity.isValidName(config.cluster))
    }

    @Test func theCommittedLocal3ConfigParses() throws {
        let path = repositoryRoot + "/cluster-config/local-3.yaml"
        let config = try ClusterConfig.load(path: path)
        let generated = repositoryRoot + "/cluster-config/.peer/local-3"
        #expect(config.cluster == "local-3")
        #expect(config.dataDir == generated + "/data")
        #expect(config.tlsDir == generated + "/tls")
        #expect(config.runDir == generated + "/run")
        #expect(config.timing == .defaults)
        #expect(config.peers.map(\.id) == [1, 2, 3])
        #expect(config.peers.map(\.peerAddress.description) == ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"])
        #expect(config.peers.map(\.apiAddress.description) == ["127.0.0.1:7201", "127.0.0.1:7202", "127.0.0.1:7203"])
        #expect(config.peers.map { $0.routerAddress?.description } == ["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"])
        // local-3 spells out the default catalog and adds a plan without quotas for load tests.
        let plans = config.catalog.services.first?.plans ?? []
        #expect(Array(plans.prefix(2)) == ClusterConfig.Catalog.dreamFace.services[0].plans)
        #expect(plans.last?.id == "dreamface-unlimited" && plans.last?.requestsPerSecond == 0 && plans.last?.connectionsMax == 0)
        #expect(config.peers.map { $0.componentAddress?.description } == ["127.0.0.1:7400", "127.0.0.1:7410", "127.0.0.1:7420"])
        #expect(config.router.domain == "local-3.localhost")
        #expect(config.peers[0].certificateDNSNames == ["localhost"], "a loopback API's certificate names localhost for NGINX's token checks")
        #expect(config.broker.url(ofTenant: "acme") == "http://acme.local-3.localhost:7301")
        #expect(config.broker.passwordHashFile == generated + "/tls/broker-password.sha256")
    }

    @Test func certificateHostsAreThePeerAndAPIHostsOnce() throws {
        let config = try parse("""
            cluster: c
            dataDir: d
            tlsDir: t
            peers:
              - {id: 1, peer: "10.0.0.1:7101", api: "10.0.0.1:7201", router: "0.0.0.0:80"}
              - {id: 2, peer: "p2.example:7101", api: "[fd00::2]:7201"}
            """)
        #expect(config.peers[0].certificateIPAddresses == ["10.0.0.1"])
        #expect(config.peers[0].certificateDNSNames == [])
        #expect(config.peers[1].certificateIPAddresses == ["fd00::2"])
        #expect(config.peers[1].certificateDNSNames == ["p2.example"])
    }

    @Test func nullOptionalValuesAreAbsent() throws {
        let config = try parse(validYAML(replacing: "router: 127.0.0.1:7301", with: "router: ~") + "\ntiming:\nadmin:\n  tokenFile:\n")
        #expect(config.peers[0].routerAddress == nil)
        #expect(config.timing == .defaults)
        #expect(config.admin.tokenFile == nil)
    }

    @Test func aClusterIDMayBeAllDigitsAndPeerIDsGoUpTo2To63Minus1() throws {
        let config = try parse(validYAML(replacing: "cluster: test-1", with: "cluster: 123")
            .replacingOccurrences(of: "id: 3", with: "id: 9223372036854775807"))
        #expect(config.cluster == "123")
        #expect(config.peers[2].id == UInt64(Int64.max))
    }
}
