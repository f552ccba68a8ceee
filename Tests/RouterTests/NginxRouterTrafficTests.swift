import ChildProcesses
import Dispatch
import Foundation
import Synchronization
import LoopbackHTTP
import Testing
@testable import Router

#if canImport(Glibc)
import Glibc
#endif

extension RealNginxTests {
    /// Tenant moves under load and token checks through a real HTTPS peer stand-in.
    @Suite struct NginxRouterTrafficTests {
        static let clientThreads = 4
        /// Per client thread; the loop also ends when the applies are done or at the deadline.
        static let requestsPerThreadMax = 20_000
        static let trafficDeadline: Duration = .seconds(30)
        static let generations: ClosedRange<UInt64> = 2...21
        /// Requests that must complete between two applies, so every flip happens under traffic.
        static let requestsBetweenApplies = 40

        /// Twenty generations move every tenant between two backends while four threads send
        /// requests, each on ONE keepalive connection for the whole test. Tenant changes go to
        /// the route table, not the config: nginx is never reloaded (same master, every apply
        /// `configChanged == false`), so no connection is closed under a client, and every
        /// request is answered 200 for its tenant. A reload per move made wrk count read errors
        /// here (ADR 0008).
        @Test func tenantMovesUnderKeepaliveTrafficCloseNoConnectionAndLoseNoRequest() async throws {
            let backends = try ["i-1/web", "i-2/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                let tenantIds = (0..<20).map { "tenant-\($0)" }
                var spec = try RealNginxTests.NginxRouterTests.spec(prefix: prefix, backends: backends, generation: 1)
                spec.tenants = Self.placement(tenantIds, generation: 1)
                let first = try await router.apply(spec)

                let counters = TrafficCounters()
                let reconnects = Atomic<Int>(0)
                let applying = Atomic<Bool>(true)
                let deadline = ContinuousClock.now + Self.trafficDeadline
                let group = DispatchGroup()
                let listen = spec.listen
                for thread in 0..<Self.clientThreads {
                    group.enter()
                    Thread {
                        defer { group.leave() }
                        var connection = try? KeepaliveConnection(listen)
                        var sent = 0
                        while applying.load(ordering: .relaxed), sent < Self.requestsPerThreadMax, ContinuousClock.now < deadline {
                            let tenant = tenantIds[(thread + sent * Self.clientThreads) % tenantIds.count]
                            counters.record(tenant: tenant) {
                                guard let open = connection else { throw KeepaliveError.closedEarly(receivedBytes: 0) }
                                do {
                                    let reply = try open.get(headers: [("X-Tenant-ID", tenant)])
                                    if open.closeAnnounced {
                                        open.close()
                                        connection = try? KeepaliveConnection(listen)
                                    }
                                    return reply
                                } catch {
                                    connection = try? KeepaliveConnection(listen)
                                    reconnects.add(1, ordering: .relaxed)
                                    throw error
                                }
                            }
                            sent += 1
                        }
                        connection?.close()
                    }.start()
                }
                for generation in Self.generations {
                    let before = counters.total
                    let progressed = await TestSupport.poll(timeout: .seconds(10)) { counters.total >= before + Self.requestsBetweenApplies }
                    #expect(progressed, "traffic stalled before generation \(generation)")
                    spec.generation = generation
                    spec.tenants = Self.placement(tenantIds, generation: generation)
                    let applied = try await router.apply(spec)
                    #expect(applied.configChanged == false)
                    #expect(applied.pid == first.pid)
                    #expect(applied.fullRouteTable == false)
                    #expect(applied.routeChanges == 2 * tenantIds.count)
                }
                let settled = counters.total
                _ = await TestSupport.poll(timeout: .seconds(10)) { counters.total >= settled + Self.requestsBetweenApplies }
                applying.store(false, ordering: .relaxed)
                await withCheckedContinuation { continuation in group.notify(queue: .global()) { continuation.resume() } }

                #expect(counters.failures.isEmpty, "\(counters.failures.count) failures, first: \(counters.failures.prefix(5))")
                #expect(reconnects.load(ordering: .relaxed) == 0)
                #expect(counters.total >= Self.generations.count * Self.requestsBetweenApplies)
                #expect(backends.allSatisfy { $0.requestsServed > 0 })
                // After the last generation every tenant is served where it was put.
                for tenant in spec.tenants {
                    let reply = try await TestSupport.get(listen, headers: [("X-Tenant-ID", tenant.id)])
                    #expect(reply.bodyText.hasPrefix("\(tenant.instance)/web tenant=\(tenant.id) "), "\(reply.bodyText)")
                }
                print("moves under keepalive traffic: \(counters.total) requests on \(Self.clientThreads) connections, \(Self.generations.count) route changes, \(counters.failures.count) failures, \(reconnects.load(ordering: .relaxed)) reconnects")
            }
        }

        /// Even tenants on i-1 and odd on i-2 in odd generations, the other way round in even ones.
        static func placement(_ ids: [String], generation: UInt64) -> [TenantRoute] {
            ids.enumerated().map { index, id in
                TenantRoute(id: id, instance: (UInt64(index) + generation) % 2 == 0 ? "i-1" : "i-2", components: ["web"])
            }
        }

