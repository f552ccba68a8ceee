import ChildProcesses
import Foundation
import Testing

@testable import Agent

#if canImport(Glibc)
import Glibc
#endif

/// The agent against real child processes (python3 HTTP servers written by each test).
/// Serialized: each test starts processes and measures timings on a 2-core machine.
@Suite(.serialized)
struct AgentProcessTests {
    @Test func reconcileStartsComponentsWithTheirTenantFilesAndTheSameDesiredStateChangesNothing() async throws {
        let fixture = try Fixture()
        try await withAgent(fixture) { agent in
            let desired = DesiredComponents([
                try fixture.component("dfx-dev", tenants: ["t2", "t1"]),
                try fixture.component("dfc", tenants: ["t3"]),
            ])
            await agent.reconcile(desired)
            let devPid = try #require(agent.status(of: "dfx-dev")?.pid)
            let dfcPid = try #require(agent.status(of: "dfc")?.pid)
            #expect(fileText(fixture.agentDirectory + "/tenants/dfx-dev.txt") == "t1\nt2\n")
            #expect(fileText(fixture.agentDirectory + "/tenants/dfc.txt") == "t3\n")
            try await waitUntil("both components are healthy and confirm their tenants") {
                agent.readyTenants() == ["dfx-dev": ["t1", "t2"], "dfc": ["t3"]]
            }
            #expect(await agent.isServing(tenant: "t1", component: "dfx-dev"))
            #expect(await !agent.isServing(tenant: "t3", component: "dfx-dev"))
            // The component's stdout went to its log file.
            #expect(fileText(fixture.agentDirectory + "/logs/dfc.log")?.contains("component \(dfcPid) listening") == true)
            // The state file records both processes for crash recovery.
            let state = try #require(try StateFile.read(fixture.agentDirectory + "/components.json"))
            #expect(Set(state.components.map(\.pid)) == [devPid, dfcPid])

            var before = stat()
            #expect(stat(fixture.agentDirectory + "/tenants/dfx-dev.txt", &before) == 0)
            await agent.reconcile(desired)
            var after = stat()
            #expect(stat(fixture.agentDirectory + "/tenants/dfx-dev.txt", &after) == 0)
            #expect(after.st_ino == before.st_ino, "the tenant file was rewritten by an unchanged desired state")
            #expect(agent.status(of: "dfx-dev")?.pid == devPid)
            #expect(agent.status(of: "dfc")?.pid == dfcPid)
            #expect(agent.status().allSatisfy { $0.restarts == 0 && $0.state == .healthy })
        }
    }

    @Test func anAddedTenantIsWrittenSignalledAndServedWithoutARestart() async throws {
        let fixture = try Fixture()
        try await withAgent(fixture) { agent in
            var entry = try fixture.component("dfx-dep", tenants: ["alpha"])
            await agent.reconcile(DesiredComponents([entry]))
            try await waitUntil("alpha is served") { await agent.isServing(tenant: "alpha", component: "dfx-dep") }
            let pid = try #require(agent.status(of: "dfx-dep")?.pid)
            #expect(await !agent.isServing(tenant: "beta", component: "dfx-dep"), "beta is not in the tenant file yet")

            entry.tenants.insert("beta")
            await agent.reconcile(DesiredComponents([entry]))
            #expect(fileText(fixture.agentDirectory + "/tenants/dfx-dep.txt") == "alpha\nbeta\n")
            try await waitUntil("beta is served after the reload signal") { await agent.isServing(tenant: "beta", component: "dfx-dep") }
            try await waitUntil("the supervision loop confirms beta") { agent.readyTenants()["dfx-dep"]?.contains("beta") == true }
            let status = try #require(agent.status(of: "dfx-dep"))
            #expect(status.pid == pid, "the component was restarted instead of reloaded")
            #expect(status.restarts == 0)
            #expect(status.tenants == 2)

            entry.tenants = ["beta"]
            await agent.reconcile(DesiredComponents([entry]))
            #expect(await !agent.isServing(tenant: "alpha", component: "dfx-dep"), "a removed tenant must not be reported as served")
            #expect(agent.readyTenants()["dfx-dep"]?.contains("alpha") == false)
        }
    }

    @Test func aKilledComponentIsRestartedAndServesItsTenantsAgain() async throws {
        let fixture = try Fixture()
        try await withAgent(fixture) { agent in
            await agent.reconcile(DesiredComponents([try fixture.component("dfc", tenants: ["t1"])]))
            try await waitUntil("t1 is served") { await agent.isServing(tenant: "t1", component: "dfc") }
            let pid = try #require(agent.status(of: "dfc")?.pid)

            #expect(kill(pid, SIGKILL) == 0)
            try await waitUntil("dfc runs again under a new pid and is healthy") {
                let status = agent.status(of: "dfc")
                return status?.pid != nil && status?.pid != pid && status?.state == .healthy
            }
            let status = try #require(agent.status(of: "dfc"))
            #expect(status.restarts == 1)
            #expect(status.lastExit == "signal 9")
            try await waitUntil("t1 is served again") { await agent.isServing(tenant: "t1", component: "dfc") }
            #expect(!isAlive(pid))
        }
    }

