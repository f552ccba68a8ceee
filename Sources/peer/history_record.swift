import ArgumentParser
import Foundation
import History
import NIOHTTP1
import PeerAPI
import PeerConfig
import Synchronization

/// `peer history record`: concurrent clients, each through another member, creating, deleting
/// and reading (linearizable reads) a few tenants, every call written as JSON lines for `peer
/// history check` (docs/testing.md §Histories). One attempt per call: what the client saw is
/// what is recorded (no retry hides an unknown outcome).
struct HistoryRecord: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Run concurrent clients against the cluster and write their history (JSON lines) for `peer history check`.",
        discussion: """
            A delete is recorded as the register's update to "deleting" (the tenant enters
            deprovisioning when the call applies) plus a removal that may happen any time after
            the call was made (the leader finishes the deprovision later): a call with no end.
            Reads are `GET /v1/tenants?consistent=true`. Tenants are named PREFIX-0 .. PREFIX-(K-1).
            """)

    @Option(help: "The cluster configuration file.")
    var config: String

    @Option(help: "The history file to write (refused if it exists).")
    var out: String

    @Option(help: "Concurrent clients; client i talks to member i mod N of the file.")
    var clients: Int = 4

    @Option(help: "Tenants the clients work on.")
    var keys: Int = 8

    @Option(help: "Prefix of the tenants' ids.")
    var prefix: String = "h"

    @Option(help: "Seconds to run (or until STOP-FILE exists).")
    var duration: Int = 30

    @Option(help: "Stop early when this file exists.")
    var stopFile: String?

    @Option(help: "One call's deadline, in milliseconds (past it: unknown).")
    var callTimeoutMs: Int = 5_000

    static let eventsMax = 2_000_000

    func run() async throws {
        guard (1...64).contains(clients), (1...1_000).contains(keys), (1...86_400).contains(duration), (100...60_000).contains(callTimeoutMs) else {
            throw ValidationError("--clients 1-64, --keys 1-1000, --duration 1-86400, --call-timeout-ms 100-60000")
        }
        guard !FileManager.default.fileExists(atPath: out) else { throw ValidationError("\(out) exists; the history goes to a new file") }
        let ctx = try ClusterContext(configPath: config)
        let plans = ctx.config.catalog.services.flatMap(\.plans).map(\.id)
        guard !plans.isEmpty else { throw CLIError("\(config) has no catalog plans to create tenants with") }
        let members = ctx.config.peers.map(\.apiAddress)
        let started = ContinuousClock.now
        let deadline = started + .seconds(duration)
        let recorder = Recorder(started: started)
        let session = WriteClient.freshClientID()
        let settings = Settings(prefix: prefix, keys: keys, plans: Array(plans.prefix(2)), callTimeoutMs: callTimeoutMs, stopFile: stopFile, session: session)
        await withTaskGroup(of: Void.self) { group in
            for c in 0..<clients {
                let member = members[c % members.count]
                group.addTask {
                    await Self.client(c, member: member, ctx: ctx, settings: settings, recorder: recorder, deadline: deadline)
                }
            }
        }
        let lines = recorder.lines()
        let text = lines.joined(separator: "\n") + "\n"
        guard FileManager.default.createFile(atPath: out, contents: Data(text.utf8), attributes: [.posixPermissions: 0o644]) else {
            throw CLIError("cannot write \(out)")
        }
        print("recorded \(recorder.calls) call(s) of \(clients) client(s) on \(keys) tenant(s) in \(lines.count) line(s): \(out)")
    }

    struct Settings: Sendable {
        var prefix: String
        var keys: Int
        var plans: [String]
        var callTimeoutMs: Int
        var stopFile: String?
        var session: String
    }

    /// The lines of every client, each stamped with one monotonic clock.
    final class Recorder: Sendable {
        let started: ContinuousClock.Instant
        private let state = Mutex<(lines: [(Int64, Int, String)], calls: Int, synthetic: Int)>(([], 0, 0))
        init(started: ContinuousClock.Instant) { self.started = started }

        func micros() -> Int64 {
            let d = ContinuousClock.now - started
            return d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000
        }

        func add(_ time: Int64, _ line: [String: Any?]) {
            var object: [String: Any] = [:]
            for (k, v) in line { object[k] = v ?? NSNull() }
            object["time"] = time
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            state.withLock { s in
                guard s.lines.count < HistoryRecord.eventsMax else { return }
                s.lines.append((time, s.lines.count, String(decoding: data, as: UTF8.self)))
                if line["type"] as? String == "invoke" { s.calls += 1 }
            }
        }

        /// A client id for a removal that may happen later (its call never ends).
        func syntheticClient() -> Int { state.withLock { s in s.synthetic += 1; return 1_000_000 + s.synthetic } }
        var calls: Int { state.withLock { $0.calls } }
        func lines() -> [String] { state.withLock { $0.lines.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.2) } }
    }

    enum Seen {
        case answer(HTTPAnswer)
        case failed
        case unknown
    }

    static func call(_ ctx: ClusterContext, _ member: HostPort, _ method: HTTPMethod, _ path: String, _ body: [UInt8]?, timeoutMs: Int) async -> Seen {
        do {
            return .answer(try await ctx.client.request(host: member.host, port: Int(member.port), method: method, path: path, body: body, timeoutMillis: timeoutMs))
        } catch {
            // Refused: the request never arrived. Anything else (a timeout, a cut answer) may
            // have applied.
            if case .connect = error { return .failed }
            return .unknown
        }
    }

    /// What an error answer says: nothing applied (a retryable refusal), or maybe applied.
    static func errorOutcome(_ answer: HTTPAnswer) -> String? {
        guard let e = try? JSONDecoder().decode(APIError.self, from: Data(answer.body)) else { return nil }
        if e.outcomeUnknown { return "unknown" }
        if e.retryable || e.code == "limitReached" { return "fail" }
        return nil
    }

    static func client(_ c: Int, member: HostPort, ctx: ClusterContext, settings: Settings, recorder: Recorder, deadline: ContinuousClock.Instant) async {
        var rng = SystemRandomNumberGenerator()
        var sequence: UInt64 = 0
        let clientID = "\(settings.session)-\(c)"
        while ContinuousClock.now < deadline {
            if let stop = settings.stopFile, FileManager.default.fileExists(atPath: stop) { break }
            let key = "\(settings.prefix)-\(Int.random(in: 0..<settings.keys, using: &rng))"
            let dice = Int.random(in: 0..<100, using: &rng)
            sequence += 1
            if dice < 35 {
                let plan = settings.plans[Int.random(in: 0..<settings.plans.count, using: &rng)]
                let body = Array((try? JSONEncoder().encode(CreateTenantRequest(id: key, plan: plan, clientId: clientID, sequence: sequence))) ?? Data())
                recorder.add(recorder.micros(), ["client": c, "type": "invoke", "f": "create", "key": key, "value": plan])
                let seen = await call(ctx, member, .POST, "/v1/tenants", body, timeoutMs: settings.callTimeoutMs)
                let t = recorder.micros()
                switch seen {
                case .answer(let a) where a.status == 200 || a.status == 201:
                    recorder.add(t, ["client": c, "type": "ok", "f": "create", "key": key, "applied": true])
                case .answer(let a) where a.status == 409 && (try? JSONDecoder().decode(APIError.self, from: Data(a.body)))?.code == "conflict":
                    recorder.add(t, ["client": c, "type": "ok", "f": "create", "key": key, "applied": false])
                case .answer(let a):
                    recorder.add(t, ["client": c, "type": errorOutcome(a) ?? "unknown", "f": "create", "key": key])
                case .failed: recorder.add(t, ["client": c, "type": "fail", "f": "create", "key": key])
                case .unknown: recorder.add(t, ["client": c, "type": "unknown", "f": "create", "key": key])
                }
            } else if dice < 55 {
                // The register's update to "deleting", and a removal that may come any time later.
                let invoked = recorder.micros()
                recorder.add(invoked, ["client": c, "type": "invoke", "f": "update", "key": key, "value": "deleting"])
                let seen = await call(ctx, member, .DELETE, "/v1/tenants/\(key)?clientId=\(clientID)&sequence=\(sequence)", nil, timeoutMs: settings.callTimeoutMs)
                let t = recorder.micros()
                var applied: Bool? = nil
                switch seen {
                case .answer(let a) where (200..<300).contains(a.status):
                    applied = true
                    recorder.add(t, ["client": c, "type": "ok", "f": "update", "key": key, "applied": true])
                case .answer(let a) where a.status == 404:
                    recorder.add(t, ["client": c, "type": "ok", "f": "update", "key": key, "applied": false])
                case .answer(let a) where a.status == 409:
                    // Another operation runs on it (a deprovision in progress): nothing applied.
                    recorder.add(t, ["client": c, "type": "fail", "f": "update", "key": key])
                case .answer(let a):
                    let outcome = errorOutcome(a) ?? "unknown"
                    if outcome == "unknown" { applied = nil }
                    recorder.add(t, ["client": c, "type": outcome, "f": "update", "key": key])
                    if outcome == "fail" { continue }
                case .failed:
                    recorder.add(t, ["client": c, "type": "fail", "f": "update", "key": key])
                    continue
                case .unknown:
                    recorder.add(t, ["client": c, "type": "unknown", "f": "update", "key": key])
                }
                if applied != false {
                    recorder.add(invoked, ["client": recorder.syntheticClient(), "type": "invoke", "f": "delete", "key": key, "value": "deleting"])
                }
            } else {
                recorder.add(recorder.micros(), ["client": c, "type": "invoke", "f": "read", "key": key])
                let seen = await call(ctx, member, .GET, "/v1/tenants?consistent=true", nil, timeoutMs: settings.callTimeoutMs)
                let t = recorder.micros()
                if case .answer(let a) = seen, a.status == 200, let list = try? JSONDecoder().decode([TenantInfo].self, from: Data(a.body)) {
                    let value: String? = list.first { $0.id == key }.map { $0.state == "deprovisioning" ? "deleting" : $0.plan }
                    recorder.add(t, ["client": c, "type": "ok", "f": "read", "key": key, "value": value])
                } else {
                    recorder.add(t, ["client": c, "type": "fail", "f": "read", "key": key])
                }
            }
        }
    }
}
