import LoopbackHTTP
import Testing
@testable import Router

#if canImport(Glibc)
import Glibc
#endif

extension RealNginxTests {
    /// The route table in a real nginx: kept across reloads, resent whole when nginx's copy is
    /// not the one the router last confirmed, bounded, and never half-applied from a bad body.
    @Suite struct NginxRouteTableTests {
        /// A new instance's upstream is a route-table change, not a config change (ADR 0013):
        /// no reload, the same NGINX master, only the new tenant's entries sent, and the new
        /// upstream serves at once.
        @Test func aNewUpstreamIsOnlyARouteTableChangeWithoutAReload() async throws {
            let backends = try ["i-1/web", "i-2/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                var spec = try RealNginxTests.NginxRouterTests.spec(prefix: prefix, backends: [backends[0]], generation: 1)
                let first = try await router.apply(spec)
                #expect(first.started && first.configChanged && first.fullRouteTable)
                spec.generation = 2
                spec.upstreams.append(Upstream(instance: "i-2", component: "web", address: backends[1].address))
                spec.tenants.append(TenantRoute(id: "globex", instance: "i-2", components: ["web"]))
                let second = try await router.apply(spec)
                #expect(!second.started && !second.configChanged && !second.fullRouteTable)
                #expect(second.pid == first.pid)
                #expect(second.routeChanges == 2)
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "acme")]).bodyText.hasPrefix("i-1/web tenant=acme "))
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "globex")]).bodyText.hasPrefix("i-2/web tenant=globex "))
                // The config NGINX runs is still generation 1's: nothing was reloaded.
                #expect(try await TestSupport.get(spec.controlListen, path: "/config").bodyText == "1\n")
                #expect(try await TestSupport.get(spec.controlListen, path: "/generation").bodyText == "2\n")
            }
        }

        /// A config change (another token-check cache time) reloads nginx; the table survives
        /// the reload, so the same apply sends only the tenant it adds.
        @Test func tableSurvivesAReloadAndOnlyChangesAreSent() async throws {
            let backends = try ["i-1/web", "i-2/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                var spec = try RealNginxTests.NginxRouterTests.spec(prefix: prefix, backends: [backends[0]], generation: 1)
                let first = try await router.apply(spec)
                #expect(first.started && first.configChanged && first.fullRouteTable)
                spec.generation = 2
                spec.workerProcesses += 1
                spec.upstreams.append(Upstream(instance: "i-2", component: "web", address: backends[1].address))
                spec.tenants.append(TenantRoute(id: "globex", instance: "i-2", components: ["web"]))
                let second = try await router.apply(spec)
                #expect(!second.started && second.configChanged && !second.fullRouteTable)
                #expect(second.pid == first.pid)
                #expect(second.routeChanges == 2)
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "acme")]).bodyText.hasPrefix("i-1/web tenant=acme "))
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "globex")]).bodyText.hasPrefix("i-2/web tenant=globex "))
                // The router confirmed generation 2 when a new worker answered it; an old worker
                // may answer a connection it accepted before it saw the reload, for a moment.
                let newConfig = await TestSupport.poll(timeout: .seconds(5)) { (try? await TestSupport.get(spec.controlListen, path: "/config"))?.bodyText == "2\n" }
                #expect(newConfig)
                #expect(try await TestSupport.get(spec.controlListen, path: "/generation").bodyText == "2\n")
            }
        }

        /// Someone else changed nginx's table (here: a full push of another generation): the
        /// router's delta is refused with 409 and it sends the whole table instead.
        @Test func aTableAtAnotherGenerationIsReplacedWhole() async throws {
            let backends = try ["i-1/web", "i-2/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                var spec = try RealNginxTests.NginxRouterTests.spec(prefix: prefix, backends: backends, generation: 1)
                _ = try await router.apply(spec)
                let foreign = NginxRoutes.full(["stray": "0 0 0 i_i_2D2__web"], generation: 99)
                let said = try await TestSupport.request(spec.controlListen, method: .POST, path: "/routes", headers: [("X-Peer-Control", router.controlToken)], body: foreign.body)
                #expect(said.status == 200 && said.bodyText == "99\n")
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "acme")]).status == 404)

                spec.generation = 2
                spec.tenants.append(TenantRoute(id: "globex", instance: "i-2", components: ["web"]))
                let applied = try await router.apply(spec)
                #expect(applied.fullRouteTable)
                #expect(!applied.configChanged)
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "acme")]).status == 200)
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "globex")]).status == 200)
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "stray")]).status == 404)
            }
        }

        /// Bodies that are not a whole, well-formed update change nothing and say why.
        @Test func malformedOrTruncatedUpdatesAreRefusedAndChangeNothing() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                let spec = try RealNginxTests.NginxRouterTests.spec(prefix: prefix, backends: backends, generation: 3)
                _ = try await router.apply(spec)
                let whole = String(decoding: NginxRoutes.full(["other": "0 0 0 i_i_2D1__web"], generation: 4).body, as: UTF8.self)
                let cases: [(body: String, status: Int, says: String)] = [
                    (String(whole.dropLast(4)), 400, "truncated"),
                    ("peer-routes 2\nfull\ngeneration 4\nend\n", 400, "malformed header"),
                    ("peer-routes 1\ndelta\ngeneration 4\nend\n", 400, "malformed header"),
                    ("peer-routes 1\nfull\ngeneration 4\ns other 0 0 0 x\nx other\nend\n", 400, "line 5: malformed"),
                    ("peer-routes 1\ndelta 2\ngeneration 4\nd acme\nend\n", 409, "3"),
                ]
                for entry in cases {
                    let reply = try await TestSupport.request(spec.controlListen, method: .POST, path: "/routes", headers: [("X-Peer-Control", router.controlToken)], body: Array(entry.body.utf8))
                    #expect(reply.status == entry.status, "\(entry.body)")
                    #expect(reply.bodyText.contains(entry.says), "\(reply.bodyText)")
                }
                let get = try await TestSupport.request(spec.controlListen, path: "/routes", headers: [("X-Peer-Control", router.controlToken)])
                #expect(get.status == 405)
                // Any local user reaches the loopback port: without the router's secret, nothing.
                for secret in [nil, String(router.controlToken.dropLast()) + "x"] {
                    let headers = secret.map { [("X-Peer-Control", $0)] } ?? []
                    let refused = try await TestSupport.request(spec.controlListen, method: .POST, path: "/routes", headers: headers, body: Array(whole.utf8))
                    #expect(refused.status == 403)
                }
                #expect(try await TestSupport.get(spec.controlListen, path: "/generation").bodyText == "3\n")
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "acme")]).status == 200)
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "other")]).status == 404)
            }
        }

        /// A table that does not fit is refused with the reason, evicts no route, and the
        /// next apply (that fits) sends the whole table again.
        @Test func aTableThatDoesNotFitIsRefusedAndTheNextApplyRecovers() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                var spec = try RealNginxTests.NginxRouterTests.spec(prefix: prefix, backends: backends, generation: 1)
                spec.routeTableMiB = 1
                _ = try await router.apply(spec)
                let small = spec.tenants
                spec.generation = 2
                spec.tenants += (0..<20_000).map { TenantRoute(id: "tenant-\($0)", instance: "i-1", components: ["web"]) }
                do throws(RouterError) {
                    _ = try await router.apply(spec)
                    Issue.record("20,000 tenants fit in a 1 MiB route table")
                } catch .routesNotApplied(let generation, let reason) {
                    #expect(generation == 2)
                    #expect(reason.contains("HTTP 507") && reason.contains("route table full"), "\(reason)")
                } catch {
                    Issue.record("unexpected error \(error)")
                }
                #expect(await router.status.lastError?.contains("route table full") == true)
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "acme")]).status == 200)

                spec.generation = 3
                spec.tenants = small
                let applied = try await router.apply(spec)
                #expect(applied.fullRouteTable)
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "acme")]).status == 200)
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "tenant-1")]).status == 404)
            }
        }
    }
}
