import ArgumentParser
import Foundation
import NIOHTTP1
import PeerAPI

/// `peer events`: the balancer's decisions and the operator's pauses, newest first, each with
/// the inputs behind it. `--follow` prints new ones as they are committed. docs/balancer.md.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "List the balancer's decisions (newest first) with the load behind each; --follow prints new ones.")

    @OptionGroup var options: TenantOptions

    @Option(help: "How many of the newest events (1-1000).")
    var limit: Int = 20

    @Flag(help: "Then keep printing new events as they are committed (oldest first), until interrupted or --for ends.")
    var follow = false

    @Option(name: .customLong("for"), help: "With --follow: stop after this many seconds.")
    var forSeconds: Int?

    func validate() throws {
        guard (1...1_000).contains(limit) else { throw ValidationError("--limit must be 1-1000, got \(limit)") }
        if let s = forSeconds, s < 1 { throw ValidationError("--for must be at least 1 second") }
    }

    func run() async throws {
        let ctx = try options.context()
        let client = WriteClient(ctx: ctx, timeoutSeconds: options.timeout)
        let answer = try await client.send(method: .GET, path: "/v1/events?limit=\(limit)", body: nil)
        let events = try JSONDecoder().decode([EventInfo].self, from: Data(answer.body))
        switch options.output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table: print(EventsTable.render(events), terminator: "")
        }
        guard follow else { return }
        var after = events.map(\.index).max() ?? 0
        let deadline = forSeconds.map { ContinuousClock.now + .seconds($0) }
        while deadline.map({ ContinuousClock.now < $0 }) ?? true {
            try await Task.sleep(for: .seconds(1))
            let next = try await client.send(method: .GET, path: "/v1/events?after=\(after)&limit=1000", body: nil)
            let new = try JSONDecoder().decode([EventInfo].self, from: Data(next.body))
            for e in new {
                // Unbuffered: a follower in a pipe sees each event as it comes.
                let text = options.output == .json ? String(decoding: try JSONEncoder().encode(e), as: UTF8.self) : EventsTable.line(e)
                FileHandle.standardOutput.write(Data((text + "\n").utf8))
                after = max(after, e.index)
            }
        }
    }
}

enum EventsTable {
    static func render(_ events: [EventInfo]) -> String {
        events.isEmpty ? "no events\n" : events.map(line).joined(separator: "\n") + "\n"
    }

    /// `2026-12-06T21:40:02.123Z  #1234  scale-up  instance 1  <reason>` and the moves and inputs below.
    static func line(_ e: EventInfo) -> String {
        var out = "\(time(e.atMs))  #\(e.index)  \(e.kind)  \(e.instance.map { "instance \($0)" } ?? "cluster")  \(e.id)\n    \(e.reason)"
        if !e.measures.isEmpty {
            out += "\n    inputs: " + e.measures.map { m in
                m.mark == 0 ? "\(m.name) \(number(m.value))" : "\(m.name) \(number(m.value)) (mark \(number(m.mark)))"
            }.joined(separator: ", ")
        }
        if !e.moves.isEmpty {
            out += "\n    moves: " + e.moves.map { "\($0.tenant) -> \($0.to)" }.joined(separator: ", ")
        }
        if let intent = e.intent { out += "\n    intent: \(intent)" }
        return out
    }

    static func time(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(format: "%.3g", v)
    }
}

/// `peer balancer status|pause|resume`: whether the balancer acts. A pause is an event in the
/// replicated state: every leader after it honours it until `resume`.
struct BalancerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "balancer",
        abstract: "Show whether the balancer acts; pause it (no new decision, no new move) or resume it.",
        subcommands: [BalancerStatus.self, BalancerPause.self, BalancerResume.self],
        defaultSubcommand: BalancerStatus.self)
}

struct BalancerStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Whether the balancer is enabled and paused, and its last event.")

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let ctx = try options.context()
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout).send(method: .GET, path: "/v1/balancer?consistent=true", body: nil)
        let info = try JSONDecoder().decode(BalancerInfo.self, from: Data(answer.body))
        switch options.output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table: print(BalancerChange.describe(info))
        }
    }
}

struct BalancerPause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Stop the balancer from deciding or starting moves (moves already started finish).")

    @OptionGroup var options: TenantOptions

    @Option(help: "Why (kept in the event).")
    var reason: String?

    func run() async throws { try await BalancerChange.send("pause", reason: reason, options: options) }
}

struct BalancerResume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Let the balancer act again.")

    @OptionGroup var options: TenantOptions

    @Option(help: "Why (kept in the event).")
    var reason: String?

    func run() async throws { try await BalancerChange.send("resume", reason: reason, options: options) }
}

enum BalancerChange {
    static func send(_ verb: String, reason: String?, options: TenantOptions) async throws {
        let ctx = try options.context()
        let body = try JSONEncoder().encode(BalancerPauseRequest(reason: reason, clientId: WriteClient.freshClientID(), sequence: 1))
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout).send(method: .POST, path: "/v1/balancer/\(verb)", body: Array(body))
        let info = try JSONDecoder().decode(BalancerInfo.self, from: Data(answer.body))
        switch options.output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table: print(describe(info))
        }
    }

    static func describe(_ info: BalancerInfo) -> String {
        var out = "balancer: \(info.enabled ? "enabled" : "not enabled in this peer's cluster file"), \(info.paused ? "paused" : "acting"); \(info.eventCount) event(s) kept"
        if let e = info.lastEvent { out += "\nlast event:\n" + EventsTable.line(e) }
        return out
    }
}