        @Test func tenantTokensAreCheckedByThePeerOverVerifiedTLSAndCached() async throws {
            let tls = try TestTLS.make()
            let checker = try TokenCheckServer(tls: tls)
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            defer {
                backends.forEach { $0.stop() }
                checker.stop()
                TestSupport.removeDirectory(tls.directory)
            }
            try await TestSupport.withRouter { router, prefix in
                var spec = try RealNginxTests.NginxRouterTests.spec(prefix: prefix, backends: backends, generation: 1)
                spec.tenants = [
                    TenantRoute(id: "secure", instance: "i-1", components: ["web"], requiresToken: true),
                    TenantRoute(id: "open", instance: "i-1", components: ["web"]),
                ]
                spec.authURL = "https://127.0.0.1:\(checker.port)"
                spec.authCAFile = tls.caFile
                spec.authServerName = TestTLS.serverName
                spec.authCacheSeconds = 30
                _ = try await router.apply(spec)

                func get(_ tenant: String, _ token: String?) async throws -> LoopbackHTTPReply {
                    var headers = [("X-Tenant-ID", tenant)]
                    if let token { headers.append(("Authorization", "Bearer \(token)")) }
                    return try await TestSupport.get(spec.listen, headers: headers)
                }
                let missing = try await get("secure", nil)
                #expect(missing.status == 401)
                #expect(missing.bodyText == #"{"error":"unauthorized","tenant":"secure"}"#)
                #expect(missing.header("Content-Type") == "application/json")
                let wrongTenant = try await get("secure", "good-other")
                #expect(wrongTenant.status == 403)
                #expect(wrongTenant.bodyText == #"{"error":"forbidden","tenant":"secure"}"#)
                let good = try await get("secure", "good-secure")
                #expect(good.status == 200 && good.bodyText.hasPrefix("i-1/web tenant=secure "), "\(good.status) \(good.bodyText)")
                #expect(checker.checks == ["secure Bearer-none", "secure good-other", "secure good-secure"])

                // Cached: the same answers again without asking the peer.
                #expect(try await get("secure", "good-secure").status == 200)
                #expect(try await get("secure", "good-other").status == 403)
                #expect(try await get("secure", nil).status == 401)
                // A tenant without requiresToken is never checked.
                #expect(try await get("open", nil).status == 200)
                #expect(checker.checks.count == 3, "\(checker.checks)")
            }
        }
    }
}

/// Failures seen by the client threads, bounded.
final class TrafficCounters: Sendable {
    static let failuresKeptMax = 100
    private let state = Mutex<(total: Int, failures: [String])>((0, []))

    var total: Int { state.withLock { $0.total } }
    var failures: [String] { state.withLock { $0.failures } }

    func record(tenant: String, _ request: () throws -> LoopbackHTTPReply) {
        var failure: String?
        do {
            let reply = try request()
            if reply.status != 200 || !reply.bodyText.contains(" tenant=\(tenant) ") {
                failure = "\(tenant): \(reply.status) \(reply.bodyText.prefix(200))"
            }
        } catch {
            failure = "\(tenant): \(error)"
        }
        state.withLock { state in
            state.total += 1
            if let failure, state.failures.count < Self.failuresKeptMax { state.failures.append(failure) }
        }
    }
}

/// The peer's `GET /v1/auth/tenant/<tenant>` stand-in: a python3 HTTPS server (the test's
/// certificate for `peer.test`) answering 204 for `Bearer good-<tenant>`, 403 for another
/// tenant's good token, 401 otherwise, with `Cache-Control: no-store` (which the router
/// must ignore). It appends `<tenant> <token>` to a file per check.
final class TokenCheckServer: Sendable {
    let port: UInt16
    private let pid: pid_t
    private let logFile: String

    static let script = #"""
    import http.server, ssl, sys
    cert, key, log_path, port_path = sys.argv[1:5]
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            prefix = "/v1/auth/tenant/"
            tenant = self.path[len(prefix):] if self.path.startswith(prefix) else ""
            auth = self.headers.get("Authorization", "")
            token = auth[len("Bearer "):] if auth.startswith("Bearer ") else "Bearer-none"
            with open(log_path, "a") as log:
                log.write(f"{tenant} {token}\n")
            if token == "good-" + tenant: status = 204
            elif token.startswith("good-"): status = 403
            else: status = 401
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
        def log_message(self, *args): pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(port_path + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os; os.rename(port_path + ".tmp", port_path)
    server.serve_forever()
    """#

    /// Started with `ChildProcess.spawn`, not Foundation's `Process`: a child that
    /// `Process` starts from a Dispatch thread inherits that thread's blocked signals, so
    /// SIGTERM never reaches it (seen: the test hung in `waitUntilExit`).
    init(tls: TestTLS) throws {
        logFile = tls.directory + "/checks.log"
        let portFile = tls.directory + "/port"
        pid = try ChildProcess.spawn(["python3", "-c", Self.script, tls.certFile, tls.keyFile, logFile, portFile], .init(outputPath: tls.directory + "/checker.out"))
        let deadline = ContinuousClock.now + .seconds(10)
        var port: UInt16?
        while port == nil && ContinuousClock.now < deadline && !ChildProcess.hasExited(pid) {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { UInt16($0) }
            if port == nil { Thread.sleep(forTimeInterval: 0.02) }
        }
        guard let port else {
            kill(pid, SIGKILL)
            _ = ChildProcess.reapBlocking(pid)
            let output = (try? String(contentsOfFile: tls.directory + "/checker.out", encoding: .utf8)) ?? ""
            throw TestFailure("the token check server did not report its port within 10 s: \(output.prefix(2000))")
        }
        self.port = port
    }

    var checks: [String] {
        ((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// SIGTERM, then SIGKILL if it has not ended within 5 s; reaped either way.
    func stop() {
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(5)
        while !ChildProcess.hasExited(pid) && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        kill(pid, SIGKILL)
        _ = ChildProcess.reapBlocking(pid)
    }
}
