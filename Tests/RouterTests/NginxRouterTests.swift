import Foundation
import Synchronization
import Testing
@testable import Router

#if canImport(Glibc)
import Glibc
#endif

extension RealNginxTests {
    /// Real nginx (/usr/sbin/nginx) in a temp prefix, real backends on loopback. Serialized: each
    /// test starts its own nginx, and the limit and traffic tests need the CPU to themselves.
    @Suite struct NginxRouterTests {
        @Test func goldenSpecsGoLiveInRealNginx() async throws {
            let tls = try TestTLS.make()
            defer { TestSupport.removeDirectory(tls.directory) }
            for makeSpec in [GoldenSpecs.empty, GoldenSpecs.twoInstances, { GoldenSpecs.limitsAuthDomain(prefix: $0, caFile: tls.caFile) }] {
                try await TestSupport.withRouter { router, prefix in
                    var spec = makeSpec(prefix)
                    spec.listen = "127.0.0.1:\(try TestSupport.freePort())"
                    spec.controlListen = "127.0.0.1:\(try TestSupport.freePort())"
                    let applied = try await router.apply(spec)
                    #expect(applied.generation == spec.generation)
                    #expect(applied.started)
                    let onDisk = String(decoding: PrefixFiles.read(prefix + "/nginx.conf", bytesMax: 1 << 20), as: UTF8.self)
                    spec.controlToken = router.controlToken
                    #expect(onDisk == (try NginxConfig.render(spec)))
                    // It holds the control secret: the peer's user alone may read it.
                    var info = stat()
                    #expect(stat(prefix + "/nginx.conf", &info) == 0 && info.st_mode & 0o777 == 0o600)
                    let health = try await TestSupport.get(spec.controlListen, path: "/healthz")
                    #expect(health.status == 200)
                }
            }
        }

        @Test func everyTenantIsRoutedToItsInstanceByHeaderAndByHostName() async throws {
            let backends = try ["i-1/web", "i-1/api", "i-2/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                var spec = try Self.spec(prefix: prefix, backends: backends, generation: 1)
                spec.domain = "apps.test"
                var tenants: [TenantRoute] = (0..<60).map { index in
                    index % 2 == 0
                        ? TenantRoute(id: "tenant-\(index)", instance: "i-1", components: index % 4 == 0 ? ["web", "api"] : ["api", "web"])
                        : TenantRoute(id: "tenant-\(index)", instance: "i-2", components: ["web"])
                }
                tenants.append(TenantRoute(id: "default", instance: "i-2", components: ["web"]))
                tenants.append(TenantRoute(id: "include", instance: "i-1", components: ["api"]))
                spec.tenants = tenants
                _ = try await router.apply(spec)

                for tenant in tenants {
                    let expected = "\(tenant.instance)/\(tenant.components[0]) tenant=\(tenant.id) "
                    let byHeader = try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", tenant.id)])
                    #expect(byHeader.status == 200 && byHeader.bodyText.hasPrefix(expected), "\(tenant.id) by header: \(byHeader.status) \(byHeader.bodyText)")
                    let byHost = try await TestSupport.get(spec.listen, headers: [("Host", "\(tenant.id).apps.test")])
                    #expect(byHost.status == 200 && byHost.bodyText == expected + "host=\(tenant.id).apps.test", "\(tenant.id) by host: \(byHost.status) \(byHost.bodyText)")
                    for component in tenant.components {
                        let chosen = try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", tenant.id), ("X-Component", component)])
                        #expect(chosen.bodyText.hasPrefix("\(tenant.instance)/\(component) tenant=\(tenant.id) "), "\(tenant.id) X-Component \(component): \(chosen.bodyText)")
                    }
                }
                // The header wins over the host name.
                let both = try await TestSupport.get(spec.listen, headers: [("Host", "tenant-1.apps.test"), ("X-Tenant-ID", "tenant-0")])
                #expect(both.bodyText.hasPrefix("i-1/web tenant=tenant-0 "))
            }
        }

