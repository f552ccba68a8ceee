import PeerConfig
import Testing

/// `provider:` (docs/configuration.md §provider): its defaults, and every refusal with the key
/// path and the reason.
@Suite struct ProviderConfigTests {
    @Test func absentMeansNoProviderAndAProcessProviderTakesItsDefaults() throws {
        #expect(try parse(validYAML).provider == nil)
        let p = try #require(try parse(validYAML + "\nprovider:\n  kind: process\n").provider)
        #expect(p.kind == .process && p.host == "127.0.0.1" && p.ports == 32000...32999 && p.addTimeoutMs == 300_000)
        #expect(p.directory.hasSuffix("/instances") && p.command == nil)
        let d = try #require(try parse(validYAML + "\nprovider:\n  kind: docker\n  image: peer:test\n  ports: 40000-40100\n").provider)
        #expect(d.kind == .docker && d.image == "peer:test" && d.socket == "/var/run/docker.sock" && d.ports == 40000...40100)
        let e = try #require(try parse(validYAML + "\nprovider:\n  kind: exec\n  create: [/opt/c]\n  destroy: [/opt/d, --force]\n  list: [/opt/l]\n").provider)
        #expect(e.create == ["/opt/c"] && e.destroy == ["/opt/d", "--force"] && e.list == ["/opt/l"])
    }

    @Test func badValuesAreRefusedWithTheirKey() {
        expectRefused(validYAML + "\nprovider:\n  kind: cloud\n", keyPath: "provider.kind", reason: "must be process, docker or exec, got 'cloud'", line: 19)
        expectRefused(validYAML + "\nprovider:\n  ports: 1-2\n", keyPath: "provider.kind", reason: "missing required key 'kind'", line: nil)
        expectRefused(
            validYAML + "\nprovider:\n  kind: process\n  ports: 40000-30000\n", keyPath: "provider.ports",
            reason: "must be LOW-HIGH with 1024 <= LOW < HIGH <= 65535, got '40000-30000'", line: 20)
        expectRefused(
            validYAML + "\nprovider:\n  kind: process\n  addTimeoutMs: 5\n", keyPath: "provider.addTimeoutMs",
            reason: "5 is out of range 10000-86400000", line: 20)
        expectRefused(validYAML + "\nprovider:\n  kind: exec\n  create: [/c]\n  list: [/l]\n", keyPath: "provider", reason: "kind exec needs `destroy` (the script's argv)", line: nil)
        expectRefused(
            validYAML + "\nprovider:\n  kind: process\n  host: instances.example\n", keyPath: "provider.host",
            reason: "must be an IP address (routers connect to the new instances' components by address), got 'instances.example'", line: 20)
        expectRefused(validYAML + "\nprovider:\n  kind: process\n  command: []\n", keyPath: "provider.command", reason: "must hold 1-64 words, got 0", line: 20)
        expectRefused(validYAML + "\nprovider:\n  kind: process\n  image: x\n  sockets: /s\n", keyPath: "provider.sockets", reason: "unknown key 'sockets' (did you mean 'socket'?)", line: 21)
    }
}
