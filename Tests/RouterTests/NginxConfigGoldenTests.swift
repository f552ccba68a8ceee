import Foundation
import Testing
@testable import Router

/// The rendered config, byte for byte, for three specs a reviewer can read instead of the
/// renderer. `PEER_UPDATE_GOLDEN=1 swift test --filter NginxConfigGoldenTests` rewrites the
/// files in the source tree from the current renderer (then review the diff).
@Suite struct NginxConfigGoldenTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    @Test func emptySpecWithNoTenantsMatchesGolden() throws {
        try expectGolden("empty", GoldenSpecs.empty())
    }

    @Test func twoInstancesWithSeveralTenantsAndComponentsMatchGolden() throws {
        try expectGolden("two-instances", GoldenSpecs.twoInstances())
    }

    @Test func limitsAuthAndDomainMatchGolden() throws {
        try expectGolden("limits-auth-domain", GoldenSpecs.limitsAuthDomain())
    }

    @Test func orderOfInputArraysDoesNotChangeTheOutput() throws {
        let spec = GoldenSpecs.limitsAuthDomain()
        let expected = try NginxConfig.render(spec)
        var generator = SplitMix64(seed: 0x5eed)
        for _ in 0..<20 {
            var shuffled = spec
            shuffled.tenants.shuffle(using: &generator)
            shuffled.upstreams.shuffle(using: &generator)
            #expect(try NginxConfig.render(shuffled) == expected)
        }
    }

    @Test func fileStartsWithTheGenerationComment() throws {
        let text = try NginxConfig.render(GoldenSpecs.twoInstances())
        #expect(text.hasPrefix("# generation 42, rendered by peer; do not edit\n"))
    }

    @Test func componentOrderChoosesTheDefaultComponent() throws {
        var spec = GoldenSpecs.twoInstances()
        let index = try #require(spec.tenants.firstIndex { $0.id == "acme" })
        #expect(NginxRoutes.table(spec)["acme"] == "0 0 0 i-1/dfx-dev@10.0.0.8:8000")
        spec.tenants[index].components.reverse()
        #expect(NginxRoutes.table(spec)["acme"] == "0 0 0 i-1/dfx-dep@10.0.0.8:8001")
    }

    /// The route table of the two-instances spec as nginx receives it at a start.
    @Test func fullRouteTableMatchesGolden() throws {
        let spec = GoldenSpecs.twoInstances()
        try spec.validate()
        let body = String(decoding: NginxRoutes.full(NginxRoutes.table(spec), generation: spec.generation).body, as: UTF8.self)
        try expectGoldenText("two-instances.routes", body)
    }

    /// Creating, deleting, moving a tenant or changing its plan (within the plans' rates)
    /// changes the route table only: the rendered config stays byte for byte the same, which
    /// is what lets the router skip the reload.
    @Test func tenantChangesLeaveTheConfigUnchanged() throws {
        let spec = GoldenSpecs.limitsAuthDomain()
        let config = try NginxConfig.render(spec)
        var changed = spec
        changed.tenants.removeFirst()
        changed.tenants[0].instance = changed.tenants[0].instance == "i-1" ? "i-2" : "i-1"
        changed.tenants[0].components = ["web"]
        changed.tenants[1].requestsPerSecond = spec.requestRates.last ?? 0
        changed.tenants.append(TenantRoute(id: "t-new", instance: "i-1", components: ["web", "api"], connectionsMax: 10, requiresToken: true))
        try changed.validate()
        #expect(try NginxConfig.render(changed) == config)
        #expect(NginxRoutes.table(changed) != NginxRoutes.table(spec))
    }

    /// A move sets exactly the moved tenant's entries; a delete deletes exactly its entries.
    @Test func deltaHoldsOnlyTheChangedEntries() throws {
        let spec = GoldenSpecs.twoInstances()
        let before = NginxRoutes.table(spec)
        var moved = spec
        let index = try #require(moved.tenants.firstIndex { $0.id == "acme" })
        moved.tenants[index].instance = "i-2"
        moved.tenants.removeAll { $0.id == "globex" }
        let after = NginxRoutes.table(moved)
        let push = NginxRoutes.delta(from: before, base: 42, to: after, generation: 43)
        #expect(push.base == 42)
        #expect(push.sets.map(\.key) == ["acme", "acme|dfx-dep", "acme|dfx-dev"])
        #expect(push.sets.allSatisfy { $0.value.contains("i-2/") })
        #expect(push.deletes == before.keys.filter { $0 == "globex" || $0.hasPrefix("globex|") }.sorted())
        #expect(!push.deletes.isEmpty)
        let text = String(decoding: push.body, as: UTF8.self)
        #expect(text.hasPrefix("peer-routes 1\ndelta 42\ngeneration 43\ns acme "))
        #expect(text.hasSuffix("end\n"))
        #expect(NginxRoutes.delta(from: after, base: 43, to: after, generation: 44).sets.isEmpty)
    }

    private func expectGolden(_ name: String, _ spec: RouterSpec) throws {
        try expectGoldenText(name + ".conf", try NginxConfig.render(spec))
    }

    private func expectGoldenText(_ file: String, _ rendered: String) throws {
        let name = String(file[..<file.lastIndex(of: ".")!])
        let ext = String(file[file.index(after: file.lastIndex(of: ".")!)...])
        if ProcessInfo.processInfo.environment["PEER_UPDATE_GOLDEN"] == "1" {
            let url = Self.goldenDirectory.appendingPathComponent(file)
            try rendered.write(to: url, atomically: true, encoding: .utf8)
            print("updated golden file \(url.path)")
            return
        }
        let url = try #require(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Golden"), "golden file \(file) missing: run with PEER_UPDATE_GOLDEN=1")
        let golden = try String(contentsOf: url, encoding: .utf8)
        #expect(rendered == golden, "rendered text differs from Golden/\(file): \(firstDifference(rendered, golden))")
    }

    private func firstDifference(_ a: String, _ b: String) -> String {
        let linesA = a.components(separatedBy: "\n"), linesB = b.components(separatedBy: "\n")
        for index in 0..<max(linesA.count, linesB.count) {
            let lineA = index < linesA.count ? linesA[index] : "<end>"
            let lineB = index < linesB.count ? linesB[index] : "<end>"
            if lineA != lineB { return "line \(index + 1): rendered \(String(reflecting: lineA)), golden \(String(reflecting: lineB))" }
        }
        return "none"
    }
}