    @Test func aComponentThatExitsAtOnceBacksOffWithGrowingDelaysThenStopsInACrashLoop() async throws {
        let fixture = try Fixture()
        let limit = 4
        let backoff = Duration.milliseconds(100)
        let spawns = fixture.directory.path + "/spawns"
        let crasher = DesiredComponent(
            spec: ComponentSpec(
                name: "crasher", command: "/bin/sh", arguments: ["-c", "date +%s%N >> \(spawns); exit 3"],
                port: try freePort(), stopTimeout: .seconds(1)),
            tenants: ["t1"])
        func spawnTimesNs() -> [Int64] {
            (fileText(spawns) ?? "").split(separator: "\n").compactMap { Int64($0) }
        }
        try await withAgent(fixture, fixture.configuration(crashLoopLimit: limit, backoffInitial: backoff)) { agent in
            await agent.reconcile(DesiredComponents([crasher]))
            try await waitUntil("crasher reaches crashLoop") { agent.status(of: "crasher")?.state == .crashLoop }
            let times = spawnTimesNs()
            #expect(times.count == limit, "spawned \(times.count) times, the limit is \(limit)")
            // The n-th crash waits backoff * 2^(n-1) before the next spawn.
            let gapsMs = zip(times.dropFirst(), times).map { ($0 - $1) / 1_000_000 }
            for (index, gap) in gapsMs.enumerated() {
                let minimum = Int64(100 << index)
                #expect(gap >= minimum, "gap \(index + 1) was \(gap) ms, backoff is \(minimum) ms")
            }
            #expect(gapsMs.last! > gapsMs.first!)
            let status = try #require(agent.status(of: "crasher"))
            #expect(status.lastExit == "exit code 3")
            #expect(status.restarts == limit - 1)
            #expect(status.pid == nil)
            // No more spawns: watch for twice the next backoff (800 ms) it would have used.
            #expect(try await !happensWithin(.milliseconds(1600)) { spawnTimesNs().count > limit })

            agent.reset(component: "crasher")
            try await waitUntil("a reset spawns it again") { spawnTimesNs().count > limit }
        }
    }

