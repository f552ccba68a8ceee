import ArgumentParser
import Foundation
import NIOHTTP1
import PeerAPI
import PeerConfig

struct TenantsDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Deprovision a tenant: its instances drop it, then it is deleted.")

    @Argument(help: "The tenant id.")
    var id: String

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let ctx = try options.context()
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