/// The specs behind the golden files (also rendered with a temp prefix and checked by
/// `nginx -t` in `NginxRouterTests`).
enum GoldenSpecs {
    /// A fixed stand-in for the router's random control secret.
    static let controlToken = "0123456789abcdef0123456789abcdef"

    static func empty(prefix: String = "/var/lib/peer/router") -> RouterSpec {
        var spec = RouterSpec(generation: 1, listen: "127.0.0.1:7301", controlListen: "127.0.0.1:7302", prefix: prefix)
        spec.controlToken = controlToken
        return spec
    }

    /// Two instances, three components each; tenants named like nginx map keywords too.
    static func twoInstances(prefix: String = "/var/lib/peer/router") -> RouterSpec {
        var upstreams: [Upstream] = []
        for (instance, base) in [("i-1", 8000), ("i-2", 9000)] {
            for (offset, component) in ["dfx-dev", "dfx-dep", "dfc"].enumerated() {
                upstreams.append(Upstream(instance: instance, component: component, address: "10.0.0.\(base / 1000):\(base + offset)"))
            }
        }
        var spec = RouterSpec(
            generation: 42,
            listen: "127.0.0.1:7301",
            controlListen: "127.0.0.1:7302",
            prefix: prefix,
            upstreams: upstreams,
            tenants: [
                TenantRoute(id: "acme", instance: "i-1", components: ["dfx-dev", "dfx-dep"]),
                TenantRoute(id: "globex", instance: "i-2", components: ["dfc", "dfx-dev", "dfx-dep"]),
                TenantRoute(id: "initech", instance: "i-1", components: ["dfc"]),
                TenantRoute(id: "default", instance: "i-2", components: ["dfx-dep"]),
                TenantRoute(id: "include", instance: "i-1", components: ["dfx-dev"]),
            ],
            statsAddress: "127.0.0.1:7303"
        )
        spec.controlToken = controlToken
        return spec
    }

    /// Rates, connection limits, token checks and host-name routing, on all addresses.
    /// The plans' rates (`requestRates`, `connectionLimits`) include values no tenant has yet.
    static func limitsAuthDomain(prefix: String = "/var/lib/peer/router", caFile: String = "/var/lib/peer/tls/ca.pem") -> RouterSpec {
        var spec = RouterSpec(
            generation: 7,
            listen: "0.0.0.0:7301",
            controlListen: "127.0.0.1:7302",
            prefix: prefix,
            workerProcesses: 2,
            domain: "apps.example.com",
            upstreams: [
                Upstream(instance: "i-1", component: "web", address: "127.0.0.1:8001"),
                Upstream(instance: "i-1", component: "api", address: "127.0.0.1:8002"),
                Upstream(instance: "i-2", component: "web", address: "127.0.0.2:8001"),
            ],
            tenants: [
                TenantRoute(id: "t-free", instance: "i-1", components: ["web", "api"]),
                TenantRoute(id: "t-slow", instance: "i-1", components: ["web"], requestsPerSecond: 5, connectionsMax: 10),
                TenantRoute(id: "t-busy", instance: "i-2", components: ["web"], requestsPerSecond: 100, connectionsMax: 10, requiresToken: true),
                TenantRoute(id: "t-also-slow", instance: "i-2", components: ["web"], requestsPerSecond: 5, requiresToken: true),
            ],
            statsAddress: "127.0.0.1:7303",
            authURL: "https://127.0.0.1:7201",
            authCAFile: caFile,
            authServerName: "peer-1.cluster.internal",
            authCacheSeconds: 10
        )
        spec.controlToken = controlToken
        spec.requestRates = [5, 100, 1000]
        spec.connectionLimits = [10, 50]
        return spec
    }
}

/// Seeded generator so a shuffle failure reproduces.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
