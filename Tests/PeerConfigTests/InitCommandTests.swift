import Foundation
import PeerCerts
import PeerConfig
import Testing

/// `peer init --config FILE`, run as the real built binary in a temporary directory.
@Suite struct InitCommandTests {
    @Test func initCreatesTheCACertificatesAndDataDirectoriesWithPrivateModes() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("c.yaml", Self.config)
        let run = try await runPeer(["init", "--config", "c.yaml"], in: dir.path)
        #expect(run.status == 0, "\(run)")
        let config = try ClusterConfig.load(path: dir.file("c.yaml"))
        var keys = [config.caPrivateKeyPath, config.adminPrivateKeyPath]
        var certificates = [config.caCertificatePath, config.adminCertificatePath]
        for peer in config.peers {
            keys.append(config.peerPrivateKeyPath(for: peer.id))
            certificates.append(config.peerCertificatePath(for: peer.id))
            #expect(try mode(config.dataDirectory(for: peer.id)) == 0o700)
            #expect(try FileManager.default.contentsOfDirectory(atPath: config.dataDirectory(for: peer.id)).isEmpty)
        }
        for key in keys { #expect(try mode(key) == 0o600, "\(key)") }
        for certificate in certificates { #expect(try mode(certificate) == 0o644, "\(certificate)") }
        for directory in [config.tlsDir, config.dataDir, dir.file(".peer"), dir.file(".peer/t")] {
            #expect(try mode(directory) == 0o700, "\(directory)")
        }
        #expect(!FileManager.default.fileExists(atPath: config.runDir), "init leaves the run directory to `peer up`")
        #expect(run.stdout.contains("cluster t-1: created 7, already there 0"), "\(run.stdout)")
        #expect(run.stdout.split(separator: "\n").filter { $0.hasSuffix(" created") }.count == 7, "\(run.stdout)")
        // The broker's password (256 bits, hex) and its salted hash, both for the owner only.
        #expect(try mode(config.broker.passwordFile) == 0o600)
        #expect(try mode(config.broker.passwordHashFile) == 0o600)
        let password = try String(contentsOfFile: config.broker.passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(password.count == 64 && password.allSatisfy(\.isHexDigit))
        let hash = try String(contentsOfFile: config.broker.passwordHashFile, encoding: .utf8)
        #expect(hash.hasPrefix("sha256:") && !hash.contains(password), "the peers' file holds only a salted hash")

        // What was issued is what the transport will demand: identity and addresses, this CA.
        let ca = try #require(try ExistingCA.find(directory: config.tlsDir))
        #expect(ca.clusterID == "t-1")
        for peer in config.peers {
            try checkPeerPair(
                certificatePath: config.peerCertificatePath(for: peer.id), privateKeyPath: config.peerPrivateKeyPath(for: peer.id),
                caCertificate: ca.certificate, clusterID: "t-1", nodeID: peer.id,
                ipAddresses: peer.certificateIPAddresses, dnsNames: peer.certificateDNSNames)
        }
        try checkClientPair(certificatePath: config.adminCertificatePath, privateKeyPath: config.adminPrivateKeyPath,
                            caCertificate: ca.certificate, clusterID: "t-1", name: "admin")
        let listed = try listCertificates(directory: config.tlsDir)
        #expect(listed.first { $0.file == "peer-2.pem" }?.subjectAlternativeNames
                == ["URI:peer://t-1/node/2", "DNS:localhost", "IP:0:0:0:0:0:0:0:1"])
    }

    @Test func aSecondRunCreatesNothingAndChangesNoByte() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("c.yaml", Self.config)
        #expect(try await runPeer(["init", "--config", "c.yaml"], in: dir.path).status == 0)
        let before = try snapshot(dir.path)
        let again = try await runPeer(["init", "--config", dir.file("c.yaml")], in: "/")
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout.contains("cluster t-1: created 0, already there 7"), "\(again.stdout)")
        #expect(!again.stdout.contains(" created\n"), "\(again.stdout)")
        #expect(try snapshot(dir.path) == before)
    }

    @Test func aCAOfAnotherClusterIsRefusedAndNothingIsWritten() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("c.yaml", Self.config)
        _ = try CertificateAuthority.create(directory: dir.file(".peer/t/tls"), clusterID: "other")
        let before = try snapshot(dir.path)
        let run = try await runPeer(["init", "--config", "c.yaml"], in: dir.path)
        #expect(run.status != 0)
        #expect(run.stderr.contains("\(dir.file(".peer/t/tls/ca.pem")) does not fit: it is the CA of cluster 'other', but \(dir.file("c.yaml")) is for cluster 't-1'"), "\(run.stderr)")
        #expect(try snapshot(dir.path) == before)
    }

    @Test func certificatesFromAnotherCAAreRefusedAndNothingIsWritten() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("c.yaml", Self.config)
        #expect(try await runPeer(["init", "--config", "c.yaml"], in: dir.path).status == 0)
        // Same cluster id, new CA: the old peer certificates are not its own.
        let tls = dir.file(".peer/t/tls")
        for file in ["ca.pem", "ca.key"] { try FileManager.default.removeItem(atPath: tls + "/" + file) }
        _ = try CertificateAuthority.create(directory: tls, clusterID: "t-1")
        let before = try snapshot(dir.path)
        let run = try await runPeer(["init", "--config", "c.yaml"], in: dir.path)
        #expect(run.status != 0)
        #expect(run.stderr.contains("\(tls)/peer-2.pem does not fit: it is not signed by this cluster's CA: its issuer has the CA's name but another key"), "\(run.stderr)")
        #expect(try snapshot(dir.path) == before)
    }

    @Test func aCertificateWithoutTheConfiguredAddressIsRefused() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("c.yaml", Self.config)
        #expect(try await runPeer(["init", "--config", "c.yaml"], in: dir.path).status == 0)
        try dir.write("c.yaml", Self.config.replacingOccurrences(of: "127.0.0.1:7103", with: "127.0.0.3:7103"))
        let before = try snapshot(dir.path)
        let run = try await runPeer(["init", "--config", "c.yaml"], in: dir.path)
        #expect(run.status != 0)
        #expect(run.stderr.contains("peer-3.pem does not fit: it does not name IP:127.0.0.3"), "\(run.stderr)")
        #expect(try snapshot(dir.path) == before)
    }

    @Test func halfAPairIsRefusedRatherThanReissued() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("c.yaml", Self.config)
        #expect(try await runPeer(["init", "--config", "c.yaml"], in: dir.path).status == 0)
        let tls = dir.file(".peer/t/tls")
        try FileManager.default.removeItem(atPath: tls + "/peer-2.key")
        let before = try snapshot(dir.path)
        let run = try await runPeer(["init", "--config", "c.yaml"], in: dir.path)
        #expect(run.status != 0)
        #expect(run.stderr.contains("\(tls)/peer-2.pem exists but \(tls)/peer-2.key does not"), "\(run.stderr)")
        #expect(try snapshot(dir.path) == before)
    }

    @Test func withTheCAKeyElsewhereInitAcceptsWhatIsIssuedAndRefusesToIssue() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("c.yaml", Self.config)
        #expect(try await runPeer(["init", "--config", "c.yaml"], in: dir.path).status == 0)
        let tls = dir.file(".peer/t/tls")
        try FileManager.default.moveItem(atPath: tls + "/ca.key", toPath: dir.file("ca.key.offline"))
        let accepted = try await runPeer(["init", "--config", "c.yaml"], in: dir.path)
        #expect(accepted.status == 0, "\(accepted)")
        #expect(accepted.stdout.contains("created 0, already there 7"), "\(accepted.stdout)")
        for file in ["peer-3.pem", "peer-3.key"] { try FileManager.default.removeItem(atPath: tls + "/" + file) }
        let before = try snapshot(dir.path)
        let refused = try await runPeer(["init", "--config", "c.yaml"], in: dir.path)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("\(tls)/peer-3.pem is to be issued but \(tls)/ca.key is not here"), "\(refused.stderr)")
        #expect(try snapshot(dir.path) == before)
    }

    @Test func aBadConfigIsRefusedWithItsKeyPathAndNothingIsCreated() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("c.yaml", Self.config.replacingOccurrences(of: "tickMs", with: "tikMs"))
        let run = try await runPeer(["init", "--config", "c.yaml"], in: dir.path)
        #expect(run.status != 0)
        #expect(run.stderr.contains("c.yaml:6: timing.tikMs: unknown key 'tikMs' (did you mean 'tickMs'?)"), "\(run.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["c.yaml"])
    }

    // MARK: support

    /// Two peers on loopback (one also reachable as localhost and ::1) and the admin client:
    /// 1 CA + 2 peers + 1 client + 2 data directories + the broker credentials = 7 items.
    static let config = """
        cluster: t-1
        dataDir: .peer/t/data
        tlsDir: .peer/t/tls
        runDir: .peer/t/run
        timing:
          tickMs: 100
        peers:
          - id: 2
            peer: localhost:7102
            api: "[::1]:7202"
            router: 127.0.0.1:7302
          - id: 3
            peer: 127.0.0.1:7103
            api: 127.0.0.1:7203
        """

    struct Run: CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
    }

    /// Runs the built `peer` with `arguments` in `directory` and waits for it to exit (bounded).
    /// Spawned and reaped directly, polling with `Task.sleep`: no thread of the test process is
    /// blocked meanwhile (other suites serve requests in this process).
    func runPeer(_ arguments: [String], in directory: String) async throws -> Run {
        let output = TempDir(); defer { output.remove() }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output.file("out"), O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, output.file("err"), O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let binary = try peerBinary()
        // `sh` changes into `directory` and execs the binary (arguments passed as "$@", unquoted by nobody).
        let shell = ["/bin/sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "sh", directory, binary]
        let argv: [UnsafeMutablePointer<CChar>?] = (shell + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environ)
        guard rc == 0 else { throw InitTestError.noBinary("posix_spawn /bin/sh: \(rc)") }
        let deadline = ContinuousClock.now + .seconds(60)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                throw InitTestError.noBinary("peer \(arguments) did not exit within 60 s")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Run(status: code,
                   stdout: try String(contentsOfFile: output.file("out"), encoding: .utf8),
                   stderr: try String(contentsOfFile: output.file("err"), encoding: .utf8))
    }

    /// The `peer` product next to the test bundle (.build/<triple>/debug/), or `PEER_BIN`.
    func peerBinary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["PEER_BIN"] { return path }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("peer").path
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
               FileManager.default.isExecutableFile(atPath: path) {
                return path
            }
        }
        throw InitTestError.noBinary("peer not found next to \(dir.path); run `swift build --product peer`")
    }

    /// Every file and directory under `root`: its mode and, for files, its bytes.
    func snapshot(_ root: String) throws -> [String: String] {
        var result: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return result }
        for case let relative as String in walker {
            let path = root + "/" + relative
            let contents = FileManager.default.contents(atPath: path).map { $0.base64EncodedString() } ?? "(directory)"
            result[relative] = "\(String(try mode(path), radix: 8)) \(contents)"
        }
        return result
    }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }
}

