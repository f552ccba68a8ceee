import ArgumentParser
import Foundation
import NIOHTTP1
import PeerAPI
import PeerConfig

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
        let ctx = try options.context()
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
