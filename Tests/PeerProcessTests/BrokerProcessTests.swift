import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension ClusterProcessTests {
/// The Open Service Broker API on a real 3-peer cluster, driven only through the CLI and HTTPS
/// (curl as the platform, with the credentials `peer broker credentials` prints). Nested in the
/// serialized process suite, so at most one real cluster runs at a time on a 2-core machine.
@Suite("the broker on a 3-peer cluster")
struct BrokerProcessTests {
    static let provisionBody = #"{"service_id":"dreamface","plan_id":"dreamface-development","organization_guid":"org","space_guid":"space"}"#
    static let bindBody = #"{"service_id":"dreamface","plan_id":"dreamface-development","bind_resource":{"app_guid":"app"}}"#
    static let query = "service_id=dreamface&plan_id=dreamface-development"

    @Test("the whole lifecycle through followers and the leader: catalog, provision, last_operation, bind, the token check on every peer, unbind, deprovision")
    func lifecycle() async throws {
        let c = try ProcessCluster()
        let b = try await BrokerClient(cluster: c)
        let status = try await c.statusJSON()
        let leader = try #require(status["leader"] as? Int)
        let follower = try #require(c.members(status).first { $0["id"] as? Int != leader }?["apiAddress"] as? String)
        let other = try #require(c.members(status).first { $0["id"] as? Int != leader && $0["apiAddress"] as? String != follower }?["apiAddress"] as? String)

        #expect(try await b.request(follower, "GET", "/v2/catalog").status == 200)
        // A write through a follower is forwarded to the leader.
        let provisioned = try await b.request(follower, "PUT", "/v2/service_instances/acme?accepts_incomplete=true", body: Self.provisionBody,
                                        headers: [("X-Broker-API-Request-Identity", "r-1")])
        #expect(provisioned.status == 202, "\(provisioned.body)")
        #expect(provisioned.headers["x-broker-api-request-identity"] == "r-1")
        let operation = try #require(provisioned.json["operation"] as? String)
        let done = try await b.waitForOperation(other, "acme", operation)
        #expect(done["state"] as? String == "succeeded")
        #expect(try await b.request(follower, "GET", "/v2/service_instances/acme").json["plan_id"] as? String == "dreamface-development")

        let bound = try await b.request(other, "PUT", "/v2/service_instances/acme/service_bindings/user-1", body: Self.bindBody)
        #expect(bound.status == 201, "\(bound.body)")
        let token = try #require((bound.json["credentials"] as? [String: Any])?["token"] as? String)
        // Every peer answers the token check from its own applied state (bounded wait for each to apply).
        for api in b.apis {
            try await b.waitFor("peer \(api) admits the token") { try await b.tokenCheck(api, tenant: "acme", token: token) == 204 }
            #expect(try await b.tokenCheck(api, tenant: "other", token: token) == 403)
        }
        #expect(try await b.request(follower, "DELETE", "/v2/service_instances/acme/service_bindings/user-1?\(Self.query)").status == 200)
        for api in b.apis {
            try await b.waitFor("peer \(api) refuses the revoked token") { try await b.tokenCheck(api, tenant: "acme", token: token) == 401 }
        }

        let deleted = try await b.request(other, "DELETE", "/v2/service_instances/acme?accepts_incomplete=true&\(Self.query)")
        #expect(deleted.status == 202)
        let gone = try await b.waitForOperation(follower, "acme", try #require(deleted.json["operation"] as? String))
        #expect(gone["state"] as? String == "gone")
        #expect(try await b.request(follower, "DELETE", "/v2/service_instances/acme?accepts_incomplete=true&\(Self.query)").status == 410)
        let tenants = try await c.must(["tenants", "list", "--config", c.configPath, "--output", "json", "--consistent"])
        #expect(tenants.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
        try await c.waitForStatus("convergence") { ProcessCluster.converged($0, members: 3) }
        try await c.must(["down", "--config", c.configPath])
    }

    /// Without agents a provision is two entries: the request's (tenant and operation) and the
    /// driver's placement, which also readies the tenant and finishes the operation. The leader
    /// is killed as soon as it has answered 202 (the first entry committed), so the kill lands
    /// before or just after the second: either way the survivors must end with one tenant, one
    /// active placement and that operation succeeded. (Every intermediate phase is resumed by a
    /// new leader in ControllerTests, deterministically.)
    @Test("a leader killed right after accepting a provision: the next leader finishes it; one tenant, one active placement, the same operation")
    func leaderKilledDuringProvision() async throws {
        let c = try ProcessCluster(extraYAML: "broker:\n  driverIntervalMs: 600\n")
        let b = try await BrokerClient(cluster: c)
        let status = try await c.statusJSON()
        let leader = try #require(status["leader"] as? Int)
        let leaderAPI = try #require(c.members(status).first { $0["id"] as? Int == leader }?["apiAddress"] as? String)
        let survivor = try #require(c.members(status).first { $0["id"] as? Int != leader }?["apiAddress"] as? String)
        let started = try await b.request(leaderAPI, "PUT", "/v2/service_instances/mid?accepts_incomplete=true", body: Self.provisionBody)
        #expect(started.status == 202)
        let operation = try #require(started.json["operation"] as? String)
        try c.killPeer(leader)
        let done = try await b.waitForOperation(survivor, "mid", operation, seconds: 30)
        #expect(done["state"] as? String == "succeeded")
        let tenant = try #require(try await b.tenant(c, "mid"))
        #expect(tenant["state"] as? String == "ready")
        let list = try await c.must(["tenants", "list", "--config", c.configPath, "--output", "json", "--consistent"])
        #expect(list.components(separatedBy: "\"id\":\"mid\"").count == 2, "exactly one tenant: \(list)")
        let served = try await c.waitForStatus("the survivors' view") { ($0["instances"] as? [[String: Any]])?.isEmpty == false }
        let active = (served["instances"] as? [[String: Any]] ?? []).compactMap { $0["activeTenants"] as? Int }.reduce(0, +)
        #expect(active == 1, "exactly one active placement: \(served["instances"] ?? "")")
        // The repeated PUT names the same, finished provision: no duplicate.
        #expect(try await b.request(survivor, "PUT", "/v2/service_instances/mid?accepts_incomplete=true", body: Self.provisionBody).status == 200)
        try await c.must(["up", "--config", c.configPath])
        try await c.waitForStatus("convergence after the restart") { ProcessCluster.converged($0, members: 3) }
        try await c.must(["down", "--config", c.configPath])
    }

    @Test("a leader killed during a deprovision: the next leader finishes it; the tenant is gone, the operation succeeded")
    func leaderKilledDuringDeprovision() async throws {
        let c = try ProcessCluster(extraYAML: "broker:\n  driverIntervalMs: 600\n")
        let b = try await BrokerClient(cluster: c)
        let first = try await b.request(b.apis[0], "PUT", "/v2/service_instances/bye?accepts_incomplete=true", body: Self.provisionBody)
        _ = try await b.waitForOperation(b.apis[0], "bye", try #require(first.json["operation"] as? String), seconds: 30)
        let status = try await c.statusJSON()
        let leader = try #require(status["leader"] as? Int)
        let survivor = try #require(c.members(status).first { $0["id"] as? Int != leader }?["apiAddress"] as? String)
        let started = try await b.request(survivor, "DELETE", "/v2/service_instances/bye?accepts_incomplete=true&\(Self.query)")
        #expect(started.status == 202)
        let operation = try #require(started.json["operation"] as? String)
        // Half-way: deprovisioning and no longer active, the tenant not yet deleted.
        try await b.waitFor("the deprovision half-way") {
            let t = try await b.tenant(c, "bye")
            return t?["state"] as? String == "deprovisioning" && t?["activeInstance"] == nil
        }
        try c.killPeer(leader)
        let done = try await b.waitForOperation(survivor, "bye", operation, seconds: 30)
        #expect(done["state"] as? String == "gone", "finished: last_operation says 410 Gone")
        #expect(try await b.tenant(c, "bye") == nil)
        #expect(try await b.request(survivor, "DELETE", "/v2/service_instances/bye?accepts_incomplete=true&\(Self.query)").status == 410)
        try await c.must(["up", "--config", c.configPath])
        try await c.waitForStatus("convergence after the restart") { ProcessCluster.converged($0, members: 3) }
        try await c.must(["down", "--config", c.configPath])
    }
}

}

/// A platform's view of the cluster: the credentials from `peer broker credentials`, requests by
/// curl (an independent HTTP/TLS client), the secret passed in a 0600 file, never in argv.
struct BrokerClient {
    let cluster: ProcessCluster
    let apis: [String]
    let caFile: String
    let authFile: String

    init(cluster c: ProcessCluster) async throws {
        cluster = c
        try await c.must(["init", "--config", c.configPath])
        try await c.must(["up", "--config", c.configPath])
        let out = try await c.must(["broker", "credentials", "--config", c.configPath, "--output", "json"])
        let credentials = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        let urls = try #require(credentials["urls"] as? [String])
        #expect(credentials["url"] as? String == urls.first && credentials["username"] as? String == "broker")
        apis = urls.map { String($0.dropFirst("https://".count)) }
        caFile = try #require(credentials["caFile"] as? String)
        let password = try #require(credentials["password"] as? String)
        #expect(password.count == 64)
        authFile = c.dir + "/curl-auth"
        FileManager.default.createFile(atPath: authFile, contents: Data("user = \"broker:\(password)\"\n".utf8), attributes: [.posixPermissions: 0o600])
    }

    struct Answer {
        var status: Int
        var body: String
        var headers: [String: String]
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
    }

    func request(_ api: String, _ method: String, _ path: String, body: String? = nil, headers: [(String, String)] = []) async throws -> Answer {
        var args = ["-K", authFile, "-H", "X-Broker-API-Version: 2.17", "-X", method]
        for (n, v) in headers { args += ["-H", "\(n): \(v)"] }
        return try await curl(args, url: "https://\(api)\(path)", body: body)
    }

    func tokenCheck(_ api: String, tenant: String, token: String) async throws -> Int {
        let file = cluster.dir + "/token-\(UInt32.random(in: 0...UInt32.max))"
        FileManager.default.createFile(atPath: file, contents: Data("header = \"Authorization: Bearer \(token)\"\n".utf8), attributes: [.posixPermissions: 0o600])
        defer { try? FileManager.default.removeItem(atPath: file) }
        return try await curl(["-K", file], url: "https://\(api)/v1/auth/tenant/\(tenant)", body: nil).status
    }

    func curl(_ extra: [String], url: String, body: String?) async throws -> Answer {
        let base = cluster.dir + "/curl-\(UInt64.random(in: 0...UInt64.max))"
        defer { for s in [".out", ".body", ".head", ".in"] { try? FileManager.default.removeItem(atPath: base + s) } }
        var args = ["curl", "-s", "--max-time", "20", "-o", base + ".body", "-D", base + ".head", "-w", "%{http_code}", "--cacert", caFile, "--tlsv1.3"] + extra
        if let body {
            FileManager.default.createFile(atPath: base + ".in", contents: Data(body.utf8))
            args += ["-H", "Content-Type: application/json", "--data-binary", "@" + base + ".in"]
        }
        args.append(url)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/usr/bin/curl", &actions, nil, argv, environ) == 0 else { throw ProcessTestError("cannot spawn curl") }
        // Reaped by polling with Task.sleep between, so no thread is blocked (curl's --max-time bounds it).
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 { try await Task.sleep(for: .milliseconds(2)) }
        let code = Int((try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "") ?? -1
        var headers: [String: String] = [:]
        for line in ((try? String(contentsOfFile: base + ".head", encoding: .utf8)) ?? "").split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Answer(status: code, body: (try? String(contentsOfFile: base + ".body", encoding: .utf8)) ?? "", headers: headers)
    }

    /// Polls last_operation (the platform's way) until the operation is no longer in progress.
    func waitForOperation(_ api: String, _ instance: String, _ operation: String, seconds: Double = 20) async throws -> [String: Any] {
        var last: [String: Any] = [:]
        try await waitFor("operation \(operation) to finish", seconds: seconds) {
            // A peer that was just killed, or an election in progress, answers no or 503: poll on.
            let a = try await request(api, "GET", "/v2/service_instances/\(instance)/last_operation?operation=\(operation)")
            if a.status == 410 {  // a finished deprovision: the instance is gone
                last = ["state": "gone"]
                return true
            }
            last = a.json
            return a.status == 200 && last["state"] as? String != "in progress"
        }
        return last
    }

    /// The tenant as `peer tenants list --consistent` shows it, or nil.
    func tenant(_ c: ProcessCluster, _ id: String) async throws -> [String: Any]? {
        let o = try await c.run(["tenants", "list", "--config", c.configPath, "--output", "json", "--consistent"])
        guard o.status == 0, let list = try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [[String: Any]] else {
            throw ProcessTestError("tenants list failed: \(o.stderr)")
        }
        return list.first { $0["id"] as? String == id }
    }

    /// Bounded polling of an observable condition.
    func waitFor(_ what: String, seconds: Double = 20, _ done: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await done() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ProcessTestError("timed out after \(seconds) s waiting for \(what)")
    }
}

extension ProcessCluster {
    /// SIGKILL the peer with this id (its pid from the pid file `peer up` wrote).
    func killPeer(_ id: Int) throws {
        guard let pid = pid(of: id) else { throw ProcessTestError("no pid file for peer \(id)") }
        guard Glibc.kill(pid, SIGKILL) == 0 else { throw ProcessTestError("kill \(pid): \(errno)") }
    }
}
