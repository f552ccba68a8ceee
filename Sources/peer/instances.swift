import ArgumentParser
import Foundation
import NIOHTTP1
import PeerAPI
import PeerConfig

/// `peer instances list|add|remove|drain|activate`: the instances (members running a data plane)
/// and their lifecycle by hand. docs/operations.md §Adding and removing instances, §Draining.
struct InstancesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instances",
        abstract: "List instances; add one through the provider, remove one; drain one (move every tenant away, make-before-break) or activate it again.",
        subcommands: [InstancesList.self, InstancesAdd.self, InstancesRemove.self, InstancesDrain.self, InstancesActivate.self]
    )
}

struct InstancesList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List instances with their state and tenants.")

    @Flag(help: "Read through the leader (linearizable) instead of one member's local view.")
    var consistent = false

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let ctx = try options.context()
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout)
            .send(method: .GET, path: "/v1/instances" + (consistent ? "?consistent=true" : ""), body: nil)
        let instances = try JSONDecoder().decode([InstanceInfo].self, from: Data(answer.body))
        switch options.output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table: print(InstancesTable.render(instances), terminator: "")
        }
    }
}

enum InstancesTable {
    static func render(_ instances: [InstanceInfo]) -> String {
        var rows = [["INSTANCE", "ADDRESS", "ROLE", "STATE", "VERSION", "SERVING", "PLACED", "PROVIDER", "INTENT", "REASON"]]
        for i in instances {
            rows.append([
                i.id, i.address, i.role, i.state, i.version, String(i.activeTenants), i.placements.map(String.init) ?? "-",
                i.provider ?? "-", i.intent ?? "-", i.stateReason ?? "-",
            ])
        }
        return Table.render(rows) + "\(instances.count) instance(s)\n"
    }
}

/// Drain: every tenant moves away (make-before-break: a new placement elsewhere serves it before
/// the routers stop sending here); once nothing is placed there the instance is `drained` and
/// its components are stopped. Waits for that, printing progress; the drain goes on if the wait
/// ends (a new leader continues it).
struct InstancesDrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Move every tenant off an instance and stop its components; wait until it is drained.")

    @Argument(help: "The instance id (its peer id).")
    var id: String

    @OptionGroup var options: TenantOptions

    @Option(help: "Give up waiting after this many seconds (the drain goes on; `peer instances list` shows it).")
    var wait: Int = 300

    @Option(help: "Why (shown by `peer instances list`; recorded once the cluster version is 2).")
    var reason: String?

    func run() async throws {
        let drained = try await Self.drainAndWait(id: id, reason: reason, options: options, waitSeconds: wait)
        if options.output == .json { print(String(decoding: try JSONEncoder().encode(drained), as: UTF8.self)) }
    }

    /// Drains instance `id` and waits until it is drained, printing progress (table output).
    static func drainAndWait(id: String, reason: String?, options: TenantOptions, waitSeconds: Int) async throws -> InstanceInfo {
        let info = try await InstanceStateChange.send(id: id, verb: "drain", options: options, reason: reason)
        let ctx = try options.context()
        let reader = WriteClient(ctx: ctx, timeoutSeconds: options.timeout)
        let started = ContinuousClock.now
        let deadline = started + .seconds(waitSeconds)
        var last = ""
        var current = info
        while true {
            let line = "\(current.state): \(current.activeTenants) tenant(s) served, \(current.placements.map(String.init) ?? "?") placed"
            if options.output == .table, line != last {
                let t = (ContinuousClock.now - started).components
                print(String(format: "%7.3f s  ", Double(t.seconds) + Double(t.attoseconds) / 1e18) + "instance \(id) " + line)
                last = line
            }
            if current.state == "drained" { return current }
            guard current.state == "draining" else {
                throw CLIError("instance \(id) is \(current.state) now: the drain was cancelled (`peer instances activate`) or the instance changed state")
            }
            guard ContinuousClock.now < deadline else {
                throw CLIError("instance \(id) still draining after \(waitSeconds) s (\(line)); the leader's log says why it waits")
            }
            try await Task.sleep(for: .milliseconds(200))
            let answer = try await reader.send(method: .GET, path: "/v1/instances/\(id)?consistent=true", body: nil)
            current = try JSONDecoder().decode(InstanceInfo.self, from: Data(answer.body))
        }
    }
}

struct InstancesActivate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "activate",
        abstract: "Make a draining or drained instance active again (it takes new tenants; a drain in progress stops).")

    @Argument(help: "The instance id (its peer id).")
    var id: String

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let info = try await InstanceStateChange.send(id: id, verb: "activate", options: options)
        switch options.output {
        case .json: print(String(decoding: try JSONEncoder().encode(info), as: UTF8.self))
        case .table: print(InstancesTable.render([info]), terminator: "")
        }
    }
}

enum InstanceStateChange {
    /// `POST /v1/instances/ID/VERB` with a fresh client session (retries apply once).
    static func send(id: String, verb: String, options: TenantOptions, reason: String? = nil) async throws -> InstanceInfo {
        try checkID(id)
        let ctx = try options.context()
        let body = try JSONEncoder().encode(InstanceStateRequest(clientId: WriteClient.freshClientID(), sequence: 1, reason: reason))
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout).send(method: .POST, path: "/v1/instances/\(id)/\(verb)", body: Array(body))
        return try JSONDecoder().decode(InstanceInfo.self, from: Data(answer.body))
    }

    static func checkID(_ id: String) throws {
        guard id.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }), !id.isEmpty else {
            throw ValidationError("instance id \(id) may hold only a-z, 0-9, '-', '_', '.'")
        }
    }
}
