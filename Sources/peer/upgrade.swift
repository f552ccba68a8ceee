import ArgumentParser
import ChildProcesses
import Foundation
import PeerAPI
import PeerConfig
#if canImport(Glibc)
import Glibc
#endif

/// `peer version`: this binary's build, and (with --config) the cluster version and what every
/// instance runs. docs/operations.md §Upgrades.
struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "This binary's build and protocol versions; with --config, the cluster version and every instance's.")

    @Option(help: "The cluster configuration file (without it: only this binary's build).")
    var config: String?

    @Option(help: "table or json.")
    var output: OutputFormat = .table

    @Option(help: "Give up after this many seconds.")
    var timeout: Int = 15

    func run() async throws {
        if case .failure(let e) = PeerVersion.range { throw ValidationError(e.description) }
        guard let config else {
            print(Upgrade.buildLine(build: PeerVersion.build, min: PeerVersion.protocolVersionMin, max: PeerVersion.protocolVersion))
            return
        }
        let ctx = try ClusterContext(configPath: config)
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: timeout).send(method: .GET, path: "/v1/version", body: nil)
        switch output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table: print(Upgrade.render(try JSONDecoder().decode(VersionInfo.self, from: Data(answer.body))), terminator: "")
        }
    }
}

/// `peer upgrade --binary PATH`: a rolling upgrade of the config file's peers on this host and
/// of the instances providers made (restarted by their provider), followers first and the
/// leader last; `peer upgrade step ID --binary PATH` one peer;
/// `peer upgrade finish` raises the cluster version once every member runs the new one.
struct UpgradeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Replace every peer's binary one at a time (drain, stop, start the new binary on the same data, wait until caught up, activate), the leader last; then raise the cluster version.",
        subcommands: [UpgradeAll.self, UpgradeStep.self, UpgradeFinish.self],
        defaultSubcommand: UpgradeAll.self)
}

struct UpgradeOptions: ParsableArguments {
    @Option(help: "The new peer binary (any executable that runs `peer`: a script that sets its environment will do).")
    var binary: String

    @Option(help: "How long a drain may take, in seconds.")
    var drainWait: Int = 300

    @Option(help: "How long the restarted peer may take to catch up and answer, in seconds.")
    var readyWait: Int = 120

    @Flag(help: "Do not drain the peer's tenants away first (a cluster without a data plane has none).")
    var noDrain = false
}

struct UpgradeAll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all", abstract: "Upgrade every peer of the config file, followers first, the leader last; then raise the cluster version.")

    @OptionGroup var upgrade: UpgradeOptions
    @OptionGroup var options: TenantOptions

    @Flag(help: "Leave the cluster version as it is (to go back to the old binary later without `peer downgrade`).")
    var noFinish = false

    func run() async throws {
        let ctx = try options.context()
        let began = ContinuousClock.now
        let target = try await Upgrade.binaryVersion(upgrade.binary)
        let members = try await Upgrade.members(ctx: ctx, options: options)
        // The cluster file's peers and the instances providers made, followers first.
        let ids = (ctx.config.peers.map(\.id) + members.members.map(\.id)).reduce(into: [UInt64]()) { if !$0.contains($1) { $0.append($1) } }
        let order = ids.filter { $0 != members.leader } + [members.leader]
        print("upgrading \(order.count) peer(s) to \(target.build) (protocol \(target.min)-\(target.max)), in the order \(order.map(String.init).joined(separator: ", "))")
        for id in order {
            try await Upgrade.step(id: id, upgrade: upgrade, target: target, ctx: ctx, options: options)
        }
        if !noFinish {
            try await Upgrade.finish(ctx: ctx, options: options, quietIfCurrent: true)
        }
        print("upgrade done in \(Upgrade.seconds(since: began))")
    }
}

