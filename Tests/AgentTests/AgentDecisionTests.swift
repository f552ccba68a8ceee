import ChildProcesses
import Foundation
import Testing

@testable import Agent

/// The pure parts: no process, no socket, no clock beyond instants built by the test.
struct AgentDecisionTests {
    static func entry(_ name: String, port: Int = 8080, tenants: Set<String> = ["t1"], arguments: [String] = []) -> DesiredComponent {
        DesiredComponent(spec: ComponentSpec(name: name, command: "/bin/app", arguments: arguments, port: port), tenants: tenants)
    }

    @Test func backoffDoublesFromTheInitialDelayUpToTheMaximum() {
        let policy = RestartPolicy(backoffInitial: .milliseconds(200), backoffMax: .seconds(1), crashLoopLimit: 10, crashWindow: .seconds(60))
        #expect((1...5).map { policy.backoff(forCrash: $0) } == [.milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
    }

    @Test func theCrashAtTheLimitWithinTheWindowIsACrashLoopAndOlderCrashesAreForgotten() {
        let policy = RestartPolicy(backoffInitial: .milliseconds(200), backoffMax: .seconds(30), crashLoopLimit: 3, crashWindow: .seconds(60))
        let start = ContinuousClock.now
        var history = RestartPolicy.History()
        #expect(policy.decide(afterCrashAt: start, history: &history) == .restart(after: .milliseconds(200)))
        #expect(policy.decide(afterCrashAt: start + .seconds(1), history: &history) == .restart(after: .milliseconds(400)))
        // The first crash has left the window: this is the second crash in it, not the third.
        #expect(policy.decide(afterCrashAt: start + .milliseconds(60_500), history: &history) == .restart(after: .milliseconds(400)))
        #expect(policy.decide(afterCrashAt: start + .milliseconds(60_600), history: &history) == .crashLoop)
    }

    @Test func planStartsNewStopsDroppedRestartsChangedSpecsAndUpdatesTenantsInPlace() {
        let current: [String: DesiredComponent] = [
            "same": Self.entry("same"),
            "retenanted": Self.entry("retenanted", tenants: ["t1"]),
            "reargued": Self.entry("reargued", arguments: ["--old"]),
            "dropped": Self.entry("dropped"),
        ]
        var resignalled = Self.entry("same")
        resignalled.spec.reloadSignal = 10
        let desired = DesiredComponents([
            resignalled,
            Self.entry("retenanted", tenants: ["t1", "t2"]),
            Self.entry("reargued", arguments: ["--new"]),
            Self.entry("new"),
        ])
        let plan = ReconcilePlan.make(current: current, desired: desired)
        #expect(plan.start.map(\.spec.name) == ["new"])
        #expect(plan.stop == ["dropped"])
        #expect(plan.restart.map(\.spec.name) == ["reargued"])
        #expect(plan.update.map(\.spec.name) == ["retenanted", "same"])
        #expect(plan.rejected.isEmpty)
    }

    @Test func theSameDesiredStateTwiceIsAnEmptyPlan() {
        let desired = DesiredComponents([Self.entry("a"), Self.entry("b", tenants: [])])
        #expect(ReconcilePlan.make(current: desired.components, desired: desired).isEmpty)
    }

    @Test func planRefusesMalformedEntriesWithASpecificReason() {
        var badPort = Self.entry("bad-port", port: 70000)
        badPort.spec.port = 70000
        var relative = Self.entry("relative")
        relative.spec.command = "app"
        var badPath = Self.entry("bad-path")
        badPath.spec.healthPath = "/health z"
        let desired = DesiredComponents(components: [
            "bad-port": badPort, "relative": relative, "bad-path": badPath,
            "../escape": Self.entry("../escape"),
            "mismatch": Self.entry("other"),
            "bad-tenant": Self.entry("bad-tenant", tenants: ["Not_A_Label"]),
        ])
        let plan = ReconcilePlan.make(current: [:], desired: desired)
        #expect(plan.start.isEmpty)
        #expect(plan.rejected["bad-port"]?.message.contains("port must be 1...65535") == true)
        #expect(plan.rejected["relative"]?.message.contains("absolute path") == true)
        #expect(plan.rejected["bad-path"]?.message.contains("healthPath") == true)
        #expect(plan.rejected["../escape"]?.message.contains("component name") == true)
        #expect(plan.rejected["mismatch"]?.message.contains("differs from its spec name") == true)
        #expect(plan.rejected["bad-tenant"]?.message.contains("DNS label") == true)
    }

    @Test func planRefusesComponentsBeyondTheLimitByNameOrder() {
        let count = AgentLimits.componentsMax + 2
        let desired = DesiredComponents((0..<count).map { Self.entry(String(format: "c%03d", $0)) })
        let plan = ReconcilePlan.make(current: [:], desired: desired)
        #expect(plan.start.count == AgentLimits.componentsMax)
        #expect(Set(plan.rejected.keys) == [String(format: "c%03d", count - 2), String(format: "c%03d", count - 1)])
    }

