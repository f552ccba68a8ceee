import PeerConfig
import Testing

/// `providers:` (docs/configuration.md §providers): defaults, several providers by name, and
/// every refusal with the key path and the reason.
@Suite struct ProviderConfigTests {
    @Test func noneMeansNoProviderAndAProcessProviderTakesItsDefaults() throws {
        #expect(try parse(validYAML).providers.isEmpty)
        let p = try #require(try parse(validYAML + "\nproviders:\n  - kind: process\n").providers.first)
        #expect(p.name == "process" && p.kind == .process && p.host == "127.0.0.1" && p.ports == 32000...32999 && p.addTimeoutMs == 300_000)
        #expect(p.directory.hasSuffix("/instances/process") && p.command == nil)
    }

    @Test func severalProvidersByNameTheFirstBeingTheDefault() throws {
        let yaml = validYAML + """

            providers:
              - {name: local, kind: process, ports: 40000-40099}
              - {name: containers, kind: docker, image: "peer:test", ports: 40100-40199}
              - name: cloud
                kind: exec
                create: [/opt/c]
                destroy: [/opt/d, --force]
                list: [/opt/l]

            """
        let providers = try parse(yaml).providers
        #expect(providers.map(\.name) == ["local", "containers", "cloud"])
        #expect(providers[1].kind == .docker && providers[1].image == "peer:test" && providers[1].socket == "/var/run/docker.sock")
        #expect(providers[2].create == ["/opt/c"] && providers[2].destroy == ["/opt/d", "--force"] && providers[2].list == ["/opt/l"])
        #expect(Set(providers.map(\.directory)).count == 3, "each provider keeps its own directory")
    }

    @Test func badValuesAreRefusedWithTheirKey() {
        func refused(_ items: String, _ keyPath: String, _ reason: String, line: Int? = nil) {
            expectRefused(validYAML + "\nproviders:\n" + items, keyPath: keyPath, reason: reason, line: line)
        }
        refused("  - kind: cloud\n", "providers[0].kind", "must be process, docker or exec, got 'cloud'", line: 19)
        refused("  - ports: 40000-40010\n", "providers[0].kind", "missing required key 'kind'")
        refused("  - kind: process\n    ports: 40000-30000\n", "providers[0].ports", "must be LOW-HIGH with 1024 <= LOW < HIGH <= 65535, got '40000-30000'", line: 20)
        refused("  - kind: process\n    addTimeoutMs: 5\n", "providers[0].addTimeoutMs", "5 is out of range 10000-86400000", line: 20)
        refused("  - kind: exec\n    create: [/c]\n    list: [/l]\n", "providers[0]", "kind exec needs `destroy` (the script's argv)")
        refused("  - kind: process\n    command: []\n", "providers[0].command", "must hold 1-64 words, got 0", line: 20)
        refused("  - kind: process\n    host: instances.example\n", "providers[0].host",
                "must be an IP address (routers connect to the new instances' components by address), got 'instances.example'", line: 20)
        refused("  - kind: process\n    sockets: /s\n", "providers[0].sockets", "unknown key 'sockets' (did you mean 'socket'?)", line: 20)
        refused("  - kind: process\n    name: Big\n", "providers[0].name", "must be 1-63 of a-z, 0-9 and '-', got 'Big'", line: 20)
        refused("  - {kind: process, ports: 40000-40099}\n  - {kind: process, ports: 41000-41099}\n", "providers[1]",
                "name 'process' is used twice (process and process); give each provider its own name")
        refused("  - {name: a, kind: process, ports: 40000-40099}\n  - {name: b, kind: docker, ports: 40050-40149}\n", "providers[1].ports",
                "40050-40149 overlaps provider 'a' (40000-40099) on 127.0.0.1")
        refused("  - {name: a, kind: process, directory: /x}\n  - {name: b, kind: process, ports: 41000-41099, directory: /x}\n", "providers[1].directory",
                "/x is provider 'a's directory too; each provider keeps its own")
        expectRefused(validYAML + "\nproviders: []\n", keyPath: "providers", reason: "must list 1-16 providers, got 0", line: 18)
    }
}
