import PeerConfig
import Testing

/// `balancer:` and `events:` (docs/configuration.md §balancer): off without the section, the
/// documented defaults, and every refusal with its key path, line and reason.
@Suite struct BalancerConfigTests {
    @Test func noSectionMeansNoBalancerAndASectionTakesItsDefaults() throws {
        let none = try parse(validYAML)
        #expect(none.balancer == nil && none.events.retain == 10_000)
        let b = try #require(try parse(validYAML + "\nbalancer:\n  instanceRequestsPerSecond: 400\n").balancer)
        #expect(b.enabled && b.instanceRequestsPerSecond == 400 && b.intervalMs == 1_000)
        #expect(b.highWaterPercent == 80 && b.targetPercent == 60 && b.lowWaterPercent == 20)
        #expect(b.overloadWindowMs == 10_000 && b.underloadWindowMs == 60_000 && b.cooldownMs == 30_000 && b.tenantCooldownMs == 300_000)
        #expect(b.minInstances == 1 && b.maxInstances == 5 && b.dedicatedSharePercent == 50 && b.provider == nil)
        #expect(b.instanceCpuPermille == 0 && b.p99HighMs == 0 && b.errorPercentHigh == 0)
    }

    @Test func everyKeyIsRead() throws {
        let yaml = validYAML + """

            providers:
              - {name: local, kind: process, ports: 40000-40099}
              - {name: spare, kind: process, ports: 41000-41099}
            balancer:
              enabled: false
              intervalMs: 500
              instanceRequestsPerSecond: 250
              instanceCpuPermille: 2000
              p99HighMs: 300
              errorPercentHigh: 5
              highWaterPercent: 90
              targetPercent: 70
              lowWaterPercent: 10
              overloadWindowMs: 5000
              underloadWindowMs: 30000
              cooldownMs: 0
              tenantCooldownMs: 60000
              minInstances: 2
              maxInstances: 9
              dedicatedSharePercent: 40
              provider: spare
            events:
              retain: 500

            """
        let c = try parse(yaml)
        let b = try #require(c.balancer)
        #expect(!b.enabled && b.intervalMs == 500 && b.instanceRequestsPerSecond == 250 && b.instanceCpuPermille == 2000)
        #expect(b.p99HighMs == 300 && b.errorPercentHigh == 5 && b.highWaterPercent == 90 && b.targetPercent == 70 && b.lowWaterPercent == 10)
        #expect(b.overloadWindowMs == 5000 && b.underloadWindowMs == 30000 && b.cooldownMs == 0 && b.tenantCooldownMs == 60000)
        #expect(b.minInstances == 2 && b.maxInstances == 9 && b.dedicatedSharePercent == 40 && b.provider == "spare")
        #expect(c.events.retain == 500)
    }

    @Test func badValuesAreRefusedWithTheirKeyLineAndReason() {
        func refused(_ body: String, _ keyPath: String, _ reason: String, line: Int? = nil) {
            expectRefused(validYAML + "\nbalancer:\n" + body, keyPath: keyPath, reason: reason, line: line)
        }
        refused("  minInstances: 2\n", "balancer.instanceRequestsPerSecond", "missing required key 'instanceRequestsPerSecond'")
        refused("  instanceRequestsPerSecond: 0\n", "balancer.instanceRequestsPerSecond", "0 is out of range 1-10000000", line: 19)
        refused("  instanceRequestsPerSecond: 100\n  overloadWindowMs: 0\n", "balancer.overloadWindowMs", "0 is out of range 1000-86400000", line: 20)
        refused("  instanceRequestsPerSecond: 100\n  underloadWindowMs: -5\n", "balancer.underloadWindowMs", "-5 is out of range 1000-86400000", line: 20)
        refused("  instanceRequestsPerSecond: 100\n  targetPercent: 90\n", "balancer.targetPercent",
                "the marks must be ordered lowWaterPercent < targetPercent < highWaterPercent, got 20, 90, 80", line: 20)
        refused("  instanceRequestsPerSecond: 100\n  lowWaterPercent: 70\n  highWaterPercent: 60\n", "balancer.lowWaterPercent",
                "the marks must be ordered lowWaterPercent < targetPercent < highWaterPercent, got 70, 60, 60", line: 20)
        refused("  instanceRequestsPerSecond: 100\n  minInstances: 4\n  maxInstances: 3\n", "balancer.minInstances",
                "minInstances (4) is more than maxInstances (3)", line: 20)
        refused("  instanceRequestsPerSecond: 100\n  provider: cloud\n", "balancer.provider", "names provider 'cloud', but the file has no providers: section", line: 20)
        refused("  instanceRequestsPerSecond: 100\n  highWaterPercen: 3\n", "balancer.highWaterPercen", "unknown key 'highWaterPercen' (did you mean 'highWaterPercent'?)", line: 20)
        refused("  instanceRequestsPerSecond: 100\n  enabled: yes\n", "balancer.enabled", "must be true or false, got 'yes'", line: 20)
        expectRefused(validYAML + "\nevents:\n  retain: 5\n", keyPath: "events.retain", reason: "5 is out of range 100-100000", line: 19)
    }
}