    /// The `SigIgn` mask of /proc/<pid>/status (bit n-1 set: signal n ignored).
    static func ignoredSignals(_ pid: Int32) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("SigIgn:") }) else { return nil }
        return UInt64(line.dropFirst("SigIgn:".count).trimmingCharacters(in: .whitespaces), radix: 16)
    }

    @Test func stopSendsSIGTERMToEachGroupAndSIGKILLsOneThatIgnoresIt() async throws {
        let fixture = try Fixture()
        // The peer ignores SIGTERM and SIGINT; children must not inherit ignored dispositions
        // (POSIX_SPAWN_SETSIGDEF). Shown with SIGUSR2, which no other test uses: ignoring
        // SIGTERM process-wide would leak into children other suites spawn meanwhile.
        let previous = signal(SIGUSR2, SIG_IGN)
        defer { signal(SIGUSR2, previous) }
        let agent = Agent(configuration: fixture.configuration())
        await agent.start()
        await agent.reconcile(DesiredComponents([
            try fixture.component("polite", tenants: ["t1"], onTerm: "exit"),
            try fixture.component("default", tenants: ["t1"], onTerm: "default"),
            try fixture.component("stubborn", tenants: ["t1"], onTerm: "ignore", stopTimeout: .milliseconds(300)),
        ]))
        try await waitUntil("all three are healthy (their signal handlers are installed)") {
            agent.status().count == 3 && agent.status().allSatisfy { $0.state == .healthy }
        }
        let pids = Dictionary(uniqueKeysWithValues: agent.status().map { ($0.name, $0.pid!) })
        for (name, pid) in pids {
            let ignored = try #require(Self.ignoredSignals(pid), "no SigIgn for \(name)")
            #expect(ignored & (1 << (UInt64(SIGUSR2) - 1)) == 0, "\(name) inherited the agent's ignored SIGUSR2 (SigIgn \(String(ignored, radix: 16)))")
        }

        let started = ContinuousClock.now
        await agent.stop()
        let took = ContinuousClock.now - started

        #expect(FileManager.default.fileExists(atPath: fixture.markerDirectory + "/sigterm-\(pids["polite"]!)"), "polite never saw SIGTERM")
        #expect(agent.status(of: "polite")?.lastExit == "exit code 0")
        #expect(agent.status(of: "default")?.lastExit == "signal 15")
        #expect(agent.status(of: "stubborn")?.lastExit == "signal 9")
        #expect(took >= .milliseconds(300), "stubborn was killed before its stop timeout")
        #expect(agent.status().allSatisfy { $0.state == .stopped && $0.pid == nil })
        for (name, pid) in pids {
            #expect(kill(pid, 0) == -1 && errno == ESRCH, "\(name) pid \(pid) still exists")
            #expect(processesInGroup(pid).isEmpty, "\(name)'s group \(pid) still has processes")
        }
        #expect(try StateFile.read(fixture.agentDirectory + "/components.json")?.components.isEmpty == true)
        fixture.remove()
    }

    @Test func startKillsAGroupLeftByAPreviousRunAndSparesAPidWhoseStartTimeDiffers() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let sleeper = [python3, "-c", "import signal, sys, time\nif sys.argv[1] == 'ignore': signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(1)"]
        // Three "previous run" components, each leading its own group as the agent's would.
        func spawnSleeper(_ mode: String) throws -> (pid: Int32, startTime: UInt64) {
            let pid = try ChildProcess.spawn(sleeper + [mode], .init(outputPath: "/dev/null", environment: [], searchPath: false))
            let stat = try #require(ProcFS.stat(pid: pid))
            return (pid, stat.startTimeTicks)
        }
        let polite = try spawnSleeper("polite")
        let stubborn = try spawnSleeper("ignore")
        let stranger = try spawnSleeper("polite")
        defer {
            // Whatever the outcome, end and reap what this test started.
            for pid in [polite.pid, stubborn.pid, stranger.pid] {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
        }
        // Python installs its SIGTERM disposition at start: wait until `stubborn` ignores it.
        try await waitUntil("stubborn ignores SIGTERM") {
            (fileText("/proc/\(stubborn.pid)/status") ?? "").split(separator: "\n").contains { line in
                line.hasPrefix("SigIgn:") && (UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) ?? 0) & (1 << (SIGTERM - 1)) != 0
            }
        }
        try AtomicFile.makeDirectory(fixture.agentDirectory)
        try StateFile(components: [
            .init(name: "dfx-dev", pid: polite.pid, pgid: polite.pid, startTimeTicks: polite.startTime, stopTimeoutMs: 5000),
            .init(name: "dfx-dep", pid: stubborn.pid, pgid: stubborn.pid, startTimeTicks: stubborn.startTime, stopTimeoutMs: 300),
            // Same pid alive, another start time: a reused pid, never to be signalled.
            .init(name: "dfc", pid: stranger.pid, pgid: stranger.pid, startTimeTicks: stranger.startTime + 1, stopTimeoutMs: 300),
        ]).write(fixture.agentDirectory + "/components.json")

        let agent = Agent(configuration: fixture.configuration())
        await agent.start()
        await agent.stop()

        func exitOf(_ pid: Int32) -> String {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == 0 { return "running" }
            let signal = status & 0x7F
            return signal == 0 ? "exit code \((status >> 8) & 0xFF)" : "signal \(signal)"
        }
        #expect(exitOf(polite.pid) == "signal \(SIGTERM)")
        #expect(exitOf(stubborn.pid) == "signal \(SIGKILL)")
        #expect(exitOf(stranger.pid) == "running")
        #expect(isAlive(stranger.pid))
        #expect(try StateFile.read(fixture.agentDirectory + "/components.json")?.components.isEmpty == true)
    }

    @Test func aBusyComponentShowsCPUAndMemorySamples() async throws {
        let fixture = try Fixture()
        try await withAgent(fixture) { agent in
            let busy = DesiredComponent(
                spec: ComponentSpec(name: "busy", command: python3, arguments: ["-c", "while True: pass"], port: try freePort(), stopTimeout: .seconds(2)),
                tenants: [])
            await agent.reconcile(DesiredComponents([busy]))
            try await waitUntil("a CPU sample above zero") { (agent.status(of: "busy")?.cpuPermille ?? 0) > 0 }
            let status = try #require(agent.status(of: "busy"))
            #expect((status.rssBytes ?? 0) > 1024 * 1024, "rss \(String(describing: status.rssBytes))")
            #expect((status.cpuPermille ?? 0) <= 1500, "one thread cannot use much more than one core: \(String(describing: status.cpuPermille))")
        }
    }
}