struct UpgradeStep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step", abstract: "Upgrade one peer (of the cluster file, or an instance a provider made): leadership handed away if it leads, drain, stop, start the new binary, wait until caught up, activate.")

    @Argument(help: "The peer's id.")
    var id: UInt64

    @OptionGroup var upgrade: UpgradeOptions
    @OptionGroup var options: TenantOptions

    func run() async throws {
        let ctx = try options.context()
        try await Upgrade.step(id: id, upgrade: upgrade, target: try await Upgrade.binaryVersion(upgrade.binary), ctx: ctx, options: options)
    }
}

struct UpgradeFinish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finish", abstract: "Raise the cluster version to the one every member runs (refused, naming them, while one runs less).")

    @OptionGroup var options: TenantOptions

    func run() async throws {
        try await Upgrade.finish(ctx: try options.context(), options: options, quietIfCurrent: false)
    }
}

/// `peer downgrade --to N`: lowers the cluster version, so peers of an older release can run
/// again (as etcd 3.5's `downgrade enable`). The features above N stop and what only they kept
/// in the state is dropped.
struct DowngradeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "downgrade", abstract: "Lower the cluster version (then `peer upgrade --binary OLD` goes back to an older release).")

    @Option(help: "The cluster version to go down to.")
    var to: UInt32

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let ctx = try options.context()
        let body = try JSONEncoder().encode(VersionRequest(to: to, clientId: WriteClient.freshClientID(), sequence: 1))
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout).send(method: .POST, path: "/v1/version/lower", body: Array(body))
        let info = try JSONDecoder().decode(VersionInfo.self, from: Data(answer.body))
        switch options.output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table: print("cluster version lowered to \(info.clusterVersion)\n" + Upgrade.render(info), terminator: "")
        }
    }
}

enum Upgrade {
    static func buildLine(build: String, min: UInt32, max: UInt32) -> String { "\(build) protocol=\(min)-\(max)" }

    static func render(_ info: VersionInfo) -> String {
        var rows = [["INSTANCE", "VERSION", "PROTOCOL", "STATE"]]
        for m in info.instances { rows.append([m.id, m.version, String(m.protocolVersion), m.state]) }
        return "cluster version \(info.clusterVersion) (peer answering: \(info.peer), protocol \(info.protocolVersionMin)-\(info.protocolVersionMax))\n" + Table.render(rows)
    }

    static func seconds(since t: ContinuousClock.Instant) -> String {
        let c = (ContinuousClock.now - t).components
        return String(format: "%.1f s", Double(c.seconds) + Double(c.attoseconds) / 1e18)
    }

    struct Target {
        var build: String
        var min: UInt32
        var max: UInt32
    }

