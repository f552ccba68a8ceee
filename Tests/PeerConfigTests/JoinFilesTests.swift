import Foundation
import PeerCerts
import PeerConfig
import Testing

/// What a provisioned instance starts from (docs/adr/0013-instances-join-and-leave.md): the
/// certificate the leader issues it names that instance and nothing else, and `peer run --join`
/// refuses incomplete or wrong join files with a message naming the file, before it opens
/// anything.
@Suite struct JoinFilesTests {
    @Test func theLeaderIssuedCertificateNamesOnlyThatInstance() throws {
        let dir = TempDir(); defer { dir.remove() }
        let authority = try CertificateAuthority.create(directory: dir.file("tls"), clusterID: "t-1")
        let issued = try authority.issuePeerPEM(nodeID: 4, dnsNames: ["localhost"])
        try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: true)
        try issued.certificatePEM.write(toFile: dir.file("out/peer-4.pem"), atomically: true, encoding: .utf8)
        let listed = try #require(try listCertificates(directory: dir.file("out")).first)
        #expect(listed.subjectAlternativeNames == ["URI:peer://t-1/node/4", "DNS:localhost"])
        #expect(!listed.isCertificateAuthority)
        // Its key is the one it was issued with, and nothing was written next to the CA.
        #expect(issued.privateKeyPEM.contains("PRIVATE KEY"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("tls")).sorted() == ["ca.key", "ca.pem"])
    }

    @Test func joinFilesThatAreMissingOrWrongAreRefusedNamingTheFile() async throws {
        let dir = TempDir(); defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.file("join"), withIntermediateDirectories: true)
        let base = ["run", "--join", "join", "--data", "data", "--peer", "127.0.0.1:7104", "--api", "127.0.0.1:7204"]

        var run = try await InitCommandTests().runPeer(base, in: dir.path)
        #expect(run.status != 0 && run.stderr.contains("join/join.json: not a join file"), "\(run)")

        try dir.write("join/join.json", "{\"version\": 1, \"cluster\": \"t-1\"")
        run = try await InitCommandTests().runPeer(base, in: dir.path)
        #expect(run.status != 0 && run.stderr.contains("join/join.json: not a join file"), "\(run)")

        try dir.write("join/join.json", "{\"version\": 2, \"cluster\": \"t-1\", \"id\": 4, \"members\": []}")
        run = try await InitCommandTests().runPeer(base, in: dir.path)
        #expect(run.status != 0 && run.stderr.contains("version 2; this build reads version 1"), "\(run)")

        try dir.write("join/cluster.yaml", InitCommandTests.config)
        try dir.write("join/join.json", "{\"version\": 1, \"cluster\": \"t-1\", \"id\": 3, \"members\": [{\"id\": 2, \"peer\": \"127.0.0.1:7102\", \"api\": \"127.0.0.1:7202\"}]}")
        run = try await InitCommandTests().runPeer(base, in: dir.path)
        #expect(run.status != 0 && run.stderr.contains("id 3 is already a member"), "\(run)")

        try dir.write("join/join.json", "{\"version\": 1, \"cluster\": \"other\", \"id\": 4, \"members\": []}")
        run = try await InitCommandTests().runPeer(base, in: dir.path)
        #expect(run.status != 0 && run.stderr.contains("cluster other, but cluster.yaml is cluster t-1"), "\(run)")

        try dir.write("join/join.json", "{\"version\": 1, \"cluster\": \"t-1\", \"id\": 4, \"members\": [{\"id\": 2, \"peer\": \"127.0.0.1:7102\", \"api\": \"127.0.0.1:7202\"}]}")
        run = try await InitCommandTests().runPeer(base, in: dir.path)
        #expect(run.status != 0 && run.stderr.contains("join/ca.pem does not exist: the join directory is incomplete"), "\(run)")

        run = try await InitCommandTests().runPeer(["run", "--join", "join", "--data", "data", "--api", "127.0.0.1:7204"], in: dir.path)
        #expect(run.status != 0 && run.stderr.contains("--join needs --peer HOST:PORT and --api HOST:PORT"), "\(run)")
        run = try await InitCommandTests().runPeer(["run", "--config", "join/cluster.yaml", "--id", "2", "--peer", "127.0.0.1:1"], in: dir.path)
        #expect(run.status != 0 && run.stderr.contains("--peer is for --join"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("data")), "nothing was created")
    }
}
