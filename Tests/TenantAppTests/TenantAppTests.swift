import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Spawns a program with stdout/stderr to files; `wait` reaps it (bounded).
struct Child {
    let pid: pid_t
    let out: String

    static func spawn(_ path: String, _ args: [String], out: String) throws -> Child {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, out + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw TestFailure("posix_spawn \(path): \(rc)") }
        return Child(pid: pid, out: out)
    }

    /// Exit status, or nil if it did not exit within `seconds` (then it is killed).
    func wait(seconds: Double) async -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                return nil
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    var output: String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A running tenant-app on a free port (it prints the port it bound).
final class AppFixture {
    let dir: String
    let tenantFile: String
    let app: Child
    let port: Int

    init(tenants: [String]) async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tenant-app-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        tenantFile = dir + "/tenants"
        try (tenants.joined(separator: "\n") + "\n").write(toFile: tenantFile, atomically: true, encoding: .utf8)
        app = try Child.spawn(try Self.binary(), ["--instance", "i1", "--component", "dfx-dev", "--tenant-file", tenantFile, "--port", "0"], out: dir + "/app.out")
        var found: Int?
        for _ in 0..<5_000 where found == nil {
            if let line = app.output.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }),
               let p = line.split(separator: ":").last.flatMap({ Int($0) }) {
                found = p
            } else {
                try await Task.sleep(for: .milliseconds(2))
            }
        }
        guard let found else { throw TestFailure("tenant-app printed no port: \(app.output)") }
        port = found
    }

    deinit {
        kill(app.pid, SIGKILL)
        var status: Int32 = 0
        waitpid(app.pid, &status, 0)
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// curl: status, X-Served-By, body.
    func get(_ path: String, headers: [String] = []) async throws -> (status: Int, servedBy: String?, body: String) {
        let out = dir + "/curl-\(UInt32.random(in: 0...UInt32.max))"
        var args = ["-s", "--max-time", "10", "-D", out + ".h", "-o", out + ".b", "-w", "%{http_code}", "http://127.0.0.1:\(port)\(path)"]
        for h in headers { args += ["-H", h] }
        let c = try Child.spawn("/usr/bin/curl", args, out: out)
        guard await c.wait(seconds: 15) == 0 else { throw TestFailure("curl failed: \((try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? "")") }
        let head = (try? String(contentsOfFile: out + ".h", encoding: .utf8)) ?? ""
        let servedBy = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("x-served-by:") }
            .map { String($0.dropFirst("x-served-by:".count)).trimmingCharacters(in: .whitespaces) }
        return (Int(c.output) ?? -1, servedBy, (try? String(contentsOfFile: out + ".b", encoding: .utf8)) ?? "")
    }

    static func binary() throws -> String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("tenant-app").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw TestFailure("tenant-app not found next to \(dir.path)")
    }
}

@Suite("tenant-app: the demo component", .serialized)
struct TenantAppTests {
    @Test("serves only its tenants, by header or host name, and says who served")
    func servesItsTenants() async throws {
        let f = try await AppFixture(tenants: ["acme", "beta"])
        let a = try await f.get("/x", headers: ["X-Tenant-ID: acme"])
        #expect(a.status == 200 && a.servedBy == "i1/dfx-dev" && a.body.contains("\"tenant\":\"acme\""))
        let b = try await f.get("/x", headers: ["Host: beta.apps.example"])
        #expect(b.status == 200 && b.body.contains("\"tenant\":\"beta\""))
        let other = try await f.get("/x", headers: ["X-Tenant-ID: zed"])
        #expect(other.status == 404 && other.servedBy == "i1/dfx-dev" && other.body.contains("zed"))
        #expect(try await f.get("/healthz").status == 200)
        // The agent's readiness probe: with X-Tenant-ID, 2xx only for a tenant it serves.
        #expect(try await f.get("/healthz", headers: ["X-Tenant-ID: acme"]).status == 200)
        #expect(try await f.get("/healthz", headers: ["X-Tenant-ID: zed"]).status == 404)
        #expect(try await f.get("/burn?ms=20", headers: ["X-Tenant-ID: acme"]).body.contains("burnedMs"))
        #expect(try await f.get("/burn?ms=99999", headers: ["X-Tenant-ID: acme"]).status == 400)
    }

    @Test("SIGHUP reloads the tenant file; an invalid file keeps the previous tenants")
    func reload() async throws {
        let f = try await AppFixture(tenants: ["acme"])
        #expect(try await f.get("/", headers: ["X-Tenant-ID: new"]).status == 404)
        try "acme\nnew\n".write(toFile: f.tenantFile, atomically: true, encoding: .utf8)
        kill(f.app.pid, SIGHUP)
        var served = false
        for _ in 0..<500 where !served {
            served = try await f.get("/", headers: ["X-Tenant-ID: new"]).status == 200
            if !served { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(served)
        try "acme\nNOT A TENANT!\n".write(toFile: f.tenantFile, atomically: true, encoding: .utf8)
        kill(f.app.pid, SIGHUP)
        var refused = false
        for _ in 0..<1_000 where !refused {
            refused = ((try? String(contentsOfFile: f.app.out + ".err", encoding: .utf8)) ?? "").contains("keeping the previous tenants")
            if !refused { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(refused, "the app must say it refused the file")
        #expect(try await f.get("/", headers: ["X-Tenant-ID: new"]).status == 200, "an invalid file must not drop the tenants")
    }

    @Test("SIGTERM: a request in flight completes, then the process exits 0")
    func gracefulStop() async throws {
        let f = try await AppFixture(tenants: ["acme"])
        let out = f.dir + "/inflight"
        let inflight = try Child.spawn("/usr/bin/curl", ["-s", "--max-time", "10", "-o", out + ".b", "-w", "%{http_code}", "-H", "X-Tenant-ID: acme", "http://127.0.0.1:\(f.port)/burn?ms=600"], out: out)
        // Wait (bounded) until the app is serving it: it logs the burn before it starts.
        var started = false
        for _ in 0..<5_000 where !started {
            started = ((try? String(contentsOfFile: f.app.out + ".err", encoding: .utf8)) ?? "").contains("burning 600 ms")
            if !started { try await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(started)
        kill(f.app.pid, SIGTERM)
        #expect(await inflight.wait(seconds: 15) == 0)
        #expect(inflight.output == "200", "the request in flight got \(inflight.output)")
        #expect(await f.app.wait(seconds: 15) == 0)
    }
}
