import ArgumentParser
import Foundation
import NIOHTTP1
import PeerAPI
import PeerConfig
import Synchronization

/// Provision-to-`succeeded` latency and provisions per second of the broker on a running cluster
/// (docs/benchmarks.md §Broker). Each of `--concurrency` workers talks to one peer over the
/// admin client's pooled keep-alive HTTPS connections (one per worker at most) (round robin over the cluster's peers, so most requests are forwarded by a follower,
/// as a platform would see it) and repeats: PUT a new instance (202), then poll its
/// `last_operation` every `--poll-ms` until `succeeded`. Latency is from just before the PUT to
/// the poll that saw `succeeded` (resolution: the poll interval). With `--deprovision` a second
/// phase deletes them all the same way (DELETE → 410 on last_operation).
@main
struct BrokerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer-broker-bench",
        abstract: "Benchmark the broker: provision-to-succeeded latency (p50, p99) and provisions per second.")

    @Option(help: "The cluster configuration file; its peers must be running (`peer up`).")
    var config: String

    @Option(help: "Instances to provision.")
    var provisions: Int = 1000

    @Option(help: "Concurrent workers (one connection each).")
    var concurrency: Int = 16

    @Option(help: "Plan id to provision.")
    var plan: String = "dreamface-deployment"

    @Option(help: "Polling interval of last_operation, ms.")
    var pollMs: Int = 5

    @Flag(help: "Deprovision everything afterwards and measure that too.")
    var deprovision = false

    func validate() throws {
        guard (1...1_000_000).contains(provisions) else { throw ValidationError("--provisions must be 1...1000000") }
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1...1024") }
        guard (1...10_000).contains(pollMs) else { throw ValidationError("--poll-ms must be 1...10000") }
    }

    func run() async throws {
        let cluster = try ClusterConfig.load(path: config)
        guard let (service, _) = cluster.catalog.plan(id: plan) else { throw ValidationError("plan \(plan) is not in the catalog of \(config)") }
        let password = try String(contentsOfFile: cluster.broker.passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        // A platform's broker client: server-authenticated TLS and basic auth, no client certificate.
        let client = try AdminClient(caCertificatePath: cluster.caCertificatePath, identity: nil, connectionsPerHostMax: concurrency)
        let auth = "Basic " + Data("\(cluster.broker.username):\(password)".utf8).base64EncodedString()
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let body = Array(#"{"service_id":"\#(service.id)","plan_id":"\#(plan)","organization_guid":"bench","space_guid":"bench"}"#.utf8)
        let setup = Setup(
            peers: cluster.peers.map { ($0.apiAddress.host, Int($0.apiAddress.port)) }, client: client,
            headers: [("Authorization", auth), ("X-Broker-API-Version", "2.17")], pollMs: pollMs)

        print("broker bench: \(provisions) provisions of \(plan), \(concurrency) workers over \(setup.peers.count) peers, polling every \(pollMs) ms, run \(run)")
        let provisioned = try await phase("provision", setup: setup) { i in
            ("PUT", "/v2/service_instances/bench-\(run)-\(i)?accepts_incomplete=true", body, "bench-\(run)-\(i)", "succeeded")
        }
        provisioned.report(unit: "provisions")
        if deprovision {
            let deleted = try await phase("deprovision", setup: setup) { i in
                ("DELETE", "/v2/service_instances/bench-\(run)-\(i)?accepts_incomplete=true&service_id=\(service.id)&plan_id=\(plan)", nil, "bench-\(run)-\(i)", "gone")
            }
            deleted.report(unit: "deprovisions")
        }
    }

    struct Setup: Sendable {
        var peers: [(String, Int)]
        var client: AdminClient
        var headers: [(String, String)]
        var pollMs: Int
    }

    /// Runs `provisions` operations over the workers; each returns its latency in ms.
    func phase(_ name: String, setup: Setup, request: @escaping @Sendable (Int) -> (String, String, [UInt8]?, String, String)) async throws -> Result {
        let next = Counter()
        let total = provisions
        let started = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for worker in 0..<concurrency {
                let (host, port) = setup.peers[worker % setup.peers.count]
                group.addTask {
                    var mine: [Double] = []
                    while true {
                        let i = next.value.add(1, ordering: .relaxed).oldValue
                        guard i < total else { return mine }
                        let (method, path, body, instance, final) = request(i)
                        let t0 = ContinuousClock.now
                        let answer = try await setup.client.request(host: host, port: port, method: HTTPMethod(rawValue: method), path: path, headers: setup.headers, body: body)
                        guard answer.status == 202, let operation = Self.operation(answer.body) else {
                            throw BenchError("\(method) \(path): HTTP \(answer.status) \(String(decoding: answer.body.prefix(300), as: UTF8.self))")
                        }
                        try await Self.poll(host: host, port: port, instance: instance, operation: operation, final: final, setup: setup)
                        let took = ContinuousClock.now - t0
                        mine.append(Double(took.components.seconds) * 1000 + Double(took.components.attoseconds) / 1e15)
                    }
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all
        }
        let elapsed = ContinuousClock.now - started
        return Result(name: name, latenciesMs: latencies.sorted(), elapsedSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    /// Hands out instance numbers to the workers.
    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    static func operation(_ body: [UInt8]) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])?["operation"] as? String
    }

    static func poll(host: String, port: Int, instance: String, operation: String, final: String, setup: Setup) async throws {
        let path = "/v2/service_instances/\(instance)/last_operation?operation=\(operation)"
        while true {
            try await Task.sleep(for: .milliseconds(setup.pollMs))
            let answer = try await setup.client.request(host: host, port: port, method: .GET, path: path, headers: setup.headers)
            if answer.status == 410 && final == "gone" { return }
            guard answer.status == 200, let state = (try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])?["state"] as? String else {
                throw BenchError("GET \(path): HTTP \(answer.status) \(String(decoding: answer.body.prefix(300), as: UTF8.self))")
            }
            if state == "in progress" { continue }
            guard state == final else { throw BenchError("operation \(operation) of \(instance) ended \(state)") }
            return
        }
    }

    struct Result {
        var name: String
        var latenciesMs: [Double]
        var elapsedSeconds: Double

        func percentile(_ p: Double) -> Double {
            guard !latenciesMs.isEmpty else { return 0 }
            let rank = Int((p / 100 * Double(latenciesMs.count)).rounded(.up)) - 1
            return latenciesMs[max(0, min(latenciesMs.count - 1, rank))]
        }

        func report(unit: String) {
            let rate = Double(latenciesMs.count) / elapsedSeconds
            let mean = latenciesMs.reduce(0, +) / Double(max(1, latenciesMs.count))
            print(String(format: "%@: %d %@ in %.2f s = %.1f/s; latency ms p50 %.1f p90 %.1f p99 %.1f max %.1f mean %.1f",
                         name, latenciesMs.count, unit, elapsedSeconds, rate, percentile(50), percentile(90), percentile(99), latenciesMs.last ?? 0, mean))
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