enum InitTestError: Error { case noBinary(String) }

/// `peer config validate` and `peer config keys`, the real binary: the checks every peer makes,
/// without starting anything, and the key list `.ci/check-docs` holds the docs to.
@Suite struct ConfigCommandTests {
    @Test func validateAcceptsAGoodFileAndCreatesNothing() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("c.yaml", InitCommandTests.config)
        let run = try await InitCommandTests().runPeer(["config", "validate", "--config", "c.yaml"], in: dir.path)
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("c.yaml: valid: cluster t-1, 2 peers"), "\(run.stdout)")
        #expect(!FileManager.default.fileExists(atPath: dir.file(".peer")), "validate writes nothing")
    }

    @Test func validateRefusesATypoWithTheLineKeyPathAndASuggestion() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try dir.write("c.yaml", InitCommandTests.config.replacingOccurrences(of: "  tickMs: 100", with: "  tikMs: 100"))
        let run = try await InitCommandTests().runPeer(["config", "validate", "--config", "c.yaml"], in: dir.path)
        #expect(run.status != 0)
        #expect(run.stderr.contains("c.yaml:6: timing.tikMs: unknown key 'tikMs' (did you mean 'tickMs'?)"), "\(run.stderr)")
    }

    @Test func keysListsEveryMappingsKeysAsTheLoaderAcceptsThem() async throws {
        let dir = TempDir(); defer { dir.remove() }
        let run = try await InitCommandTests().runPeer(["config", "keys"], in: dir.path)
        #expect(run.status == 0, "\(run)")
        let keys = run.stdout.split(separator: "\n").map(String.init)
        #expect(keys == ClusterConfig.keyPaths)
        for expected in ["cluster", "timing.tickMs", "peers[i].api", "catalog.services[i].plans[j].quotas.connectionsMax", "components[i].healthPath", "router.routeTableMiB"] {
            #expect(keys.contains(expected), "\(expected) missing from \(keys)")
        }
        // Each listed key is accepted where it is listed: a file using an unlisted one is refused.
        try dir.write("c.yaml", InitCommandTests.config + "\nrouter:\n  routeTableMiB: 64\n  notAKey: 1\n")
        let refused = try await InitCommandTests().runPeer(["config", "validate", "--config", "c.yaml"], in: dir.path)
        #expect(refused.stderr.contains("router.notAKey: unknown key 'notAKey'"), "\(refused.stderr)")
    }
}
