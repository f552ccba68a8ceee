import ChildProcesses
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A real cluster of `peer` processes on loopback, in a temporary directory, driven only
/// through the CLI (the same commands an operator types). Every process it ends is one it
/// started, found through the pid files `peer up` wrote.
final class ProcessCluster {
    let dir: String
    let configPath: String
    let binary: String
    let size: Int
    /// Added to the environment of every command this cluster runs (and so of every peer
    /// `peer up` starts), e.g. `PEER_FAILPOINT=armable`.
    var environment: [String: String] = [:]
    var commandCount = 0

    /// With `dataPlane`, every peer also runs a router (NGINX) and components (the demo catalog:
    /// `tenant-app` beside the peer binary plays dfx-dev, dfx-dep and dfc).
    let routerPorts: [Int]
    /// Each peer's admin API port, by position (peer id - 1).
    let apiPorts: [Int]
    /// Each peer's peer-to-peer (transport) port, by position.
    let peerPorts: [Int]

    /// `binary`: another `peer` binary than the one built beside the tests.
    init(
        size: Int = 3, snapshotEveryEntries: Int = 10_000, tickMs: Int = 50, instanceLostAfterMs: Int? = nil, extraYAML: String = "",
        dataPlane: Bool = false, binary: String? = nil, cluster: String = "proc-test", timing: [String: Int] = [:]
    ) throws {
        self.binary = try binary ?? Self.peerBinary()
        self.size = size
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("peer-proc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ports = try Self.freePorts(2 * size)
        var yaml = """
        cluster: \(cluster)
        dataDir: data
        tlsDir: tls
        runDir: run
        timing:
          tickMs: \(tickMs)
          electionTicks: 10
          heartbeatTicks: 1
          snapshotEveryEntries: \(snapshotEveryEntries)
        \(instanceLostAfterMs.map { "  instanceLostAfterMs: \($0)" } ?? "")
        \(timing.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)" }.joined(separator: "\n"))
        peers:

        """
        var routers: [Int] = []
        // Every port handed out so far, components' included: a later peer's router must not
        // land in an earlier peer's component range (`peer init` refuses the clash).
        var taken = ports
        for i in 0..<size {
            yaml += "  - id: \(i + 1)\n    peer: 127.0.0.1:\(ports[2 * i])\n    api: 127.0.0.1:\(ports[2 * i + 1])\n"
            if dataPlane {
                let router = try Self.freePorts(2, avoiding: taken)
                taken += router
                let components = try Self.freeRange(3, avoiding: taken)
                taken += Array(components..<components + 3)
                routers += router
                yaml += "    router: 127.0.0.1:\(router[0])\n    routerControl: 127.0.0.1:\(router[1])\n    components: 127.0.0.1:\(components)\n"
            }
        }
        routerPorts = stride(from: 0, to: routers.count, by: 2).map { routers[$0] }
        apiPorts = (0..<size).map { ports[2 * $0 + 1] }
        peerPorts = (0..<size).map { ports[2 * $0] }
        yaml += extraYAML
        configPath = dir + "/cluster.yaml"
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        // deinit cannot await: the one blocking wait, at the end of a test.
        if let pid = try? spawn(["down", "--config", configPath, "--timeout", "10", "--force"]).pid {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        // PEER_TEST_KEEP=1 keeps the cluster's directory (logs, data) to look at after a failure.
        if ProcessInfo.processInfo.environment["PEER_TEST_KEEP"] == nil { try? FileManager.default.removeItem(atPath: dir) }
    }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Starts `peer ARGS` with stdout/stderr to files (no pipe can keep anyone waiting).
    func spawn(_ args: [String]) throws -> (pid: pid_t, out: String, err: String) {
        commandCount += 1
        let out = "\(dir)/cmd-\(commandCount).out"
        return (try spawnProgram(binary, args, out: out), out, out + ".err")
    }

    /// Starts any program with stdout to `out` and stderr to `out.err`, through the project's
    /// one spawner (ChildProcess): the child gets no descriptor of this process but 0-2. (It
    /// got every descriptor the test process had open without O_CLOEXEC, and wrk, whose event
    /// loops take descriptors below 10 + 3 x its connections (22 with -c 4), could not register
    /// its last connection's socket in CI, where more were open: 1 connect error.)
    func spawnProgram(_ program: String, _ args: [String], out: String) throws -> pid_t {
        for path in [out, out + ".err"] { _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        var options = ChildProcess.Options(outputPath: out, outputMode: 0o600, environment: env.map { "\($0.key)=\($0.value)" }, searchPath: false)
        options.errorPath = out + ".err"
        do {
            return try ChildProcess.spawn([program] + args, options)
        } catch {
            throw ProcessTestError("spawn \(program): \(error)")
        }
    }

    /// Waits for a child to exit, polling `waitpid` with `Task.sleep` in between (no thread of
    /// the test process is blocked: other suites run servers in this process); SIGKILLs it past
    /// the bound. Returns its exit code (128 + signal when killed by one).
    func waitProgram(_ pid: pid_t, timeoutSeconds: Double) async throws -> Int32 {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                throw ProcessTestError("pid \(pid) did not finish within \(timeoutSeconds) s")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Runs `peer ARGS` to completion (bounded) and returns what it printed.
    @discardableResult
    func run(_ args: [String], timeoutSeconds: Double = 60) async throws -> Output {
        let (pid, outPath, errPath) = try spawn(args)
        let code: Int32
        do {
            code = try await waitProgram(pid, timeoutSeconds: timeoutSeconds)
        } catch {
            throw ProcessTestError("peer \(args.joined(separator: " ")) did not finish within \(timeoutSeconds) s")
        }
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return Output(status: code, stdout: out, stderr: err)
    }

    /// Runs `peer ARGS` and requires exit status 0.
    @discardableResult
    func must(_ args: [String], timeoutSeconds: Double = 60) async throws -> String {
        let o = try await run(args, timeoutSeconds: timeoutSeconds)
        guard o.status == 0 else {
            throw ProcessTestError("peer \(args.joined(separator: " ")) exited \(o.status)\nstdout: \(o.stdout)\nstderr: \(o.stderr)")
        }
        return o.stdout
    }

    func statusJSON(consistent: Bool = false) async throws -> [String: Any] {
        let o = try await run(["status", "--config", configPath, "--output", "json"] + (consistent ? ["--consistent"] : []))
        guard let obj = try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any] else {
            throw ProcessTestError("status --output json printed no object: \(o.stdout) \(o.stderr)")
        }
        return obj
    }

    func members(_ status: [String: Any]) -> [[String: Any]] { status["members"] as? [[String: Any]] ?? [] }

    func pid(of id: Int) -> pid_t? {
        guard let t = try? String(contentsOfFile: "\(dir)/run/peer-\(id).pid", encoding: .utf8) else { return nil }
        return pid_t(t.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Polls `peer status` until `done` holds (bounded by `seconds`); returns the last status.
    @discardableResult
    func waitForStatus(_ what: String, seconds: Double = 30, _ done: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any] = [:]
        while Date() < deadline {
            last = (try? await statusJSON()) ?? [:]
            if done(last) { return last }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ProcessTestError("timed out after \(seconds) s waiting for \(what); last status: \(last)")
    }

    /// True when every member answers with one applied index and one state digest.
    static func converged(_ status: [String: Any], members n: Int) -> Bool {
        let ms = status["members"] as? [[String: Any]] ?? []
        guard ms.count == n, ms.allSatisfy({ ($0["state"] as? String) != "unreachable" }) else { return false }
        let applied = Set(ms.compactMap { $0["appliedIndex"] as? Int })
        let digests = Set(ms.compactMap { $0["stateDigest"] as? String })
        let commits = Set(ms.compactMap { $0["commitIndex"] as? Int })
        return applied.count == 1 && digests.count == 1 && commits == applied
    }

    static func peerBinary() throws -> String {
        if let p = ProcessInfo.processInfo.environment["PEER_BIN"] { return p }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("peer").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw ProcessTestError("peer binary not found next to \(dir.path); run `swift build --product peer`")
    }

    /// Distinct free loopback TCP ports, chosen below the kernel's ephemeral range (so outgoing
    /// connections of other tests cannot take them between now and the peers' bind) and checked
    /// bindable.
    static func freePorts(_ n: Int, avoiding taken: [Int] = []) throws -> [Int] {
        var ports: [Int] = []
        var tries = 0
        while ports.count < n {
            tries += 1
            guard tries < 10_000 else { throw ProcessTestError("no free ports in 20000-32000") }
            let port = Int.random(in: 20_000..<32_000)
            if ports.contains(port) || taken.contains(port) || !bindable(port) || !claim([port]) { continue }
            ports.append(port)
        }
        return ports
    }

    /// Every port handed out in this test process: clusters of suites that run at the same time
    /// never get the same port (being bindable when chosen is not enough: another cluster may
    /// have chosen it and not bound it yet). Ports are not given back; the range holds 12,000.
    static let handedOut = Mutex<Set<Int>>([])

    /// Takes `ports` if none was handed out before.
    static func claim(_ ports: [Int]) -> Bool {
        handedOut.withLock { out in
            guard ports.allSatisfy({ !out.contains($0) }) else { return false }
            out.formUnion(ports)
            return true
        }
    }

    /// The first of `n` consecutive free ports (a components base: base + portOffset).
    static func freeRange(_ n: Int, avoiding taken: [Int]) throws -> Int {
        for _ in 0..<10_000 {
            let base = Int.random(in: 20_000..<32_000 - n)
            let range = Array(base..<base + n)
            if range.allSatisfy({ !taken.contains($0) && bindable($0) }) && claim(range) { return base }
        }
        throw ProcessTestError("no \(n) consecutive free ports in 20000-32000")
    }

    static func bindable(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

struct ProcessTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
