import Foundation
import PeerConfig
import Testing

/// `broker:` and `catalog:` (docs/configuration.md): defaults when absent, strict when present.
@Suite struct BrokerConfigTests {
    @Test func withoutTheSectionsAClusterGetsTheDefaultsAndTheDreamFaceCatalog() throws {
        let config = try parse(validYAML)
        #expect(config.broker.username == "broker")
        #expect(config.broker.passwordFile == "/etc/peer/tls/broker-password")
        #expect(config.broker.passwordHashFile == "/etc/peer/tls/broker-password.sha256")
        #expect(config.broker.tenantURL == "http://{tenant}.test-1.localhost")
        #expect(config.broker.url(ofTenant: "acme") == "http://acme.test-1.localhost")
        #expect(config.broker.instanceCapacity == 100 && config.broker.provisionTimeoutMs == 60_000 && config.broker.retryAfterSeconds == 1)
        #expect(config.catalog == .dreamFace)
        let development = try #require(config.catalog.plan(id: "dreamface-development"))
        #expect(development.service.id == "dreamface")
        #expect(development.plan.components == ["dfc", "dfx-dev"])
        #expect(config.catalog.plan(id: "dreamface-deployment")?.plan.components == ["dfx-dep"])
    }

    static let custom = validYAML + """

        broker:
          username: platform
          passwordHashFile: secrets/broker.sha256
          passwordFile: /root/broker-password
          tenantURL: "https://{tenant}.apps.example.com"
          instanceCapacity: 40
          provisionTimeoutMs: 5000
          retryAfterSeconds: 2
        catalog:
          services:
            - id: 5d1f0c2e-0d3a-4c55-9f7e-1c2b3a4d5e6f
              name: dreamface
              description: DreamFace
              tags: [dreamface]
              plans:
                - id: 9a8b7c6d-dev
                  name: development
                  description: Studio and compiler
                  components: [dfx-dev, dfc]
                  weight: 4
                  quotas: {requestsPerSecond: 50, connectionsMax: 100}
                  maintenanceVersion: 1.2.0
                - id: 9a8b7c6d-dep
                  name: deployment
                  description: Deployed apps
                  components: [dfx-dep]
                  free: false
        """

    @Test func aCustomBrokerAndCatalogAreReadWithPathsResolvedAgainstTheFile() throws {
        let config = try parse(Self.custom)
        #expect(config.broker.username == "platform")
        #expect(config.broker.passwordHashFile == "/etc/peer/secrets/broker.sha256")
        #expect(config.broker.passwordFile == "/root/broker-password")
        #expect(config.broker.url(ofTenant: "t1") == "https://t1.apps.example.com")
        #expect(config.broker.instanceCapacity == 40 && config.broker.provisionTimeoutMs == 5000 && config.broker.retryAfterSeconds == 2)
        let service = try #require(config.catalog.services.first)
        #expect(service.tags == ["dreamface"] && service.plans.count == 2)
        let dev = service.plans[0]
        #expect(dev.components == ["dfc", "dfx-dev"], "sorted")
        #expect(dev.weight == 4 && dev.requestsPerSecond == 50 && dev.connectionsMax == 100 && dev.free && dev.maintenanceVersion == "1.2.0")
        let dep = service.plans[1]
        #expect(dep.weight == 1 && dep.requestsPerSecond == 0 && !dep.free && dep.maintenanceVersion == nil)
    }

    @Test func brokerValuesAreCheckedWithTheirKeyPath() {
        func refused(_ old: String, _ new: String, _ keyPath: String, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
            expectRefused(Self.custom.replacingOccurrences(of: old, with: new), keyPath: keyPath, reason: reason, sourceLocation: sourceLocation)
        }
        refused("username: platform", "username: a:b", "broker.username", "must be 1-64 printable ASCII characters without spaces or ':'")
        refused("username: platform", "usernme: platform", "broker.usernme", "unknown key 'usernme' (did you mean 'username'?)")
        refused(#"tenantURL: "https://{tenant}.apps.example.com""#, "tenantURL: https://apps.example.com", "broker.tenantURL",
                "must contain {tenant} where the tenant id goes, e.g. https://{tenant}.apps.example.com")
        refused(#"tenantURL: "https://{tenant}.apps.example.com""#, #"tenantURL: "ftp://{tenant}""#, "broker.tenantURL",
                "must start with http:// or https://, got 'ftp://{tenant}'")
        refused("instanceCapacity: 40", "instanceCapacity: 0", "broker.instanceCapacity", "0 is out of range 1-1000000000")
        refused("provisionTimeoutMs: 5000", "provisionTimeoutMs: 10", "broker.provisionTimeoutMs", "10 is out of range 1000-86400000")
        refused("passwordFile: /root/broker-password", "passwordFile: secrets/broker.sha256", "broker.passwordFile",
                "must differ from passwordHashFile: the password and its hash are two files")
    }

    @Test func catalogValuesAreCheckedWithTheirKeyPath() {
        func refused(_ old: String, _ new: String, _ keyPath: String, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
            expectRefused(Self.custom.replacingOccurrences(of: old, with: new), keyPath: keyPath, reason: reason, sourceLocation: sourceLocation)
        }
        refused("id: 9a8b7c6d-dep", "id: 9a8b7c6d-dev", "catalog.services[0].plans[1].id",
                "duplicate plan id '9a8b7c6d-dev' (also catalog.services[0].plans[0]): plan ids are unique across the catalog")
        refused("name: deployment", "name: development", "catalog.services[0].plans[1].name",
                "duplicate plan name 'development' in this service (also catalog.services[0].plans[0])")
        refused("name: development", "name: dev studio", "catalog.services[0].plans[0].name",
                "invalid name 'dev studio': use 1-64 of A-Z, a-z, 0-9, '-', '.' (CLI-friendly)")
        refused("components: [dfx-dep]", "components: []", "catalog.services[0].plans[1].components", "must list 1 to 16 component types, got 0")
        refused("components: [dfx-dep]", "components: [dfx-dep, dfx-dep]", "catalog.services[0].plans[1].components[1]", "component type 'dfx-dep' is listed twice")
        refused("components: [dfx-dep]", "components: [DFX]", "catalog.services[0].plans[1].components[0]",
                "invalid component type 'DFX': use 1-64 of a-z, 0-9, '-', '.', '_'")
        refused("weight: 4", "weight: 0", "catalog.services[0].plans[0].weight", "0 is out of range 1-1000000")
        refused("free: false", "free: no", "catalog.services[0].plans[1].free", "must be true or false, got 'no'")
        refused("quotas: {requestsPerSecond: 50, connectionsMax: 100}", "quotas: {rps: 50}", "catalog.services[0].plans[0].quotas.rps", "unknown key 'rps'")
        refused("description: Deployed apps", "weight: 3", "catalog.services[0].plans[1].description", "missing required key 'description'")
    }
}
