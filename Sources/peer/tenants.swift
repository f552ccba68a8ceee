import ArgumentParser
import Foundation
import NIOHTTP1
import PeerAPI
import PeerConfig

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

    static func freshClientID() -> String {
        var g = SystemRandomNumberGenerator()
        return "cli-" + String(g.next(), radix: 16) + String(g.next(), radix: 16)
    }

    func send(method: HTTPMethod, path: String, body: [UInt8]?) async throws -> HTTPAnswer {
        let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
        let peers = ctx.config.peers
        var attempt = 0
        var lastError = "no member answered"
        while ContinuousClock.now < deadline {
            let p = peers[attempt % peers.count]
            attempt += 1
            do {
                let answer = try await (client ?? ctx.client).request(host: p.apiAddress.host, port: Int(p.apiAddress.port), method: method, path: path, body: body, timeoutMillis: attemptTimeoutMillis)
                if (200..<300).contains(answer.status) { return answer }
                let e = try? JSONDecoder().decode(APIError.self, from: Data(answer.body))
                lastError = "peer \(p.id): " + ClusterContext.describe(answer)
                guard e?.retryable == true else { throw CLIError(lastError) }
            } catch let e as AdminClientError {
                lastError = "peer \(p.id): \(e)"
            }
            if attempt % peers.count == 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        throw CLIError("gave up after \(timeoutSeconds) s: \(lastError)")
    }
}
