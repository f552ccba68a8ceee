import Foundation
import Testing
@testable import Router

extension RealNginxTests {
    /// The renderer and nginx at scale: 20,000 tenants with three components each must render,
    /// pass `nginx -t` (map hashes sized right) and go live. `PEER_ROUTER_SCALE_TENANTS` raises
    /// it (up to `RouterLimits.tenantsMax`, 250,000; 100,000 took 69 MB, live in 8.7 s in a debug build); the
    /// default keeps the suite's shared CPU for the tests running beside it.
    @Suite struct NginxRouterScaleTests {
        @Test func maximalTenantCountRendersAndGoesLive() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter(confirmTimeout: .seconds(30)) { router, prefix in
                var spec = try RealNginxTests.NginxRouterTests.spec(prefix: prefix, backends: backends, generation: 1)
                let instances = (0..<64).map { "instance-\($0)" }
                let components = ["dfx-dev", "dfx-dep", "dfc"]
                spec.upstreams = instances.flatMap { instance in
                    components.map { Upstream(instance: instance, component: $0, address: backends[0].address) }
                }
                let count = ProcessInfo.processInfo.environment["PEER_ROUTER_SCALE_TENANTS"].flatMap(Int.init)
                    .map { min(max($0, 1), RouterLimits.tenantsMax) } ?? 20_000
                spec.tenants = (0..<count).map { index in
                    TenantRoute(
                        id: "tenant-\(String(repeating: "x", count: 40))-\(index)",
                        instance: instances[index % instances.count],
                        components: index % 2 == 0 ? components : components.reversed(),
                        requestsPerSecond: UInt32(index % RouterLimits.distinctRequestRatesMax + 1) * 10,
                        connectionsMax: UInt32(index % 4 + 1) * 100
                    )
                }
                let applied = try await router.apply(spec)
                print("scale: \(spec.tenants.count) tenants, \(applied.configBytes) bytes, live in \(applied.confirmDuration)")
                let last = spec.tenants[spec.tenants.count - 1]
                let reply = try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", last.id), ("X-Component", "dfc")])
                #expect(reply.status == 200 && reply.bodyText.hasPrefix("i-1/web tenant=\(last.id) "), "\(reply.status) \(reply.bodyText)")
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "tenant-unknown")]).status == 404)
            }
        }
    }
}