    /// Asks the new binary what it is (`BINARY version`), bounded in time.
    static func binaryVersion(_ binary: String) async throws -> Target {
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw CLIError("--binary \(binary): not an executable file") }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("peer-version-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        defer {
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: out + ".err")
        }
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn([binary, "version"], .init(outputPath: out, searchPath: false))
        } catch {
            throw CLIError("--binary \(binary): cannot run it: \(error)")
        }
        let deadline = ContinuousClock.now + .seconds(10)
        var exit: ChildExit?
        while exit == nil {
            exit = ChildProcess.reapIfExited(pid)
            if exit == nil {
                guard ContinuousClock.now < deadline else {
                    kill(pid, SIGKILL)
                    _ = ChildProcess.reapBlocking(pid)
                    throw CLIError("--binary \(binary): `version` did not answer within 10 s")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let text = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = text.split(separator: " ")
        guard exit == .exited(code: 0), parts.count == 2, parts[1].hasPrefix("protocol="),
              let parsed = VersionHeader.parse("\(parts[0]); \(parts[1])") else {
            throw CLIError("--binary \(binary) is not a peer binary this build understands (`version` printed \(text.prefix(200).debugDescription), \(exit.map { "\($0)" } ?? "?"))")
        }
        return Target(build: parsed.build, min: parsed.min, max: parsed.max)
    }

    static func members(ctx: ClusterContext, options: TenantOptions) async throws -> MembersInfo {
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout).send(method: .GET, path: "/v1/members", body: nil)
        return try JSONDecoder().decode(MembersInfo.self, from: Data(answer.body))
    }

    static func versionInfo(ctx: ClusterContext, options: TenantOptions) async throws -> VersionInfo {
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout).send(method: .GET, path: "/v1/version?consistent=true", body: nil)
        return try JSONDecoder().decode(VersionInfo.self, from: Data(answer.body))
    }

    /// One peer: refused before anything changes if the binary cannot run in this cluster;
    /// then leadership away, drain, stop, start, wait, activate, each phase timed.
    static func step(id: UInt64, upgrade: UpgradeOptions, target: Target, ctx: ClusterContext, options: TenantOptions) async throws {
        let cfg = ctx.config
        let began = ContinuousClock.now
        let version = try await versionInfo(ctx: ctx, options: options)
        guard (target.min...target.max).contains(version.clusterVersion) else {
            let which = version.clusterVersion > target.max ? "too old" : "too new"
            let hint = version.clusterVersion > target.max ? " (`peer downgrade --to \(target.max)` first to go back)" : ""
            throw CLIError("\(upgrade.binary) runs protocol versions \(target.min)-\(target.max), but the cluster version is \(version.clusterVersion): it is \(which) for this cluster\(hint); nothing was changed")
        }
        var members = try await members(ctx: ctx, options: options)
        // A peer of the cluster file runs from this host's pid file; an instance a provider made
        // is restarted by its provider, through the leader.
        var pid: pid_t?
        if cfg.peer(id: id) != nil {
            guard let running = PeerProcesses.runningPID(pidFile: cfg.pidFilePath(for: id), id: id) else {
                throw CLIError("peer \(id) is not running from this host's pid file \(cfg.pidFilePath(for: id)); nothing was changed")
            }
            pid = running
        } else if !members.members.contains(where: { $0.id == id }) || !version.instances.contains(where: { $0.id == "\(id)" }) {
            throw CLIError("peer \(id) is neither in \(options.config) nor a member made by a provider; nothing was changed")
        }
        let api: HostPort
        if let peer = cfg.peer(id: id) {
            api = peer.apiAddress
        } else {
            guard let address = members.members.first(where: { $0.id == id }).flatMap({ HostPort($0.apiAddress) }) else {
                throw CLIError("member \(id) has no API address in the state; nothing was changed")
            }
            api = address
        }
        print("peer \(id): upgrading to \(target.build)")
        if members.leader == id {
            let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout, attemptTimeoutMillis: 12_000)
                .send(method: .POST, path: "/v1/leader/transfer", body: Array(try JSONEncoder().encode(LeaderTransferRequest())))
            let moved = try JSONDecoder().decode(LeaderTransferInfo.self, from: Data(answer.body))
            print("peer \(id): leadership handed to peer \(moved.to) in \(moved.millis) ms")
            members = try await self.members(ctx: ctx, options: options)
        }
        let instance = version.instances.first { $0.id == "\(id)" }
        var drained = false
        if !upgrade.noDrain, instance?.state == "active", version.instances.contains(where: { $0.id != "\(id)" && $0.state == "active" }) {
            let t = ContinuousClock.now
            _ = try await InstancesDrain.drainAndWait(id: "\(id)", reason: "upgrade to \(target.build)", options: options, waitSeconds: upgrade.drainWait)
            drained = true
            print("peer \(id): drained in \(seconds(since: t))")
        }
        // Its data must not hold an entry the new binary cannot replay: a cluster version change
        // is snapshotted at once; wait until this member's is on disk.
        let snapshotted = ContinuousClock.now + .seconds(30)
        while true {
            let s = try? await ctx.fetchStatus(host: api.host, port: Int(api.port), consistent: false, timeoutMillis: 2_000).get()
            if let s, s.snapshotIndex >= (s.versionChangeIndex ?? 0) { break }
            guard ContinuousClock.now < snapshotted else {
                throw CLIError("peer \(id) has not snapshotted its last cluster version change after 30 s (status: \(s.map { "snapshot \($0.snapshotIndex), change \($0.versionChangeIndex ?? 0)" } ?? "no answer")); it is still drained")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let stopping = ContinuousClock.now
        var newPID: pid_t?
        if let pid {
            guard await PeerProcesses.stop(id: id, pid: pid, timeoutSeconds: 30) else {
                throw CLIError("peer \(id) (pid \(pid)) did not stop within 30 s of SIGTERM; it is still drained: `peer instances activate \(id)` undoes that")
            }
            let started = try PeerProcesses.spawn(config: URL(fileURLWithPath: options.config).standardizedFileURL.path, id: id, logFile: cfg.logFilePath(for: id), executable: upgrade.binary)
            try "\(started)\n".write(toFile: cfg.pidFilePath(for: id), atomically: true, encoding: .utf8)
            newPID = started
            print("peer \(id): stopped and started with \(upgrade.binary) (pid \(started)) in \(seconds(since: stopping))")
        } else {
            // The provider's host runs the binary: the same path there (docs/operations.md §Upgrades).
            let binary = URL(fileURLWithPath: upgrade.binary).standardizedFileURL.path
            let body = try JSONEncoder().encode(InstanceRestartRequest(binary: binary))
            let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout + 60, attemptTimeoutMillis: 60_000)
                .send(method: .POST, path: "/v1/instances/\(id)/restart", body: Array(body))
            let restarted = try JSONDecoder().decode(InstanceRestarted.self, from: Data(answer.body))
            print("peer \(id): restarted by its provider with \(binary) (\(restarted.handle)) in \(seconds(since: stopping))")
        }

        // Ready: caught up with the leader's log, and the leader has recorded the version it runs.
        let waiting = ContinuousClock.now
        let deadline = waiting + .seconds(upgrade.readyWait)
        var last = "no answer yet"
        while true {
            if let newPID, let how = ChildProcess.reapIfExited(newPID), how != .unknown {
                throw CLIError("peer \(id) exited (\(how)) after the upgrade; its log ends:\n\(PeerProcesses.tail(cfg.logFilePath(for: id)))")
            }
            if let m = try? await self.members(ctx: ctx, options: options), let me = m.members.first(where: { $0.id == id }),
               let v = try? await versionInfo(ctx: ctx, options: options), let recorded = v.instances.first(where: { $0.id == "\(id)" }) {
                last = "caught up \(me.caughtUp), recorded version \(recorded.version)"
                if me.caughtUp && me.recentActive && recorded.version == target.build { break }
            }
            guard ContinuousClock.now < deadline else {
                throw CLIError("peer \(id) not ready \(upgrade.readyWait) s after its restart (\(last)); its log: \(pid == nil ? "the provider's (process: output.log in its instance directory)" : cfg.logFilePath(for: id))")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        print("peer \(id): caught up and running \(target.build) after \(seconds(since: waiting))")
        if drained {
            _ = try await InstanceStateChange.send(id: "\(id)", verb: "activate", options: options)
            print("peer \(id): active again (the balancer moves tenants back as it decides)")
        }
        print("peer \(id): upgraded in \(seconds(since: began))")
    }

    static func finish(ctx: ClusterContext, options: TenantOptions, quietIfCurrent: Bool) async throws {
        let client = WriteClient(ctx: ctx, timeoutSeconds: options.timeout)
        do {
            let body = try JSONEncoder().encode(VersionRequest(clientId: WriteClient.freshClientID(), sequence: 1))
            let answer = try await client.send(method: .POST, path: "/v1/version/raise", body: Array(body))
            let info = try JSONDecoder().decode(VersionInfo.self, from: Data(answer.body))
            print("cluster version raised to \(info.clusterVersion)")
        } catch let e as CLIError where quietIfCurrent && e.description.contains("run no higher protocol version") {
            print("cluster version unchanged: \(e.description)")
        }
    }
}