        @Test func unknownTenantsAndComponentsGet404WithJSON() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                var spec = try Self.spec(prefix: prefix, backends: backends, generation: 1)
                spec.domain = "apps.test"
                spec.tenants = [TenantRoute(id: "acme", instance: "i-1", components: ["web"])]
                _ = try await router.apply(spec)
                let cases: [([(String, String)], String)] = [
                    ([("X-Tenant-ID", "nobody")], #"{"error":"unknown tenant","tenant":"nobody"}"#),
                    ([("Host", "nobody.apps.test")], #"{"error":"unknown tenant","tenant":"nobody"}"#),
                    ([("X-Tenant-ID", #"x","evil":"1"#)], #"{"error":"unknown tenant","tenant":""}"#),
                    ([("Host", "acme.other.test")], #"{"error":"unknown tenant","tenant":""}"#),
                    ([("X-Tenant-ID", "acme"), ("X-Component", "api")], #"{"error":"unknown component","tenant":"acme"}"#),
                ]
                for (headers, body) in cases {
                    let reply = try await TestSupport.get(spec.listen, headers: headers)
                    #expect(reply.status == 404, "\(headers)")
                    #expect(reply.header("Content-Type") == "application/json", "\(headers)")
                    #expect(reply.bodyText == body, "\(headers)")
                }
                #expect(backends[0].requestsServed == 0)
            }
        }

        @Test func portConflictOnReloadIsReportedAndTheOldConfigKeepsServing() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            let held = try HeldPort()
            defer {
                backends.forEach { $0.stop() }
                held.close()
            }
            try await TestSupport.withRouter(confirmTimeout: .seconds(3)) { router, prefix in
                let first = try Self.spec(prefix: prefix, backends: backends, generation: 1)
                _ = try await router.apply(first)
                var second = first
                second.generation = 2
                second.listen = held.address
                // nginx -t ignores EADDRINUSE (see NginxRouter), so the reload itself fails.
                do throws(RouterError) {
                    _ = try await router.apply(second)
                    Issue.record("generation 2 applied although its port is held")
                } catch .reloadNotConfirmed(let generation, let live, let tail) {
                    #expect(generation == 2)
                    #expect(live == 1)
                    #expect(tail.contains { $0.contains("Address already in use") }, "\(tail)")
                } catch {
                    Issue.record("unexpected error \(error)")
                }
                let onDisk = String(decoding: PrefixFiles.read(prefix + "/nginx.conf", bytesMax: 1 << 20), as: UTF8.self)
                #expect(onDisk.hasPrefix("# generation 1,"))
                #expect(PrefixFiles.exists(prefix + "/nginx.conf.failed"))
                let generation = try await TestSupport.get(first.controlListen, path: "/generation")
                #expect(generation.bodyText == "1\n")
                let routed = try await TestSupport.get(first.listen, headers: [("X-Tenant-ID", "acme")])
                #expect(routed.bodyText.hasPrefix("i-1/web tenant=acme "))
                let status = await router.status
                #expect(status.liveGeneration == 1)
                #expect(status.lastError?.contains("generation 2") == true)

                var third = first
                third.generation = 3
                let applied = try await router.apply(third)
                #expect(applied.started == false)
                #expect(await router.status.lastError == nil)
            }
        }

        @Test func portConflictAtFirstStartLeavesNoConfigAndNoNginx() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            let held = try HeldPort()
            defer {
                backends.forEach { $0.stop() }
                held.close()
            }
            try await TestSupport.withRouter { router, prefix in
                var spec = try Self.spec(prefix: prefix, backends: backends, generation: 1)
                spec.listen = held.address
                let began = ContinuousClock.now
                do throws(RouterError) {
                    _ = try await router.apply(spec)
                    Issue.record("generation 1 applied although its port is held")
                } catch .reloadNotConfirmed(_, let live, let tail) {
                    #expect(live == nil)
                    #expect(tail.contains { $0.contains("Address already in use") }, "\(tail)")
                } catch {
                    Issue.record("unexpected error \(error)")
                }
                // The master exits at once; the router notices rather than waiting out the timeout.
                #expect(began.duration(to: .now) < .seconds(5))
                #expect(!PrefixFiles.exists(prefix + "/nginx.conf"))
                #expect(await router.status.pid == nil)
                await #expect(throws: RouterError.noConfig(path: prefix + "/nginx.conf")) { try await router.ensureRunning() }
            }
        }

        @Test func specForAnotherPrefixOrInvalidSpecIsRefusedBeforeAnyFileIsWritten() async throws {
            try await TestSupport.withRouter { router, prefix in
                var spec = GoldenSpecs.empty(prefix: prefix + "-other")
                await #expect(throws: RouterError.prefixMismatch(router: prefix, spec: prefix + "-other")) { try await router.apply(spec) }
                spec = GoldenSpecs.empty(prefix: prefix)
                spec.tenants = [TenantRoute(id: "bad;id", instance: "i-1", components: ["web"])]
                await #expect(throws: RouterError.self) { try await router.apply(spec) }
                #expect(!PrefixFiles.exists(prefix))
                #expect(await router.status.lastError?.contains("tenants[0].id") == true)
            }
        }

        @Test func configNginxRefusesIsNotSwappedIn() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                let first = try Self.spec(prefix: prefix, backends: backends, generation: 1)
                _ = try await router.apply(first)
                var second = first
                second.generation = 2
                // The token check's upstream is in the config (the components' are in the route
                // table): a name nginx cannot resolve makes `nginx -t` refuse it.
                second.authURL = "https://no-such-host.invalid:8443"
                second.authCAFile = "/etc/ssl/certs/ca-certificates.crt"
                second.tenants = second.tenants.map { var t = $0; t.requiresToken = true; return t }
                do throws(RouterError) {
                    _ = try await router.apply(second)
                    Issue.record("generation 2 applied with an unresolvable token-check upstream")
                } catch .invalidConfig(let generation, let said) {
                    #expect(generation == 2)
                    #expect(said.contains("host not found"), "\(said)")
                } catch {
                    Issue.record("unexpected error \(error)")
                }
                #expect(!PrefixFiles.exists(prefix + "/nginx.conf.2.tmp"))
                let onDisk = String(decoding: PrefixFiles.read(prefix + "/nginx.conf", bytesMax: 1 << 20), as: UTF8.self)
                #expect(onDisk.hasPrefix("# generation 1,"))
                #expect(try await TestSupport.get(first.controlListen, path: "/generation").bodyText == "1\n")
            }
        }

        @Test func deadMasterIsNoticedAndRestarted() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                let spec = try Self.spec(prefix: prefix, backends: backends, generation: 5)
                let applied = try await router.apply(spec)
                kill(applied.pid, SIGKILL)
                let noticed = await TestSupport.poll(timeout: .seconds(5)) { await router.status.pid == nil }
                #expect(noticed, "the router did not notice its nginx master died")
                #expect(await router.status.lastError?.contains("signal 9") == true)
                // Its workers were killed too: nothing answers on the port any more.
                let gone = await TestSupport.poll(timeout: .seconds(5)) { (try? await TestSupport.get(spec.controlListen, path: "/generation")) == nil }
                #expect(gone, "an orphaned nginx worker still answers")

                try await router.ensureRunning()
                let status = await router.status
                #expect(status.pid != nil && status.pid != applied.pid)
                #expect(status.liveGeneration == 5)
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "acme")]).status == 200)

                await router.stop()
                #expect(await router.status.pid == nil)
                #expect((try? await TestSupport.get(spec.controlListen, path: "/generation")) == nil)
            }
        }

        @Test func requestRateLimitRejectsABurstWith429OnlyForTheLimitedTenant() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                var spec = try Self.spec(prefix: prefix, backends: backends, generation: 1)
                spec.tenants = [
                    TenantRoute(id: "limited", instance: "i-1", components: ["web"], requestsPerSecond: 5),
                    TenantRoute(id: "free", instance: "i-1", components: ["web"]),
                ]
                _ = try await router.apply(spec)
                // 30 back-to-back requests: at 5/s with a burst of 5, at most 5 + 5 × (elapsed
                // seconds) + 1 pass; the loop takes well under a second on loopback.
                var statuses: [String: [Int]] = [:]
                for tenant in ["limited", "free"] {
                    for _ in 0..<30 {
                        let reply = try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", tenant)])
                        statuses[tenant, default: []].append(reply.status)
                        if reply.status == 429 {
                            #expect(reply.bodyText == #"{"error":"too many requests","tenant":"limited"}"#)
                            #expect(reply.header("Content-Type") == "application/json")
                        }
                    }
                }
                let limited = statuses["limited", default: []]
                #expect(limited.prefix(6).allSatisfy { $0 == 200 }, "the burst allowance was not honoured: \(limited)")
                #expect(limited.filter { $0 == 429 }.count >= 10, "\(limited)")
                #expect(statuses["free", default: []].allSatisfy { $0 == 200 }, "\(statuses["free", default: []])")
            }
        }

        @Test func accessLogReachesSyslogAsJSONWithTheAgreedKeys() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            let receiver = try UDPReceiver()
            defer {
                backends.forEach { $0.stop() }
                receiver.close()
            }
            try await TestSupport.withRouter { router, prefix in
                var spec = try Self.spec(prefix: prefix, backends: backends, generation: 1)
                spec.statsAddress = receiver.address
                _ = try await router.apply(spec)
                _ = try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "acme")])
                _ = try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "nobody")])
                var records: [[String: Any]] = []
                let received = await TestSupport.poll(timeout: .seconds(5)) {
                    while let datagram = receiver.receive() {
                        let text = String(decoding: datagram, as: UTF8.self)
                        #expect(text.hasPrefix("<190>"), "not syslog local7.info: \(text)")
                        guard let start = text.range(of: "peer: ")?.upperBound,
                              let object = try? JSONSerialization.jsonObject(with: Data(text[start...].utf8)) as? [String: Any]
                        else { Issue.record("no JSON in \(text)"); continue }
                        records.append(object)
                    }
                    return records.count >= 2
                }
                #expect(received, "got \(records.count) access log datagrams")
                let keys: Set<String> = ["time", "tenant", "instance", "component", "status", "request_time", "upstream_time", "bytes"]
                for record in records { #expect(Set(record.keys) == keys) }
                let hit = try #require(records.first { $0["tenant"] as? String == "acme" })
                #expect(hit["instance"] as? String == "i-1")
                #expect(hit["component"] as? String == "web")
                #expect(hit["status"] as? Int == 200)
                #expect(hit["bytes"] is Int)
                #expect(hit["request_time"] is Double || hit["request_time"] is Int)
                #expect(hit["time"] is String && hit["upstream_time"] is String)
                let miss = try #require(records.first { $0["tenant"] as? String == "nobody" })
                #expect(miss["instance"] as? String == "")
                #expect(miss["status"] as? Int == 404)
            }
        }

        /// One upstream per backend (named `instance/component`), tenant `acme` on the first.
        static func spec(prefix: String, backends: [TestBackend], generation: UInt64) throws -> RouterSpec {
            let upstreams = backends.map { backend in
                let parts = backend.name.split(separator: "/").map(String.init)
                return Upstream(instance: parts[0], component: parts[1], address: backend.address)
            }
            return RouterSpec(
                generation: generation,
                listen: "127.0.0.1:\(try TestSupport.freePort())",
                controlListen: "127.0.0.1:\(try TestSupport.freePort())",
                prefix: prefix,
                upstreams: upstreams,
                tenants: [TenantRoute(id: "acme", instance: upstreams[0].instance, components: [upstreams[0].component])]
            )
        }
    }
}

/// A UDP socket on 127.0.0.1 standing in for the agent's syslog receiver.
final class UDPReceiver: Sendable {
    static let datagramBytesMax = 8192
    let fd: Int32
    let port: UInt16

    init() throws {
        (fd, port) = try bindLoopback(type: SOCK_DGRAM)
    }

    var address: String { "127.0.0.1:\(port)" }

    /// One datagram if one is waiting, else nil (never blocks).
    func receive() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: Self.datagramBytesMax)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
        return count > 0 ? Array(buffer[0..<count]) : nil
    }

    func close() { Glibc.close(fd) }
}
