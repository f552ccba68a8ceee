import ClusterModel
import Foundation
import Leader
import Logging
import Synchronization
import PeerAPI
import PeerCerts
import PeerNode
import Raft
import Testing

/// One real node (in memory, one voter) behind the real HTTPS server with the broker on, its
/// operation driver running (or not, to hold operations in progress), and two active instances
/// registered. Clients are curl processes: an independent HTTP/TLS implementation.
final class BrokerFixture: Sendable {
    let dir: String
    let node: PeerNode
    let server: AdminServer
    let port: Int
    let serverTask: Task<Void, Never>
    let driverTask = Mutex<Task<Void, Never>?>(nil)
    let brokerConfig: BrokerConfiguration
    /// What the broker's handlers wake: the operation driver's (`startDriver`).
    let waker: Waker
    let username = "platform"
    let password = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

    static let service = "dreamface"
    static let development = "dreamface-development"
    static let deployment = "dreamface-deployment"

    static func catalog(maintenance: String? = nil) -> BrokerCatalog {
        BrokerCatalog(services: [
            .init(id: service, name: "dreamface", description: "DreamFace", tags: ["dreamface"], plans: [
                .init(id: development, name: "development", description: "studio", components: ["dfx-dev", "dfc"], weightUnits: 4,
                      requestsPerSecond: 50, connectionsMax: 100, free: true, maintenanceVersion: maintenance),
                .init(id: deployment, name: "deployment", description: "apps", components: ["dfx-dep"], weightUnits: 2,
                      requestsPerSecond: 200, connectionsMax: 400, free: true, maintenanceVersion: nil),
            ]),
            .init(id: "other-service", name: "other", description: "another service", tags: [], plans: [
                .init(id: "other-plan", name: "basic", description: "basic", components: ["x"], weightUnits: 1,
                      requestsPerSecond: 0, connectionsMax: 0, free: true, maintenanceVersion: nil),
            ]),
        ])
    }

    init(driver: Bool = true, instanceCapacity: UInt64 = 100, provisionTimeoutMs: Int64 = 60_000, maintenance: String? = nil) async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("peer-broker-\(UInt32.random(in: 0...UInt32.max))").path
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "broker-test")
        _ = try ca.issuePeer(nodeID: 1, ipAddresses: ["127.0.0.1"])
        _ = try ca.issueClient(name: "admin")

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
        let broker = BrokerConfiguration(
            username: username, password: PasswordVerifier.make(password: password), catalog: Self.catalog(maintenance: maintenance),
            tenantURLTemplate: "https://{tenant}.apps.test", instanceCapacityUnits: instanceCapacity,
            provisionTimeoutMs: provisionTimeoutMs, retryAfterSeconds: 1)
        config.broker = broker
        brokerConfig = broker
        let waker = Waker()
        self.waker = waker
        let server = try AdminServer(configuration: config, node: node, wakeLeader: { waker.wake() })
        self.server = server
        let (ports, cont) = AsyncStream.makeStream(of: Int.self)
        serverTask = Task { try? await server.run(onListening: { cont.yield($0) }) }
        var it = ports.makeAsyncIterator()
        port = await it.next() ?? 0
        for _ in 0..<5_000 where node.leaderHint.role != .leader { try await Task.sleep(for: .milliseconds(1)) }
        try await Self.registerInstances(node, ["i1", "i2"])
        if driver { startDriver() }
    }

    /// Starts the leader's operation driver (the fixture's node leads).
    func startDriver() {
        let loop = OperationDriverLoop(node: node, policy: brokerConfig.placementPolicy, waker: waker, idleMillis: 10, logger: Logger(label: "test.driver"))
        driverTask.withLock { task in
            if task == nil { task = Task { await loop.run() } }
        }
    }

    static func registerInstances(_ node: PeerNode, _ ids: [String]) async throws {
        var sequence: UInt64 = 0
        for (i, id) in ids.enumerated() {
            var add = PBAddInstance()
            add.id = id
            add.address = "127.0.0.1:\(9000 + i)"
            add.role = .voter
            add.version = "test"
            add.protocolVersion = 1
            var active = PBSetInstanceState()
            active.id = id
            active.state = .active
            for body in [Command.OneOf_Body.addInstance(add), .setInstanceState(active)] {
                sequence += 1
                let r = try await node.propose(Command(clientId: "fixture", sequence: sequence, leaderTimeMs: Int64(Date().timeIntervalSince1970 * 1000), body).entryBytes())
                #expect(r == .applied)
            }
        }
    }

    func close() async {
        let task = driverTask.withLock { $0 }
        task?.cancel()
        await task?.value
        await server.shutdown()
        await serverTask.value
        await node.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    // MARK: - Requests

    /// A request as a platform sends it: basic auth and API version 2.17 unless told otherwise.
    func osb(_ method: String, _ path: String, body: String? = nil, auth: (String, String)?? = nil, version: String? = "2.17",
             headers: [(String, String)] = []) async throws -> CurlAnswer {
        var h = headers
        if let version { h.append(("X-Broker-API-Version", version)) }
        let credentials: (String, String)? = auth ?? (username, password)
        return try await curl(port: port, caPath: dir + "/ca.pem", method: method, path: path, headers: h, body: body, basicAuth: credentials)
    }

    /// Polls last_operation until the operation leaves `in progress` (bounded); a 410 (a
    /// finished deprovision) comes back as `["state": "gone"]`.
    func waitForOperation(_ instance: String, _ operation: String, seconds: Double = 10) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any] = [:]
        while Date() < deadline {
            let a = try await osb("GET", "/v2/service_instances/\(instance)/last_operation?operation=\(operation)")
            // 410: a finished deprovision (the instance is gone), reported as state "gone" here.
            if a.status == 410 { return ["state": "gone"] }
            last = a.json
            if a.status == 200, last["state"] as? String != "in progress" { return last }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw BrokerTestError("operation \(operation) still in progress after \(seconds) s: \(last)")
    }

    func state<T: Sendable>(_ body: @escaping @Sendable (ClusterState) -> T) async throws -> T {
        try await node.read(linearizable: false, body)
    }

    /// The digest and applied index of the whole state: a refused (4xx) request proposes
    /// nothing, so neither may move.
    var fingerprint: String {
        get async throws { try await state { "\($0.appliedIndex)/\($0.stateDigestHex)" } }
    }

    static let provisionBody = #"{"service_id":"dreamface","plan_id":"dreamface-deployment","organization_guid":"org-1","space_guid":"space-1","context":{"platform":"test"}}"#
    static let bindBody = #"{"service_id":"dreamface","plan_id":"dreamface-deployment","bind_resource":{"app_guid":"app-1"}}"#
}

