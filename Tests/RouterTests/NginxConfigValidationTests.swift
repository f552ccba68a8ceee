import Testing
@testable import Router

/// Every string of a spec ends up in nginx.conf: anything that could carry nginx syntax, or
/// break a bound, is refused with the field named, and nothing is rendered.
@Suite struct NginxConfigValidationTests {
    /// Bytes that would end a token, a directive or a block, start a variable or a comment.
    static let injections = ["a\"b", "a'b", "a;b", "a b", "a{b", "a}b", "a$b", "a\nb", "a\\b", "a#b", "a\tb", "a\u{0}b"]

    @Test func controlSecretIsRequiredAndCannotInject() {
        for bad: String? in [nil, "short", String(repeating: "a", count: 129), "0123456789abcdef0123456789abcde\"", "0123456789abcdef 123456789abcdef0"] {
            var spec = Self.base()
            spec.controlToken = bad
            expectRefused(spec, field: "controlToken", String(describing: bad))
        }
    }

    @Test func injectionInTenantIdIsRefused() {
        for bad in Self.injections + ["", "A", "-a", "a.b", "a_b", String(repeating: "a", count: 64), "é"] {
            var spec = Self.base()
            spec.tenants[0].id = bad
            expectRefused(spec, field: "tenants[0].id", bad)
        }
    }

    @Test func injectionInComponentAndInstanceNamesIsRefused() {
        for bad in Self.injections + ["", String(repeating: "c", count: 65), "a/b", "a|b", "a:b"] {
            var spec = Self.base()
            spec.tenants[0].components = [bad]
            expectRefused(spec, field: "tenants[0].components[0]", bad)
            spec = Self.base()
            spec.upstreams[0].instance = bad
            expectRefused(spec, field: "upstreams[0].instance", bad)
            spec = Self.base()
            spec.upstreams[0].component = bad
            expectRefused(spec, field: "upstreams[0].component", bad)
            spec = Self.base()
            spec.tenants[0].instance = bad
            expectRefused(spec, field: "tenants[0].instance", bad)
        }
    }

    @Test func injectionInAddressesIsRefused() {
        let bad = Self.injections.map { "10.0.0.1\($0):80" } + [
            "10.0.0.1:80;", "10.0.0.1:80 backup", "10.0.0.1:80 weight=5", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536",
            "10.0.0.1:+80", "[::1:80", "[::1]x:80", "[::g]:80", ":80", "-h:80", "unix:/tmp/socket",
        ]
        for value in bad {
            var spec = Self.base()
            spec.upstreams[0].address = value
            expectRefused(spec, field: "upstreams[0].address", value)
            spec = Self.base()
            spec.listen = value
            expectRefused(spec, field: "listen", value)
            spec = Self.base()
            spec.statsAddress = value
            expectRefused(spec, field: "statsAddress", value)
        }
    }

    @Test func controlServerMustBeOnLoopbackAndItsOwnPort() {
        for value in ["0.0.0.0:7302", "10.0.0.1:7302", "localhost:7302", "[::1]:7302", "127.0.0.256:7302", "127.0.0:7302"] {
            var spec = Self.base()
            spec.controlListen = value
            expectRefused(spec, field: "controlListen", value)
        }
        var spec = Self.base()
        spec.controlListen = "127.0.0.2:7301"
        expectRefused(spec, field: "controlListen", "same port as listen")
    }

    @Test func pathsMustBeAbsoluteAndPlain() {
        for value in Self.injections.map({ "/var/lib/\($0)" }) + ["relative/dir", "/", "/var//lib", "/var/lib/", "/var/../etc", "/var/./lib", ""] {
            var spec = Self.base()
            spec.prefix = value
            expectRefused(spec, field: "prefix", value)
            spec = Self.withAuth()
            spec.authCAFile = value
            expectRefused(spec, field: "authCAFile", value)
        }
    }

