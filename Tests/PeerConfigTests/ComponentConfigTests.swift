import Foundation
import PeerConfig
import Testing

/// `components:`, `router:` and the per-peer `components`/`routerControl` addresses (issue 8).
@Suite struct ComponentConfigTests {
    static let custom = validYAML
        .replacingOccurrences(of: "router: 127.0.0.1:7301", with: "router: 127.0.0.1:7301\n    components: 127.0.0.1:7400")
        .replacingOccurrences(of: "router: 127.0.0.1:7302", with: "router: 127.0.0.1:7302\n    components: 127.0.0.1:7410\n    routerControl: 127.0.0.1:7312")
        + """

        router:
          domain: Apps.Example.com
          workerProcesses: 2
          authCacheSeconds: 7
          moveTimeoutMs: 30000
        components:
          - name: dfx-dev
            command: tenant-app
            args: [--port, "{port}", --tenant-file, "{tenantFile}", --instance, "{instance}"]
            env: {LOG_LEVEL: info}
            portOffset: 0
            stopTimeoutMs: 5000
          - name: dfx-dep
            command: /opt/dreamface/bin/dfx-dep
            portOffset: 1
            healthPath: /status
            reloadSignal: USR1
          - name: dfc
            command: tenant-app
            portOffset: 2
        """

    @Test func withoutTheSectionsEveryDreamFaceComponentIsTheDemoAppAndTheRouterHasDefaults() throws {
        let config = try parse(validYAML)
        #expect(config.components.map(\.name) == ["dfx-dev", "dfx-dep", "dfc"])
        #expect(config.components.allSatisfy { $0.command == "tenant-app" && $0.healthPath == "/healthz" && $0.reloadSignal == "HUP" })
        #expect(config.components.map(\.portOffset) == [0, 1, 2])
        #expect(config.router == .defaults)
        // routerControl defaults to loopback at the router port + 1000; no components address.
        #expect(config.peers.map { $0.routerControlAddress?.description } == ["127.0.0.1:8301", "127.0.0.1:8302", "127.0.0.1:8303"])
        #expect(config.peers.allSatisfy { $0.componentAddress == nil })
    }

    @Test func customSectionsAreReadAndEachComponentGetsItsPortOnEachInstance() throws {
        let config = try parse(Self.custom)
        #expect(config.router.domain == "apps.example.com")
        #expect(config.router.workerProcesses == 2)
        #expect(config.router.authCacheSeconds == 7)
        #expect(config.router.moveTimeoutMs == 30_000)
        let dep = try #require(config.component(named: "dfx-dep"))
        #expect(dep.reloadSignal == "USR1" && dep.healthPath == "/status" && dep.stopTimeoutMs == 10_000)
        #expect(config.component(named: "dfx-dev")?.env == ["LOG_LEVEL": "info"])
        #expect(config.peers[0].address(of: dep)?.description == "127.0.0.1:7401")
        #expect(config.peers[1].address(of: dep)?.description == "127.0.0.1:7411")
        #expect(config.peers[1].routerControlAddress?.description == "127.0.0.1:7312")
        #expect(config.peers[2].address(of: dep) == nil)
    }

    @Test func badValuesAreRefusedWithTheirKeyPath() {
        func refused(_ old: String, _ new: String, _ keyPath: String, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
            precondition(Self.custom.contains(old), "'\(old)' is not in the test config")
            expectRefused(Self.custom.replacingOccurrences(of: old, with: new), keyPath: keyPath, reason: reason, sourceLocation: sourceLocation)
        }
        refused("portOffset: 1", "portOffset: 0", "components[1].portOffset",
                "portOffset 0 is already used by components[0]: two components cannot listen on one port")
        refused("name: dfc", "name: dfx-dev", "components[2].name", "duplicate component 'dfx-dev' (also components[0])")
        refused("name: dfc", "name: DFC", "components[2].name",
                "invalid component name 'DFC': use 1-64 of a-z, 0-9, '-', '.', '_', not starting with '-' or '.'")
        refused("command: /opt/dreamface/bin/dfx-dep", "command: bin/dfx-dep", "components[1].command",
                "must be an absolute path or a bare program name (looked up beside peer, then on PATH), got 'bin/dfx-dep'")
        refused("\"{instance}\"]", "\"{instanse}\"]", "components[0].args[5]",
                "unknown placeholder {instanse}; known: {instance} {component} {host} {port} {tenantFile}")
        refused("reloadSignal: USR1", "reloadSignal: KILL", "components[1].reloadSignal", "must be one of HUP, USR1, USR2, got 'KILL'")
        refused("healthPath: /status", "healthPath: status", "components[1].healthPath",
                "must be a path starting with '/' (at most 256 printable characters, no query), got 'status'")
        refused("stopTimeoutMs: 5000", "stopTimeoutMs: 5", "components[0].stopTimeoutMs", "5 is out of range 100-600000")
        refused("LOG_LEVEL: info", "1LOG: info", "components[0].env.1LOG",
                "invalid environment variable name '1LOG': use letters, digits and '_', not starting with a digit")
        refused("domain: Apps.Example.com", "domain: apps..example", "router.domain",
                "must be a DNS name (labels of a-z, 0-9, '-'; at most 200 characters), got 'apps..example'")
        refused("workerProcesses: 2", "workers: 2", "router.workers", "unknown key 'workers'")
        refused("routerControl: 127.0.0.1:7312", "routerControl: 10.0.0.2:7312", "peers[1].routerControl",
                "must be a loopback address (127.0.0.1 or [::1]): only the peer itself asks it")
        // A component port that another listener takes.
        refused("components: 127.0.0.1:7410", "components: 127.0.0.1:7300", "peers[1].components (dfx-dep, port offset 1)",
                "address 127.0.0.1:7301 is already used by peers[0].router")
    }

    @Test func aPlanNeedingAComponentTheCatalogDoesNotDescribeIsRefused() {
        let dfc = "\n  - name: dfc\n    command: tenant-app\n    portOffset: 2"
        precondition(Self.custom.hasSuffix(dfc))
        let yaml = String(Self.custom.dropLast(dfc.count))
        expectRefused(yaml, keyPath: "catalog.services[0].plans[0].components",
                      reason: "plan 'dreamface-development' needs component 'dfc', which `components` does not describe (known: dfx-dep, dfx-dev)")
    }
}
