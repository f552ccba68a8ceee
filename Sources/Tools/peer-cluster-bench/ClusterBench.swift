import ArgumentParser
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Issue 6's cluster benchmarks, peer and etcd side by side in one run: replicated writes/s and
/// latency through each system's HTTPS API (wrk + Lua, 256-byte payloads), idle memory per
/// member, and failover after `kill -9` of the leader. docs/benchmarks.md records the results.
@main
struct ClusterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer-cluster-bench",
        abstract: "peer vs etcd 3.4: 3-member clusters on loopback or in network namespaces, writes/s and latency (wrk), idle memory, failover (kill, partition, pause).",
        discussion: "Starts every cluster itself, in a temporary directory, on free loopback ports, and stops every process it started (by pid) before it exits, also on Ctrl-C. Needs `peer` (release build), `etcd` (Debian's etcd-server) and `wrk`. Prints a markdown report (docs/benchmarks.md).")

    @Option(help: "The peer binary (default: `peer` beside this executable).")
    var peer: String?

    @Option(help: "The etcd binary.")
    var etcd = "etcd"

    @Option(help: "The wrk binary.")
    var wrk = "wrk"

    @Option(help: "Systems to measure, in order.")
    var systems = "etcd,peer"

    @Option(help: "wrk connection counts, comma-separated; empty skips the load runs.")
    var connections = "1,16,64"

    // Warm-up and measured run share one cluster, and every peer write creates a tenant: at
    // ~7,500 writes/s, 3 + 10 s stay under peer's 250,000-tenant bound (ClusterLimits.tenantsMax)
    // with room to spare (refused writes count as errors and void the comparison).
    @Option(help: "Which member wrk writes to: leader, or follower (every write is forwarded to the leader: the admin client's path on peer, the server's proposal forwarding on etcd).")
    var target = "leader"

    @Option(help: "Seconds of each measured wrk run.")
    var seconds = 10

    @Option(help: "Rounds per connection count: each round measures every system once (on fresh clusters), the order alternating between rounds; the comparison uses each system's median round.")
    var rounds = 3

    @Option(help: "Seconds of the warm-up wrk run before each measured one (same cluster, discarded).")
    var warmup = 3

    @Option(help: "Quiet seconds before reading idle memory.")
    var quiet = 10

    @Option(help: "Leader faults per system and fault kind; 0 skips failover.")
    var failoverRuns = 10

    @Option(help: "Failover faults, comma-separated: kill (kill -9), isolate (the leader's link down; needs --network namespaces), pause (SIGSTOP).")
    var faults = "kill"

    @Option(help: "loopback, or namespaces: each member in a network namespace of its own on a bridge (root; a partition or a pause sends no reset).")
    var network = "loopback"

    @Option(help: "Milliseconds between failover write probes.")
    var probeIntervalMs = 10

    @Option(help: "peer's timing.snapshotEveryEntries (default: not set, so peer's own). A diagnostic: the comparison uses each system's defaults.")
    var peerSnapshotEntries: Int?

    @Flag(help: "etcd: require client certificates on the client listener too (wrk cannot present one, so only for failover).")
    var etcdClientCertAuth = false

    @Option(help: "Working directory (default: a new one under the temp dir, removed at the end).")
    var workDir: String?

    @Flag(help: "Keep the working directory (logs, Lua scripts, wrk outputs, data).")
    var keep = false

    @Option(help: "Also write the markdown report to this file.")
    var output: String?

    func validate() throws {
        guard (1...3_600).contains(seconds), (0...600).contains(warmup), (0...600).contains(quiet) else {
            throw ValidationError("--seconds 1...3600, --warmup and --quiet 0...600")
        }
        guard (1...20).contains(rounds) else { throw ValidationError("--rounds 1...20") }
        guard (0...100).contains(failoverRuns), (1...1_000).contains(probeIntervalMs) else {
            throw ValidationError("--failover-runs 0...100, --probe-interval-ms 1...1000")
        }
        guard !levels.isEmpty || failoverRuns > 0 else { throw ValidationError("nothing to measure") }
        for c in levels where !(1...1_000).contains(c) { throw ValidationError("connections must be 1...1000, got \(c)") }
        for s in systemList where s != "etcd" && s != "peer" { throw ValidationError("unknown system \(s): etcd or peer") }
        guard target == "leader" || target == "follower" else { throw ValidationError("--target leader or follower, got \(target)") }
        guard network == "loopback" || network == "namespaces" else { throw ValidationError("--network loopback or namespaces, got \(network)") }
        for f in faults.split(separator: ",") where FailoverFault(rawValue: f.trimmingCharacters(in: .whitespaces)) == nil {
            throw ValidationError("unknown fault \(f): kill, isolate or pause")
        }
        guard !faultList.isEmpty else { throw ValidationError("--faults is empty") }
        guard network == "namespaces" || !faultList.contains(.isolate) else { throw ValidationError("--faults isolate needs --network namespaces") }
    }

    var faultList: [FailoverFault] { faults.split(separator: ",").compactMap { FailoverFault(rawValue: $0.trimmingCharacters(in: .whitespaces)) } }

    var levels: [Int] { connections.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    var systemList: [String] { systems.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

    func run() async throws {
        let selfDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        guard let peerBin = Machine.which(peer ?? selfDir + "/peer") else { throw BenchError("no peer binary (build it: swift build -c release --product peer)") }
        guard let etcdBin = Machine.which(etcd) else { throw BenchError("no etcd binary (apt-get install etcd-server etcd-client)") }
        guard let wrkBin = Machine.which(wrk) else { throw BenchError("no wrk binary (apt-get install wrk)") }

        let dir: String
        if let workDir {
            dir = URL(fileURLWithPath: workDir).standardizedFileURL.path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } else {
            var template = Array((NSTemporaryDirectory() + "/peer-cluster-bench.XXXXXX").utf8CString)
            guard let p = mkdtemp(&template) else { throw BenchError("mkdtemp failed: errno \(errno)") }
            dir = String(cString: p)
        }
        let removeAtEnd = !keep && workDir == nil
        let namespaces = network == "namespaces" ? try await NamespaceHosts(size: 3, logFile: dir + "/ip.log") : nil
        let hosts = namespaces?.members ?? .loopback(3)
        let signals = installSignalHandlers(dir: dir, remove: removeAtEnd, namespaces: namespaces)
        defer {
            Children.shared.stopAllNow()
            namespaces?.remove()
            if removeAtEnd { try? FileManager.default.removeItem(atPath: dir) }
            withExtendedLifetime(signals) {}
        }

        var report = Report(started: Date(), workDir: dir, keep: !removeAtEnd)
        report.etcdVersion = (try? await Children.shared.run(etcdBin, ["--version"], logFile: dir + "/etcd-version.txt", timeoutSeconds: 20).output)?
            .split(separator: "\n").first.map(String.init) ?? "?"
        report.wrkVersion = (try? await Children.shared.run(wrkBin, ["-v"], logFile: dir + "/wrk-version.txt", timeoutSeconds: 20).output)?
            .split(separator: "\n").first.map { String($0.split(separator: " [").first ?? $0) } ?? "?"
        report.peerBinary = peerBin
        report.seconds = seconds
        report.warmup = warmup
        report.target = target
        report.rounds = rounds
        report.quiet = quiet
        report.failoverRuns = failoverRuns
        report.probeIntervalMs = probeIntervalMs
        report.etcdClientCertAuth = etcdClientCertAuth
        report.peerSnapshotEntries = peerSnapshotEntries
        report.failoverFaults = faultList
        report.network = network

        say("work dir \(dir); peer \(peerBin); \(report.etcdVersion); \(report.wrkVersion)")
        let certs = try await BenchCertificates.make(peerBinary: peerBin, dir: dir + "/tls", clusterID: "bench", hosts: hosts, logFile: dir + "/certs.log")
        let tokenFile = dir + "/admin-token"
        _ = FileManager.default.createFile(atPath: tokenFile, contents: Data((Machine.randomHex(24) + "\n").utf8), attributes: [.posixPermissions: 0o600])

        func makeCluster(_ system: String, _ name: String) throws -> any BenchCluster {
            switch system {
            case "etcd": return try EtcdCluster(binary: etcdBin, dir: "\(dir)/\(name)", certs: certs, clientCertAuth: etcdClientCertAuth, hosts: hosts)
            default: return try PeerCluster(binary: peerBin, dir: "\(dir)/\(name)", certs: certs, tokenFile: tokenFile, hosts: hosts, snapshotEveryEntries: peerSnapshotEntries)
            }
        }

        do {
            // Load: a fresh cluster per system and connection count (peer caps tenants at 250,000).
            // Rounds alternate the order (etcd, peer, then peer, etcd, ...) so a slow drift of the
            // machine (other guests' load: the steal column) does not favour one system.
            for (li, c) in levels.enumerated() {
                for round in 1...rounds {
                for system in round % 2 == 1 ? systemList : systemList.reversed() {
                        let name = rounds == 1 ? "\(system)-c\(c)" : "\(system)-c\(c)-r\(round)"
                        let cluster = try makeCluster(system, name)
                        try await cluster.start()
                        if li == 0 && round == 1 {
                            try await Task.sleep(for: .seconds(quiet))
                            try cluster.checkAlive()
                            report.idleRSS[system] = cluster.rss()
                            say("\(system) idle VmRSS (KiB): \(report.idleRSS[system]!.map(\.rssKiB))")
                        }
                        let leader = try await cluster.leader()
                        let written = target == "follower" ? (leader + 1) % cluster.endpoints.count : leader
                        let url = cluster.endpoints[written].url
                        let threads = min(c, ProcessInfo.processInfo.activeProcessorCount)
                        if warmup > 0 {
                            let script = try writeScript(cluster, dir: dir, name: "\(name)-warmup")
                            let w = try await WrkRun.run(wrk: wrkBin, script: script, url: url, connections: c, threads: threads, seconds: warmup, logFile: "\(dir)/\(name)-warmup.wrk.txt")
                            say("\(system) c=\(c) warm-up: \(Int(w.writesPerSecond)) writes/s, \(w.errors) errors")
                        }
                        let loadBefore = Machine.load1()
                        let script = try writeScript(cluster, dir: dir, name: name)
                        let cpuBefore = cluster.cpuSeconds()
                        let stealBefore = Machine.stealSeconds()
                        let r = try await WrkRun.run(wrk: wrkBin, script: script, url: url, connections: c, threads: threads, seconds: seconds, logFile: "\(dir)/\(name).wrk.txt")
                        let cpuAfter = cluster.cpuSeconds()
                        let steal = Machine.stealSeconds().flatMap { a in stealBefore.map { a - $0 } }
                        try cluster.checkAlive()
                        let cpu = zip(cpuBefore, cpuAfter).map { b, a in (a ?? 0) - (b ?? 0) }
                        report.load.append(Report.LoadRow(
                            system: system, connections: c, round: round, threads: threads, result: r, loadBefore: loadBefore, loadAfter: Machine.load1(),
                            stealSeconds: steal, cpuSecondsAll: cpu.reduce(0, +), cpuSecondsLeader: cpu[leader]))
                        say("\(system) c=\(c) round \(round): \(Int(r.writesPerSecond)) writes/s, p50 \(Report.ms(r.p50Micros)) ms, p99 \(Report.ms(r.p99Micros)) ms, errors \(r.errors) (load \(loadBefore) -> \(Machine.load1()), steal \(steal.map { String(format: "%.1f", $0) } ?? "?") s)")
                        if li == levels.count - 1 && round == rounds {
                            try await Task.sleep(for: .seconds(quiet))
                            report.loadedRSS[system] = cluster.rss()
                            say("\(system) VmRSS after load, \(quiet) s quiet (KiB): \(report.loadedRSS[system]!.map(\.rssKiB))")
                        }
                        await cluster.stopAll()
                        if removeAtEnd { try? FileManager.default.removeItem(atPath: "\(dir)/\(name)") }
                    }
                }
            }
            // Failover: per fault kind, one fresh cluster per system, `failoverRuns` faults of its
            // leader; the systems alternate which goes first, as the load rounds do.
            if failoverRuns > 0 {
                for (fi, fault) in faultList.enumerated() {
                    for system in fi % 2 == 0 ? systemList : systemList.reversed() {
                        let cluster = try makeCluster(system, "\(system)-failover-\(fault.rawValue)")
                        try await cluster.start()
                        if report.idleRSS[system] == nil {
                            try await Task.sleep(for: .seconds(quiet))
                            report.idleRSS[system] = cluster.rss()
                        }
                        let samples = try await Failover.run(cluster, fault: fault, hosts: namespaces, repetitions: failoverRuns, intervalMillis: probeIntervalMs, log: say)
                        report.failover["\(system) \(fault.rawValue)"] = samples
                        await cluster.stopAll()
                    }
                }
            }
        } catch {
            say("error: \(error)")
            Children.shared.stopAllNow()
            if !report.load.isEmpty || !report.failover.isEmpty { print(report.markdown()) }
            throw ExitCode(1)
        }
        report.finished = Date()
        let md = report.markdown()
        print(md)
        if let output { try md.write(toFile: output, atomically: true, encoding: .utf8) }
    }

    func writeScript(_ cluster: any BenchCluster, dir: String, name: String) throws -> String {
        let path = "\(dir)/\(name).lua"
        try cluster.wrkScript(runID: Machine.randomHex(4)).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// SIGINT/SIGTERM: stop every child by pid, delete the namespaces, remove the work dir
    /// (unless kept), exit 130.
    func installSignalHandlers(dir: String, remove: Bool, namespaces: NamespaceHosts?) -> [any DispatchSourceSignal] {
        ([SIGINT, SIGTERM] as [Int32]).map { sig -> any DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                FileHandle.standardError.write(Data("\npeer-cluster-bench: signal \(sig), stopping \(Children.shared.running.count) process(es)\n".utf8))
                Children.shared.stopAllNow()
                namespaces?.remove()
                if remove { try? FileManager.default.removeItem(atPath: dir) }
                Glibc.exit(130)
            }
            source.resume()
            return source
        }
    }
}

func say(_ s: String) {
    let f = DateFormatter()
    f.dateFormat = "HH:mm:ss"
    f.timeZone = TimeZone(identifier: "UTC")
    FileHandle.standardError.write(Data("[\(f.string(from: Date()))] \(s)\n".utf8))
}