    @Test func domainAndAuthSettingsAreChecked() {
        for value in Self.injections.map({ "apps\($0).example.com" }) + ["Apps.example.com", "a..b", ".a", "a.", "-a.b", "a-.b", ""] {
            var spec = Self.base()
            spec.domain = value
            expectRefused(spec, field: "domain", value)
        }
        for value in ["http://127.0.0.1:7201", "https://127.0.0.1:7201/v1", "https://", "https://h h:1", "https://h:1;", "https://h:99999"] {
            var spec = Self.withAuth()
            spec.authURL = value
            expectRefused(spec, field: "authURL", value)
        }
        for value in Self.injections.map({ "peer\($0)" }) {
            var spec = Self.withAuth()
            spec.authServerName = value
            expectRefused(spec, field: "authServerName", value)
        }
        var spec = Self.withAuth()
        spec.authURL = nil
        expectRefused(spec, field: "authURL", "missing while a tenant requires a token")
        spec = Self.withAuth()
        spec.authCAFile = nil
        expectRefused(spec, field: "authCAFile", "missing while a tenant requires a token")
        spec = Self.withAuth()
        spec.authCacheSeconds = 0
        expectRefused(spec, field: "authCacheSeconds", "0")
    }

    @Test func crossFieldRulesAreChecked() {
        var spec = Self.base()
        spec.tenants.append(spec.tenants[0])
        expectRefused(spec, field: "tenants[1].id", "duplicate tenant")
        spec = Self.base()
        spec.upstreams.append(Upstream(instance: "i-1", component: "web", address: "10.0.0.9:1"))
        expectRefused(spec, field: "upstreams[1]", "duplicate upstream")
        spec = Self.base()
        spec.tenants[0].components = ["web", "web"]
        expectRefused(spec, field: "tenants[0].components[1]", "duplicate component")
        spec = Self.base()
        spec.tenants[0].components = ["api"]
        expectRefused(spec, field: "tenants[0].components[0]", "no upstream")
        spec = Self.base()
        spec.tenants[0].components = []
        expectRefused(spec, field: "tenants[0].components", "no component")
        spec = Self.base()
        spec.workerProcesses = 0
        expectRefused(spec, field: "workerProcesses", "0")
    }

    @Test func distinctRatesAreBounded() throws {
        var spec = Self.base()
        spec.tenants = (0...RouterLimits.distinctRequestRatesMax).map { index in
            TenantRoute(id: "t\(index)", instance: "i-1", components: ["web"], requestsPerSecond: UInt32(index + 1))
        }
        expectRefused(spec, field: "tenants", "too many rates")
        spec.tenants.removeLast()
        _ = try NginxConfig.render(spec)
    }

    @Test func upstreamNamesAreInjectiveAndPlain() {
        let pairs = [("a_b", "c"), ("a", "b_c"), ("a", "_b_c"), ("a-b", "c"), ("a_2Db", "c"), ("A", "c"), ("a", "C"), ("a.b", "c"), ("a", "b.c")]
        let names = pairs.map { NginxNames.upstream(instance: $0.0, component: $0.1) }
        #expect(Set(names).count == pairs.count, "two pairs share an upstream name: \(names)")
        for name in names {
            #expect(name.utf8.allSatisfy { NginxNames.isAlphanumeric($0) || $0 == UInt8(ascii: "_") }, "\(name)")
        }
        #expect(NginxNames.upstream(instance: "i-1", component: "dfx-dev") == "i_i_2D1__dfx_2Ddev")
    }

    @Test func mapKeywordsAsTenantIdsAreEscaped() {
        #expect(NginxNames.mapKey("default") == "\"\\default\"")
        #expect(NginxNames.mapKey("include") == "\"\\include\"")
        #expect(NginxNames.mapKey("acme") == "\"acme\"")
    }

    private func expectRefused(_ spec: RouterSpec, field: String, _ value: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let text = try NginxConfig.render(spec)
            Issue.record("rendered \(text.utf8.count) bytes for \(String(reflecting: value)) in \(field)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.field == field, "value \(String(reflecting: value)): \(error)", sourceLocation: sourceLocation)
        }
    }

    static func base() -> RouterSpec {
        var spec = RouterSpec(
            generation: 1, listen: "127.0.0.1:7301", controlListen: "127.0.0.1:7302", prefix: "/var/lib/peer/router",
            upstreams: [Upstream(instance: "i-1", component: "web", address: "10.0.0.1:8000")],
            tenants: [TenantRoute(id: "acme", instance: "i-1", components: ["web"])]
        )
        spec.controlToken = GoldenSpecs.controlToken
        return spec
    }

    static func withAuth() -> RouterSpec {
        var spec = base()
        spec.tenants[0].requiresToken = true
        spec.authURL = "https://127.0.0.1:7201"
        spec.authCAFile = "/var/lib/peer/tls/ca.pem"
        return spec
    }
}