    @Test func statFieldsAreCountedAfterTheLastParenthesisOfTheCommandName() throws {
        // A command name holding spaces and parentheses must not shift the fields.
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194304 100 0 0 0 731 42 0 0 20 0 1 0 987654 1000 200 0 0 0\n"
        let stat = try ProcFS.parseStat(line)
        #expect(stat == ProcFS.Stat(state: "S", processGroup: 4242, userTicks: 731, systemTicks: 42, startTimeTicks: 987654))
        #expect(throws: ProcFS.ParseError.self) { try ProcFS.parseStat("4242 (a) S 1 2 3") }
        #expect(throws: ProcFS.ParseError.self) { try ProcFS.parseStat("4242 (a) S 1 x 4242 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 9 0 0") }
    }

    @Test func ownStatMatchesWhatTheKernelReports() throws {
        let stat = try #require(ProcFS.stat(pid: getpid()))
        #expect(stat.processGroup == getpgrp())
        #expect(stat.startTimeTicks > 0)
        #expect((ProcFS.residentBytes(pid: getpid()) ?? 0) > 0)
    }

    @Test func residentBytesComeFromTheVmRSSLineInKilobytes() throws {
        #expect(try ProcFS.parseResidentBytes("Name:\tx\nVmRSS:\t    2048 kB\nThreads: 1\n") == 2048 * 1024)
        #expect(throws: ProcFS.ParseError.self) { try ProcFS.parseResidentBytes("VmRSS:\t 12 MB\n") }
        #expect(throws: ProcFS.ParseError.self) { try ProcFS.parseResidentBytes("Name:\tzombie\n") }
    }

    @Test func cpuPermilleIsTicksOverElapsedTime() {
        var sampler = CPUSampler()
        let start = ContinuousClock.now
        #expect(sampler.sample(ticks: 1000, at: start, ticksPerSecond: 100) == nil)
        // 50 ticks = 500 ms of CPU in 1 s: half a core.
        #expect(sampler.sample(ticks: 1050, at: start + .seconds(1), ticksPerSecond: 100) == 500)
        // A counter going backwards is another process: no sample.
        #expect(sampler.sample(ticks: 10, at: start + .seconds(2), ticksPerSecond: 100) == nil)
    }

    @Test func onlyA2xxStatusIsHealthy() {
        #expect(HealthProbe.Outcome.status(200).isSuccess)
        #expect(HealthProbe.Outcome.status(204).isSuccess)
        #expect(HealthProbe.Outcome.status(299).isSuccess)
        #expect(!HealthProbe.Outcome.status(199).isSuccess)
        #expect(!HealthProbe.Outcome.status(301).isSuccess)
        #expect(!HealthProbe.Outcome.status(404).isSuccess)
        #expect(!HealthProbe.Outcome.failed("connect refused").isSuccess)
        #expect(!HealthProbe.Outcome.status(500).isSuccess)
    }

    @Test func aProbeToAClosedPortFailsWithinTheTimeout() {
        let started = ContinuousClock.now
        // Port 1 on loopback: nothing listens (connection refused).
        let outcome = HealthProbe.run([.init(port: 1, path: "/healthz", tenant: nil)], timeout: .seconds(2))
        #expect(!outcome[0].isSuccess)
        #expect(ContinuousClock.now - started < .seconds(2))
    }

    @Test func theTenantFileListsOneTenantPerLineSorted() {
        #expect(String(decoding: TenantFile.render(["b", "a", "c-1"]), as: UTF8.self) == "a\nb\nc-1\n")
        #expect(TenantFile.render([]).isEmpty)
    }

    @Test func aStateFileThatCouldSignalTheWrongProcessesIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/components.json"
        func refused(_ entry: StateFile.Entry) throws -> Bool {
            try StateFile(components: [entry]).write(path)
            do { _ = try StateFile.read(path); return false } catch { return true }
        }
        #expect(try refused(.init(name: "a", pid: 1, pgid: 1, startTimeTicks: 5, stopTimeoutMs: 100)))
        #expect(try refused(.init(name: "a", pid: 4000, pgid: 4001, startTimeTicks: 5, stopTimeoutMs: 100)))
        #expect(try refused(.init(name: "../a", pid: 4000, pgid: 4000, startTimeTicks: 5, stopTimeoutMs: 100)))
        #expect(try !refused(.init(name: "a", pid: 4000, pgid: 4000, startTimeTicks: 5, stopTimeoutMs: 100)))
        _ = try directory.write("components.json", "{not json")
        #expect(throws: StateFile.Invalid.self) { try StateFile.read(path) }
    }
}