/// The production launch path: a launcher prefix that sets PR_SET_PDEATHSIG and execs the
/// component, as `peer-exec --parent PID --` does.
@Suite(.serialized)
struct AgentLauncherTests {
    static let launcherScript = #"""
    import ctypes, os, signal, sys
    PR_SET_PDEATHSIG = 1
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        sys.exit(120)
    os.execv(sys.argv[1], sys.argv[1:])
    """#

    @Test func aComponentStartedThroughTheLauncherRunsUnderItsOwnPidAndIsRestartedThroughItAgain() async throws {
        let fixture = try Fixture()
        let launcher = try fixture.directory.write("launcher.py", Self.launcherScript)
        var configuration = fixture.configuration()
        configuration.launcher = [python3, launcher]
        try await withAgent(fixture, configuration) { agent in
            await agent.reconcile(DesiredComponents([try fixture.component("dfx-dev", tenants: ["t1"])]))
            try await waitUntil("t1 is served through the launcher") { await agent.isServing(tenant: "t1", component: "dfx-dev") }
            let pid = try #require(agent.status(of: "dfx-dev")?.pid)
            // The launcher exec'd the component: the supervised pid is the component itself.
            let commandLine = (fileText("/proc/\(pid)/cmdline") ?? "").split(separator: "\0").map(String.init)
            #expect(commandLine.contains(fixture.script), "pid \(pid) runs \(commandLine)")
            #expect(!commandLine.contains(launcher))

            #expect(kill(pid, SIGKILL) == 0)
            try await waitUntil("restarted through the launcher and healthy") {
                let status = agent.status(of: "dfx-dev")
                return status?.pid != pid && status?.state == .healthy
            }
            #expect(agent.status(of: "dfx-dev")?.restarts == 1)
        }
    }
}

/// The probe client against misbehaving servers: answers are bounded and so is time.
@Suite(.serialized)
struct HealthProbeTests {
    static let serverScript = #"""
    import socket, sys, time
    mode = sys.argv[1]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))  # the kernel picks a free port: no race with other tests
    listener.listen(16)
    print("ready %d" % listener.getsockname()[1], flush=True)
    while True:
        connection, _ = listener.accept()
        request = connection.recv(4096)
        if mode == "big":
            body = b"x" * 9000
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            connection.close()
        elif mode == "ok":
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            connection.close()
        elif mode == "tenant":
            # 204 for acme's probe only, 404 otherwise: what a component's tenant probe answers.
            lines = request.split(b"\r\n")
            ok = lines[0] == b"GET /healthz HTTP/1.1" and b"X-Tenant-ID: acme" in lines and lines[-2:] == [b"", b""]
            connection.sendall(b"HTTP/1.1 204 No Content\r\n\r\n" if ok else b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            connection.close()
        elif mode == "ssh":
            connection.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
            connection.close()
        # "hang": keep the connection open and never answer.
    """#

    @Test func anOversizedAnswerOrNoAnswerFailsTheProbeAndAGoodOnePasses() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let script = try directory.write("server.py", Self.serverScript)
        var servers: [(pid: Int32, port: Int)] = []
        defer {
            for server in servers {
                kill(server.pid, SIGKILL)
                var status: Int32 = 0
                waitpid(server.pid, &status, 0)
            }
        }
        for mode in ["big", "hang", "ok", "tenant", "ssh"] {
            let log = directory.path + "/\(mode).log"
            let pid = try ChildProcess.spawn([python3, script, mode], .init(outputPath: log, environment: [], searchPath: false))
            var port = 0
            // On a timeout, say what the server said and whether it still runs.
            try await waitUntil("the \(mode) server (pid \(pid)) listens; log: \(fileText(log) ?? "none"); state: \(ChildProcess.observe(pid))") {
                guard let line = fileText(log)?.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }) else { return false }
                port = Int(line.dropFirst("ready ".count)) ?? 0
                return port > 0
            }
            servers.append((pid, port))
        }
        let started = ContinuousClock.now
        let tenants: [String?] = [nil, nil, nil, "acme", nil]
        let outcomes = HealthProbe.run(
            zip(servers, tenants).map { .init(port: $0.0.port, path: "/healthz", tenant: $0.1) } + [.init(port: servers[3].port, path: "/healthz", tenant: "globex")],
            timeout: .milliseconds(700))
        let took = ContinuousClock.now - started
        #expect(outcomes[0] == .failed("response exceeds \(HealthProbe.responseBytesMax) bytes"))
        if case .failed(let reason) = outcomes[1] {
            #expect(reason.contains("no complete response within the health timeout"))
        } else {
            Issue.record("a server that never answers passed: \(outcomes[1])")
        }
        #expect(outcomes[2] == .status(200))
        // The tenant probe carries its X-Tenant-ID; 204 passes, 404 (HTTP/1.0) does not.
        #expect(outcomes[3] == .status(204) && outcomes[3].isSuccess)
        #expect(outcomes[5] == .status(404) && !outcomes[5].isSuccess)
        // A non-HTTP answer is a failure with a reason, not a status.
        if case .failed = outcomes[4] {} else { Issue.record("a non-HTTP answer passed: \(outcomes[4])") }
        // All three ran concurrently within one timeout, not one after another.
        #expect(took >= .milliseconds(700) && took < .milliseconds(1400), "the round took \(took)")
    }
}
