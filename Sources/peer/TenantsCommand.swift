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

struct TenantsCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a tenant.")

    @Argument(help: "The tenant id (a DNS label: a-z, 0-9, '-').")
    var id: String

    @Option(help: "The tenant's plan (a catalog plan id or name).")
    var plan: String = "development"

    @Flag(help: "Return only once the tenant is ready and served by an instance.")
    var wait = false

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let ctx = try ClusterContext(configPath: options.config)
        let client = WriteClient.freshClientID()
        let body = try JSONEncoder().encode(CreateTenantRequest(id: id, plan: plan, clientId: client, sequence: 1))
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout).send(method: .POST, path: "/v1/tenants", body: Array(body))
        let result = try JSONDecoder().decode(WriteResult.self, from: Data(answer.body))
        switch options.output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table: print("tenant \(id): created (\(result.result))")
        }
        if wait {
            let instance = try await TenantWait(ctx: ctx, timeoutSeconds: options.timeout).untilServed(id)
            if options.output == .table { print("tenant \(id): ready, served by instance \(instance)") }
        }
    }
}

struct TenantsDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Deprovision a tenant: its instances drop it, then it is deleted.")

    @Argument(help: "The tenant id.")
    var id: String

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let ctx = try ClusterContext(configPath: options.config)
        guard let escaped = id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) else {
            throw ValidationError("tenant id \(id) cannot be put in a URL")
        }
        let path = "/v1/tenants/\(escaped)?clientId=\(WriteClient.freshClientID())&sequence=1"
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout).send(method: .DELETE, path: path, body: nil)
        let result = try JSONDecoder().decode(WriteResult.self, from: Data(answer.body))
        switch options.output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table: print("tenant \(id): deprovisioning (\(result.result))")
        }
    }
}

/// `peer tenants move TENANT --to INSTANCE`: make-before-break; waits until the move succeeded
/// or failed (exit 1 with why), printing each phase change.
struct TenantsMove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "move",
        abstract: "Move a tenant to another instance without losing a request, and wait until it is done.")

    @Argument(help: "The tenant id.")
    var id: String

    @Option(help: "The target instance (its peer id).")
    var to: String

    @Option(help: "The cluster configuration file.")
    var config: String

    @Option(help: "table or json.")
    var output: OutputFormat = .table

    @Option(help: "Give up waiting after this many seconds (the move goes on; `peer tenants list` shows where it is).")
    var timeout: Int = 120

    func run() async throws {
        let ctx = try ClusterContext(configPath: config)
        guard let escaped = id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) else {
            throw ValidationError("tenant id \(id) cannot be put in a URL")
        }
        let client = WriteClient.freshClientID()
        let operationId = "move-\(client)"
        let body = try JSONEncoder().encode(MoveTenantRequest(to: to, operationId: operationId, clientId: client, sequence: 1))
        let started = ContinuousClock.now
        let writer = WriteClient(ctx: ctx, timeoutSeconds: min(timeout, 30))
        _ = try await writer.send(method: .POST, path: "/v1/tenants/\(escaped)/move", body: Array(body))
        var lastLine = ""
        let deadline = started + .seconds(timeout)
        while true {
            let answer = try await writer.send(method: .GET, path: "/v1/operations/\(operationId)", body: nil)
            let op = try JSONDecoder().decode(OperationInfo.self, from: Data(answer.body))
            let line = "\(op.state): \(op.placements.joined(separator: " "))"
            if output == .table, line != lastLine {
                let ms = (ContinuousClock.now - started).components
                print(String(format: "%7.3f s  ", Double(ms.seconds) + Double(ms.attoseconds) / 1e18) + line)
                lastLine = line
            }
            if op.state != "in progress" {
                if output == .json { print(String(decoding: answer.body, as: UTF8.self)) }
                guard op.state == "succeeded" else { throw CLIError("move of \(id) to \(to) failed: \(op.description)") }
                if output == .table { print("tenant \(id): \(op.description)") }
                return
            }
            guard ContinuousClock.now < deadline else {
                throw CLIError("move of \(id) to \(to) still in progress after \(timeout) s (\(op.placements.joined(separator: " "))); operation \(operationId)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// Polls the tenant list until a tenant is ready and served.
struct TenantWait {
    let ctx: ClusterContext
    let timeoutSeconds: Int

    func untilServed(_ id: String) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
        let writer = WriteClient(ctx: ctx, timeoutSeconds: timeoutSeconds)
        while true {
            let answer = try await writer.send(method: .GET, path: "/v1/tenants", body: nil)
            let tenants = try JSONDecoder().decode([TenantInfo].self, from: Data(answer.body))
            if let t = tenants.first(where: { $0.id == id }), t.state == "ready", let instance = t.activeInstance { return instance }
            guard ContinuousClock.now < deadline else { throw CLIError("tenant \(id) is not ready and served after \(timeoutSeconds) s") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

struct TenantsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tenants.")

    @Flag(help: "Read through the leader (linearizable) instead of one member's local view.")
    var consistent = false

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let ctx = try ClusterContext(configPath: options.config)
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout)
            .send(method: .GET, path: "/v1/tenants" + (consistent ? "?consistent=true" : ""), body: nil)
        let tenants = try JSONDecoder().decode([TenantInfo].self, from: Data(answer.body))
        switch options.output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table:
            var rows = [["TENANT", "PLAN", "STATE", "INSTANCE", "COMPONENTS"]]
            for t in tenants { rows.append([t.id, t.plan, t.state, t.activeInstance ?? "-", t.components.joined(separator: ",")]) }
            print(Table.render(rows), terminator: "")
            print("\(tenants.count) tenant(s)")
        }
    }
}

/// Sends a request to the cluster: tries members in turn, follows "retryable" answers (no
/// leader yet, leader changed, outcome unknown) with the SAME request until the deadline, so a
/// write applies at most once (client sessions) and a leader failover in between is invisible.
struct WriteClient {
    let ctx: ClusterContext
    let timeoutSeconds: Int

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
                let answer = try await ctx.client.request(host: p.apiAddress.host, port: Int(p.apiAddress.port), method: method, path: path, body: body, timeoutMillis: 5_000)
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
