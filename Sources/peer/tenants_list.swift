import ArgumentParser
import Foundation
import NIOHTTP1
import PeerAPI
import PeerConfig

struct TenantsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tenants.")

    @Flag(help: "Read through the leader (linearizable) instead of one member's local view.")
    var consistent = false

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let ctx = try options.context()
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
