import ArgumentParser
import Foundation
import NIOHTTP1
import PeerAPI
import PeerConfig

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
            // Linearizable: the member asked may not have applied the move's start yet.
            let answer = try await writer.send(method: .GET, path: "/v1/operations/\(operationId)?consistent=true", body: nil)
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
