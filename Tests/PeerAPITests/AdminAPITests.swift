import ClusterModel
import Crypto
import Foundation
import NIOHTTP1
import PeerAPI
import PeerCerts
import PeerNode
import Raft
import Synchronization
import Testing

/// One real node (in memory) behind the real admin server on a loopback port, with real
/// certificates from the cluster CA, talked to by the real client.
final class APIFixture {
    let dir: String
    let node: PeerNode
    let server: AdminServer
    let port: Int
    let serverTask: Task<Void, Never>
    let token = "0123456789abcdef0123456789abcdef-test-token"
    /// How often the server told the leader to wake (an operation started).
    let wakes = WakeCounter()

    init() async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("peer-api-\(UInt32.random(in: 0...UInt32.max))").path
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "api-test")
        _ = try ca.issuePeer(nodeID: 1, ipAddresses: ["127.0.0.1"])
        _ = try ca.issueClient(name: "admin")
        // A certificate from ANOTHER cluster's CA: must not be admitted.
        let other = try CertificateAuthority.create(directory: dir + "/other", clusterID: "other")
        _ = try other.issueClient(name: "admin")

        var raft = RaftConfig(id: 1)
        raft.electionTimeoutTicks = 10
        var options = PeerNodeOptions(raft: raft)
        options.tickMillis = 2
        node = try PeerNode(options: options, store: MemoryLogStore(conf: ConfState(voters: [1])), send: { _ in })
        node.start()
        var config = AdminServerConfiguration(
            selfID: 1, members: [1: MemberAddresses(peer: "127.0.0.1:1", apiHost: "127.0.0.1", apiPort: 0)],
            tls: APITLSFiles(caCertificatePath: dir + "/ca.pem", certificatePath: dir + "/peer-1.pem", privateKeyPath: dir + "/peer-1.key"),
            version: "test", protocolVersion: 1, pid: getpid(), startedAtMs: 0
        )
        config.adminTokenSHA256 = Array(SHA256.hash(data: Array(token.utf8)))
        let wakes = self.wakes
        let server = try AdminServer(configuration: config, node: node, wakeLeader: { wakes.count.add(1, ordering: .relaxed) })
        self.server = server
        let (ports, cont) = AsyncStream.makeStream(of: Int.self)
        serverTask = Task { try? await server.run(onListening: { cont.yield($0) }) }
        var it = ports.makeAsyncIterator()
        port = await it.next() ?? 0
        // A single voter elects itself after an election timeout; wait (bounded) for it.
        for _ in 0..<5_000 where node.leaderHint.role != .leader { try await Task.sleep(for: .milliseconds(1)) }
    }

    func client(_ name: String = "admin", ca: String? = nil, dir certDir: String? = nil) throws -> AdminClient {
        let d = certDir ?? dir
        return try AdminClient(tls: APITLSFiles(caCertificatePath: ca ?? dir + "/ca.pem", certificatePath: d + "/client-\(name).pem", privateKeyPath: d + "/client-\(name).key"))
    }

    func call(_ client: AdminClient, _ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = []) async throws -> (Int, String) {
        let a = try await client.request(host: "127.0.0.1", port: port, method: method, path: path, headers: headers, body: body.map { Array($0.utf8) })
        return (a.status, String(decoding: a.body, as: UTF8.self))
    }

    func close() async {
        await server.shutdown()
        await serverTask.value
        await node.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

final class WakeCounter: Sendable {
    let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
}

/// A TLS client without a client certificate (trusting the cluster CA), for the token path:
/// curl, an independent client. Spawned and reaped directly; `--max-time` bounds it.
func anonymousRequest(port: Int, caPath: String, path: String, headers: [(String, String)]) async throws -> Int {
    let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("curl-\(UInt32.random(in: 0...UInt32.max))").path
    defer { try? FileManager.default.removeItem(atPath: outPath) }
    var args = ["curl", "-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", caPath, "--tlsv1.3", "https://127.0.0.1:\(port)\(path)"]
    for (n, v) in headers { args += ["-H", "\(n): \(v)"] }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, "/usr/bin/curl", &actions, nil, argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    return Int(text) ?? -1
}

@Suite("Admin API over real TLS", .serialized)
struct AdminAPITests {
    @Test("a client certificate from the cluster CA is admitted; the status names this member")
    func clientCertificateAdmitted() async throws {
        let f = try await APIFixture()
        let (status, body) = try await f.call(try f.client(), .GET, "/v1/status")
        #expect(status == 200)
        let s = try JSONDecoder().decode(MemberStatus.self, from: Data(body.utf8))
        #expect(s.id == 1 && s.state == "leader" && s.role == "voter" && s.source == "local")
        await f.close()
    }

    @Test("a certificate from another cluster's CA fails the handshake")
    func otherCARefused() async throws {
        let f = try await APIFixture()
        let stranger = try f.client("admin", ca: f.dir + "/ca.pem", dir: f.dir + "/other")
        await #expect(throws: AdminClientError.self) { _ = try await f.call(stranger, .GET, "/v1/status") }
        await f.close()
    }

    @Test("without a certificate: the admin token is admitted, a wrong or missing token is 401")
    func tokenPath() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else {
            Issue.record("curl is needed for this test (.ci/install-deps installs it)")
            return
        }
        let f = try await APIFixture()
        #expect(try await anonymousRequest(port: f.port, caPath: f.dir + "/ca.pem", path: "/v1/status", headers: []) == 401)
        #expect(try await anonymousRequest(port: f.port, caPath: f.dir + "/ca.pem", path: "/v1/status", headers: [("Authorization", "Bearer wrong-token")]) == 401)
        #expect(try await anonymousRequest(port: f.port, caPath: f.dir + "/ca.pem", path: "/v1/status", headers: [("Authorization", "Bearer \(f.token)")]) == 200)
        await f.close()
    }

    @Test("tenant writes: 201, a retried request id is a duplicate, an existing id 409, unknown delete 404, bad JSON 400, a huge body 413")
    func tenantWrites() async throws {
        let f = try await APIFixture()
        let c = try f.client()
        let create = #"{"id":"acme","clientId":"t-1","sequence":1}"#
        #expect(try await f.call(c, .POST, "/v1/tenants", body: create).0 == 201)
        // A provision operation started: the leader's driver is woken, not left to its idle poll.
        #expect(f.wakes.value == 1)
        let again = try await f.call(c, .POST, "/v1/tenants", body: create)
        #expect(again.0 == 200 && again.1.contains("\"duplicate\""))
        #expect(f.wakes.value == 1, "a duplicate starts nothing")
        let exists = try await f.call(c, .POST, "/v1/tenants", body: #"{"id":"acme"}"#)
        #expect(exists.0 == 409 && exists.1.contains("\"conflict\""))
        #expect(try await f.call(c, .DELETE, "/v1/tenants/nobody").0 == 404)
        #expect(try await f.call(c, .POST, "/v1/tenants", body: "{not json").0 == 400)
        #expect(try await f.call(c, .POST, "/v1/tenants", body: #"{"id":"Bad Id!"}"#).0 == 400)
        let huge = "{\"id\":\"x\",\"plan\":\"" + String(repeating: "a", count: 70_000) + "\"}"
        #expect(try await f.call(c, .POST, "/v1/tenants", body: huge).0 == 413)
        let list = try await f.call(c, .GET, "/v1/tenants?consistent=true")
        let tenants = try JSONDecoder().decode([TenantInfo].self, from: Data(list.1.utf8))
        #expect(tenants.map(\.id) == ["acme"])
        // A delete deprovisions: the tenant enters deprovisioning with an operation, which the
        // leader's operation driver (not running in this fixture) finishes by deleting it.
        #expect(f.wakes.value == 1, "refusals start nothing")
        #expect(try await f.call(c, .DELETE, "/v1/tenants/acme?clientId=t-2&sequence=1").0 == 200)
        #expect(f.wakes.value == 2)
        let after = try JSONDecoder().decode([TenantInfo].self, from: Data(try await f.call(c, .GET, "/v1/tenants").1.utf8))
        #expect(after.map(\.state) == ["deprovisioning"])
        #expect(try await f.call(c, .DELETE, "/v1/tenants/acme?clientId=t-3&sequence=1").0 == 409, "a second delete meets the first's operation")
        await f.close()
    }

    @Test("a path's tenant id is percent-decoded once; a malformed encoding is 400")
    func pathSegmentsArePercentDecoded() async throws {
        let f = try await APIFixture()
        let c = try f.client()
        #expect(try await f.call(c, .POST, "/v1/tenants", body: #"{"id":"1234"}"#).0 == 201)
        let deleted = try await f.call(c, .DELETE, "/v1/tenants/%31%32%33%34")
        #expect(deleted.0 == 200, "\(deleted.1)")
        let after = try JSONDecoder().decode([TenantInfo].self, from: Data(try await f.call(c, .GET, "/v1/tenants").1.utf8))
        #expect(after.map(\.state) == ["deprovisioning"], "the decoded id named the tenant: \(after)")
        let malformed = try await f.call(c, .DELETE, "/v1/tenants/%zz")
        // Foundation leaves an invalid escape as text, which no tenant id may hold: still a 400.
        #expect(malformed.0 == 400 && malformed.1.contains("%zz"), "\(malformed)")
        // Decoded once only: %2531 is the text "%31" (not a tenant id), never tenant "1".
        #expect(try await f.call(c, .POST, "/v1/tenants", body: #"{"id":"1"}"#).0 == 201)
        #expect(try await f.call(c, .DELETE, "/v1/tenants/%2531").0 != 200)
        let one = try JSONDecoder().decode([TenantInfo].self, from: Data(try await f.call(c, .GET, "/v1/tenants").1.utf8)).first { $0.id == "1" }
        #expect(one != nil && one?.state != "deprovisioning", "tenant 1 untouched: \(String(describing: one))")
        await f.close()
    }
}

/// The admin client keeps its mutual-TLS connections alive: a follower forwarding writes, the
/// leader polling data planes and a CLI making several calls pay one handshake, not one each.
@Suite struct AdminClientConnectionTests {
    /// TCP sockets of this machine with one end on 127.0.0.1:`port`, by state (/proc/net/tcp:
    /// 01 established, 06 TIME_WAIT), seen from the client's side (remote port `port`).
    static func clientSockets(toPort port: Int) throws -> [String: Int] {
        // read(2) to the end: Foundation reads a /proc file as far as its first pages only.
        let fd = open("/proc/net/tcp", O_RDONLY)
        guard fd >= 0 else { throw APIError("io", "cannot open /proc/net/tcp") }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        var states: [String: Int] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 3, let remotePort = fields[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) }) else { continue }
            if remotePort == port { states[String(fields[3]), default: 0] += 1 }
        }
        return states
    }

    /// Without keep-alive, ten requests would open ten connections and leave nine or ten in
    /// TIME_WAIT. With it, none is closed and the requests share the connections: usually one.
    /// Not exactly one: AsyncHTTPClient hands a connection back to its pool on its event loop
    /// after the answer's last byte, and a request issued before that lands opens a second
    /// one (a CI run under load saw 2). Fewer connections than requests, none closed, is the
    /// property; the count of each is in the message.
    @Test func sequentialRequestsShareKeptAliveConnections() async throws {
        let f = try await APIFixture()
        let client = try f.client()
        let requests = 10
        for _ in 0..<requests {
            let (status, _) = try await f.call(client, .GET, "/v1/status")
            #expect(status == 200)
        }
        let sockets = try Self.clientSockets(toPort: f.port)
        let established = sockets["01", default: 0]
        #expect(established >= 1 && established < requests / 2, "\(requests) requests should share a few kept-alive connections: \(sockets)")
        #expect(sockets["06", default: 0] == 0, "no connection closed after a request: \(sockets)")
        await f.close()
    }
}