struct BrokerTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct CurlAnswer: Sendable {
    var status: Int
    var body: String
    var headers: [String: String]

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }

    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// One HTTPS request by curl, spawned and reaped directly; `--max-time` bounds it.
func curl(port: Int, caPath: String, method: String, path: String, headers: [(String, String)], body: String?,
          basicAuth: (String, String)?, bearer: String? = nil) async throws -> CurlAnswer {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("curl-\(UInt64.random(in: 0...UInt64.max))").path
    let outPath = base + ".out", bodyPath = base + ".body", headerPath = base + ".head", inPath = base + ".in", configPath = base + ".cfg"
    defer { for p in [outPath, bodyPath, headerPath, inPath, configPath] { try? FileManager.default.removeItem(atPath: p) } }
    var args = ["curl", "-s", "--max-time", "20", "-o", bodyPath, "-D", headerPath, "-w", "%{http_code}", "--cacert", caPath, "--tlsv1.3", "-X", method]
    // Secrets go through a config file (0600), not argv, which `ps` would show.
    var config = ""
    if let (user, password) = basicAuth { config += "user = \"\(user):\(password)\"\n" }
    if let bearer { config += "header = \"Authorization: Bearer \(bearer)\"\n" }
    FileManager.default.createFile(atPath: configPath, contents: Data(config.utf8), attributes: [.posixPermissions: 0o600])
    args += ["-K", configPath]
    for (n, v) in headers { args += ["-H", "\(n): \(v)"] }
    if let body {
        FileManager.default.createFile(atPath: inPath, contents: Data(body.utf8))
        args += ["-H", "Content-Type: application/json", "--data-binary", "@" + inPath]
    }
    args.append("https://127.0.0.1:\(port)\(path)")
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, "/usr/bin/curl", &actions, nil, argv, environ) == 0 else { throw BrokerTestError("cannot spawn curl") }
    // Reap without blocking a cooperative thread: poll (bounded by curl's own --max-time).
    var status: Int32 = 0
    while waitpid(pid, &status, WNOHANG) == 0 { try await Task.sleep(for: .milliseconds(2)) }
    let code = Int((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "") ?? -1
    let text = (try? String(contentsOfFile: bodyPath, encoding: .utf8)) ?? ""
    var parsed: [String: String] = [:]
    for line in ((try? String(contentsOfFile: headerPath, encoding: .utf8)) ?? "").split(separator: "\r\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        parsed[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return CurlAnswer(status: code, body: text, headers: parsed)
}
