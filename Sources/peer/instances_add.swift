import ArgumentParser
import Foundation
import PeerAPI

/// `peer instances add`: the leader records the intent, the provider starts a new instance with
/// its join files, the instance joins as a Raft learner and becomes active once caught up and
/// answering. Waits for `active`, printing each state it passes (docs/operations.md §Adding and
/// removing instances).
struct InstancesAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add an instance through the cluster's provider; wait until it is active.")

    @Option(help: "The provider to create it with, by name (default: the first of the cluster file's providers).")
    var provider: String?

    @Option(help: "The add is undone by the leader if the instance is not active after this many seconds (default: the provider's addTimeoutMs).")
    var addTimeout: Int?

    @Option(help: "Give up waiting after this many seconds (the add goes on; `peer instances list` shows it).")
    var wait: Int = 300

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let request = InstanceChangeRequest(
            clientId: WriteClient.freshClientID(), sequence: 1, timeoutMs: addTimeout.map { Int64($0) * 1000 }, provider: provider)
        let ctx = try options.context()
        let client = WriteClient(ctx: ctx, timeoutSeconds: options.timeout)
        let answer = try await client.send(method: .POST, path: "/v1/instances", body: Array(try JSONEncoder().encode(request)))
        let info = try JSONDecoder().decode(InstanceInfo.self, from: Data(answer.body))
        let deadlineMs = info.intentDeadlineMs ?? Int64.max
        try await InstanceWait.until(id: info.id, client: client, options: options, wait: wait, first: nil) { current in
            guard let current else {
                // Not in the state past the add's deadline (and a moment for the leader): undone.
                if Int64(Date().timeIntervalSince1970 * 1000) > deadlineMs + 5_000 {
                    return .failed("instance \(info.id) was never created before its deadline: the add was undone (the leader's log says why)")
                }
                return .waiting("provisioning (the provider is starting it)")
            }
            switch (current.state, current.intent) {
            case ("active", nil): return .done
            case ("active", _): return .waiting("active; the leader is closing the add")
            case ("joining", "provision"?): return .waiting("joining as \(current.role) at \(current.address) (provider \(current.provider ?? "?"))")
            case ("removed", _), ("joining", nil):
                return .failed("instance \(current.id) is \(current.state): the add was undone (the leader's log says why)")
            default: return .waiting("\(current.state)")
            }
        }
    }
}

/// `peer instances remove ID`: drain (every tenant moves away), leave the Raft configuration
/// (a voter only if enough remain: a caught-up learner is promoted first, the last voter never
/// leaves), then the provider destroys it. Waits for `removed`.
struct InstancesRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Drain an instance, take it out of the membership and destroy it; wait until it is removed.")

    @Argument(help: "The instance id (its peer id).")
    var id: String

    @Option(help: "Give up waiting after this many seconds (the removal goes on).")
    var wait: Int = 600

    @OptionGroup var options: TenantOptions

    func run() async throws {
        try InstanceStateChange.checkID(id)
        let request = InstanceChangeRequest(clientId: WriteClient.freshClientID(), sequence: 1)
        let ctx = try options.context()
        let client = WriteClient(ctx: ctx, timeoutSeconds: options.timeout)
        let answer = try await client.send(method: .DELETE, path: "/v1/instances/\(id)", body: Array(try JSONEncoder().encode(request)))
        let info = try JSONDecoder().decode(InstanceInfo.self, from: Data(answer.body))
        try await InstanceWait.until(id: id, client: client, options: options, wait: wait, first: info) { current in
            guard let current else { return .failed("instance \(id) is gone from the state") }
            switch current.state {
            case "removed" where current.intent == nil: return .done
            case "removed": return .waiting("removed; the leader is closing the removal")
            case "draining": return .waiting("draining: \(current.activeTenants) tenant(s) served, \(current.placements.map(String.init) ?? "?") placed")
            default: return .waiting("\(current.state) (\(current.role))")
            }
        }
    }
}

enum InstanceWait {
    enum Verdict: Equatable {
        case waiting(String)
        case done
        case failed(String)
    }

    /// Polls `GET /v1/instances/ID` every 200 ms, printing each new line, until `judge` says done.
    static func until(
        id: String, client: WriteClient, options: TenantOptions, wait: Int, first: InstanceInfo?,
        judge: (InstanceInfo?) -> Verdict
    ) async throws {
        let started = ContinuousClock.now
        let deadline = started + .seconds(wait)
        var current = first
        var last = ""
        while true {
            let verdict = judge(current)
            let line: String
            switch verdict {
            case .waiting(let text): line = text
            case .done: line = current?.state ?? "done"
            case .failed(let why): throw CLIError(why)
            }
            if options.output == .table, line != last {
                let t = (ContinuousClock.now - started).components
                print(String(format: "%7.3f s  ", Double(t.seconds) + Double(t.attoseconds) / 1e18) + "instance \(id) " + line)
                last = line
            }
            if verdict == .done {
                if options.output == .json, let current { print(String(decoding: try JSONEncoder().encode(current), as: UTF8.self)) }
                return
            }
            guard ContinuousClock.now < deadline else {
                throw CLIError("instance \(id) still \(line) after \(wait) s; it goes on (`peer instances list`), the leader's log says why it waits")
            }
            try await Task.sleep(for: .milliseconds(200))
            do {
                // Linearizable: the member asked may not have applied the add or removal yet.
                let answer = try await client.send(method: .GET, path: "/v1/instances/\(id)?consistent=true", body: nil)
                current = try JSONDecoder().decode(InstanceInfo.self, from: Data(answer.body))
            } catch let e as CLIError where e.description.contains("404") || e.description.contains("notFound") {
                current = nil
            }
        }
    }
}
