import ArgumentParser
import Failpoints
import Foundation
import NIOHTTP1
import PeerAPI

/// `peer failpoints`: every named failpoint, for chaos scripts to iterate over; `arm` and
/// `disarm` one in a running peer (started with `PEER_FAILPOINT=armable`). docs/testing.md.
struct FailpointsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failpoints",
        abstract: "List the failpoints a peer can die at (PEER_FAILPOINT); arm or disarm one in a running peer.",
        subcommands: [FailpointsList.self, FailpointsArm.self, FailpointsDisarm.self],
        defaultSubcommand: FailpointsList.self)
}

struct FailpointsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List every failpoint.")

    @Flag(help: "Only the names, one per line.")
    var names = false

    func run() throws {
        if names {
            for f in Failpoint.allCases { print(f.rawValue) }
            return
        }
        var rows = [["FAILPOINT", "WHERE THE PROCESS EXITS (STATUS \(Failpoint.exitStatus))"]]
        for f in Failpoint.allCases { rows.append([f.rawValue, f.meaning]) }
        print(Table.render(rows), terminator: "")
    }
}

struct FailpointsArm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "arm", abstract: "Make one running peer exit at a failpoint.")

    @Argument(help: "The failpoint (`peer failpoints` lists them).")
    var name: String

    @Option(help: "The peer's id.")
    var member: UInt64

    @Option(help: "The cluster configuration file.")
    var config: String

    func run() async throws {
        guard Failpoint(rawValue: name) != nil else {
            throw ValidationError("no failpoint \(name); `peer failpoints` lists them")
        }
        try await FailpointsRequest.send(.PUT, "/v1/failpoints/\(name)", member: member, config: config)
        print("peer \(member): failpoint \(name) armed")
    }
}

struct FailpointsDisarm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disarm", abstract: "Disarm a running peer's failpoint.")

    @Option(help: "The peer's id.")
    var member: UInt64

    @Option(help: "The cluster configuration file.")
    var config: String

    func run() async throws {
        try await FailpointsRequest.send(.DELETE, "/v1/failpoints", member: member, config: config)
        print("peer \(member): no failpoint armed")
    }
}

enum FailpointsRequest {
    static func send(_ method: HTTPMethod, _ path: String, member: UInt64, config: String) async throws {
        let ctx = try ClusterContext(configPath: config)
        guard let peer = ctx.config.peer(id: member) else { throw ValidationError("--member \(member): no such peer in \(config)") }
        let answer = try await ctx.client.request(host: peer.apiAddress.host, port: Int(peer.apiAddress.port), method: method, path: path, timeoutMillis: 5_000)
        guard answer.status == 200 else { throw CLIError("peer \(member): \(ClusterContext.describe(answer))") }
    }
}
