import ArgumentParser
import Foundation
import NIOHTTP1
import PeerAPI
import PeerConfig
import Synchronization

/// `peer tenants create|delete|list`: admin convenience over `/v1/tenants`.
struct TenantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants",
        abstract: "Create, delete and list tenants (writes reach the leader through any peer).",
        subcommands: [TenantsCreate.self, TenantsDelete.self, TenantsList.self, TenantsMove.self]
    )
}

struct TenantOptions: ParsableArguments {
    @Option(help: "The cluster configuration file.")
    var config: String

    @Option(help: "table or json.")
    var output: OutputFormat = .table

    @Option(help: "Give up after this many seconds (writes are retried with the same request id until then).")
    var timeout: Int = 15

    @Option(name: .customLong("endpoint"), help: "Talk to this API address (host:port or https://host:port) instead of the configuration's members; repeat it for several.")
    var endpoints: [String] = []

    /// The configuration and an admin client, aimed at `--endpoint`s when given.
    func context() throws -> ClusterContext {
        var ctx = try ClusterContext(configPath: config)
        ctx.endpoints = try endpoints.map { text in
            let hp = text.replacingOccurrences(of: "https://", with: "").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            guard let address = HostPort(hp) else { throw ValidationError("--endpoint \(text) is not host:port") }
            return address
        }
        return ctx
    }
}

/// Sends a request to the cluster: tries members in turn, follows "retryable" answers (no
/// leader yet, leader changed, outcome unknown) with the SAME request until the deadline, so a
/// write applies at most once (client sessions) and a leader failover in between is invisible.
struct WriteClient {
    let ctx: ClusterContext
    let timeoutSeconds: Int
    /// Another client than the context's (a larger answer, as a snapshot's).
    var client: AdminClient? = nil
    /// How long one attempt may take before the next member is tried (the same request). A
    /// request the server works on for long (a leadership transfer waits up to 10 s, a
    /// membership change until it applied, a snapshot of a large state) gets more.
    var attemptTimeoutMillis = 5_000
    /// The order that last worked (the member that answered first): a client reused in a loop
    /// (`--wait`, `events --follow`, the upgrade's waits) probes the members only again after a
    /// request to it failed.
    let remembered = Remembered()

    final class Remembered: Sendable {
        private let value = Mutex<[Target]?>(nil)
        var order: [Target]? {
            get { value.withLock { $0 } }
            set { value.withLock { $0 = newValue } }
        }
    }

    /// Where a request can go: a member of the configuration (its id known) or an `--endpoint`.
    struct Target: Sendable {
        var id: UInt64?
        var address: HostPort
        var name: String { id.map { "peer \($0)" } ?? "\(address)" }
    }

    /// Every target, asked at once for its status with a short deadline: the leader first (the
    /// one saying so in the highest term), then the others that answered, then the silent ones.
    /// A member that cannot be reached (a partition drops its packets) costs this probe's
    /// second, not a connect timeout per attempt, as long as a majority answers from here.
    func ranked(probeMillis: Int = 1_000) async -> [Target] {
        let ctx = self.ctx
        let targets = ctx.endpoints.isEmpty
            ? ctx.config.peers.map { Target(id: $0.id, address: $0.apiAddress) }
            : ctx.endpoints.map { address in Target(id: ctx.config.peers.first { $0.apiAddress == address }?.id, address: address) }
        guard targets.count > 1 else { return targets }
        let answers = await withTaskGroup(of: (Int, MemberStatus?).self) { group in
            for (i, t) in targets.enumerated() {
                group.addTask { (i, try? await ctx.fetchStatus(host: t.address.host, port: Int(t.address.port), consistent: false, timeoutMillis: probeMillis).get()) }
            }
            var out: [Int: MemberStatus] = [:]
            for await (i, s) in group { out[i] = s }
            return out
        }
        var ranked = targets.enumerated().map { i, t -> Target in
            var t = t
            if t.id == nil { t.id = answers[i]?.id }
            return t
        }
        let leader = answers.values.filter { $0.state == "leader" }.max { $0.term < $1.term }?.id
            ?? answers.values.compactMap(\.leader).first
        func rank(_ i: Int) -> Int {
            if let leader, ranked[i].id == leader, answers[i] != nil { return 0 }
            return answers[i] != nil ? 1 : 2
        }
        let order = ranked.indices.sorted { (rank($0), $0) < (rank($1), $1) }
        ranked = order.map { ranked[$0] }
        return ranked
    }

    static func freshClientID() -> String {
        var g = SystemRandomNumberGenerator()
        return "cli-" + String(g.next(), radix: 16) + String(g.next(), radix: 16)
    }

    func send(method: HTTPMethod, path: String, body: [UInt8]?) async throws -> HTTPAnswer {
        let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
        var order: [Target]
        if let known = remembered.order { order = known } else { order = await ranked() }
        var attempt = 0
        var lastError = "no member answered"
        while ContinuousClock.now < deadline {
            let p = order[attempt % order.count]
            attempt += 1
            // No attempt outlives the budget (`--timeout`).
            let left = deadline - ContinuousClock.now
            let leftMillis = Int(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
            do {
                let answer = try await (client ?? ctx.client).request(
                    host: p.address.host, port: Int(p.address.port), method: method, path: path, body: body,
                    timeoutMillis: max(100, min(attemptTimeoutMillis, leftMillis)))
                if (200..<300).contains(answer.status) {
                    order.insert(order.remove(at: (attempt - 1) % order.count), at: 0)
                    remembered.order = order
                    return answer
                }
                remembered.order = nil  // the next request asks every member again
                let e = try? JSONDecoder().decode(APIError.self, from: Data(answer.body))
                lastError = "\(p.name): " + ClusterContext.describe(answer)
                guard e?.retryable == true else { throw CLIError(lastError) }
                // Told who leads: that member next (the same request).
                if let leader = e?.leader, let i = order.firstIndex(where: { $0.id == leader }), i != (attempt - 1) % order.count {
                    order.insert(order.remove(at: i), at: 0)
                    attempt = 0
                    continue
                }
            } catch let e as AdminClientError {
                lastError = "\(p.name): \(e)"
                remembered.order = nil
            }
            if attempt % order.count == 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        throw CLIError("gave up after \(timeoutSeconds) s: \(lastError)")
    }
}
