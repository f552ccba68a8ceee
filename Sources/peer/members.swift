import ArgumentParser
import Foundation
import NIOHTTP1
import PeerAPI
import PeerConfig

/// `peer members list|add|promote|remove`: the Raft configuration by hand (docs/operations.md
/// §Membership). Raft membership only: an instance's tenants and lifecycle are `peer instances`'.
struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members",
        abstract: "List the Raft members with their progress; add a learner, promote it, remove a member (one change at a time).",
        subcommands: [MembersList.self, MembersAdd.self, MembersPromote.self, MembersRemove.self]
    )
}

struct MembersList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The configuration as the leader sees it: role, progress, the instance's state.")

    @OptionGroup var options: TenantOptions

    func run() async throws {
        try await MembersRequest.send(.GET, "/v1/members", body: nil, options: options)
    }
}

struct MembersAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a member as a learner (promote it once caught up). A host not in the cluster's state also needs its addresses; start it with `peer run --existing` first.")

    @Argument(help: "The member's id (its peer id).")
    var id: String

    @Option(help: "Its peer-to-peer address, host:port (for a host the cluster's state does not know).")
    var peer: String?

    @Option(help: "Its admin API address, host:port.")
    var api: String?

    @Option(help: "Its router's address, host:port, if it runs a data plane.")
    var router: String?

    @Option(help: "Its components' host and base port, if it runs a data plane.")
    var components: String?

    @OptionGroup var options: TenantOptions

    func run() async throws {
        for (name, value) in [("peer", peer), ("api", api), ("router", router), ("components", components)] {
            if let value, HostPort(value) == nil { throw ValidationError("--\(name) must be host:port, got \(value)") }
        }
        let body = try JSONEncoder().encode(MemberAddRequest(id: id, peer: peer, api: api, router: router, components: components))
        try await MembersRequest.send(.POST, "/v1/members", body: Array(body), options: options)
    }
}

struct MembersPromote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "promote", abstract: "Make a caught-up learner a voter.")

    @Argument(help: "The learner's id.")
    var id: String

    @OptionGroup var options: TenantOptions

    func run() async throws {
        try await MembersRequest.send(.POST, "/v1/members/\(try MembersRequest.checked(id))/promote", body: nil, options: options)
    }
}

struct MembersRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a member from the Raft configuration. Refused for the leader (peer leader transfer first), for a member holding tenants (peer instances drain first), and when no answering quorum would be left.")

    @Argument(help: "The member's id.")
    var id: String

    @OptionGroup var options: TenantOptions

    func run() async throws {
        try await MembersRequest.send(.POST, "/v1/members/\(try MembersRequest.checked(id))/remove", body: nil, options: options)
    }
}

enum MembersRequest {
    static func checked(_ id: String) throws -> String {
        guard let n = UInt64(id), n > 0 else { throw ValidationError("a member id is a positive integer, got \(id)") }
        return "\(n)"
    }

    /// Sends the request (retried across members while the answer is retryable) and prints the
    /// configuration it answers with.
    static func send(_ method: HTTPMethod, _ path: String, body: [UInt8]?, options: TenantOptions) async throws {
        let ctx = try options.context()
        // A change answers once it applied (up to the 10 s proposal deadline): one attempt may
        // take that long, so a slow change is not sent again.
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout, attemptTimeoutMillis: 12_000).send(method: method, path: path, body: body)
        switch options.output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table: print(render(try JSONDecoder().decode(MembersInfo.self, from: Data(answer.body))), terminator: "")
        }
    }

    static func render(_ info: MembersInfo) -> String {
        var rows = [["ID", "ROLE", "LEADER", "ADDRESS", "MATCH", "BEHIND", "CAUGHT-UP", "ACTIVE", "INSTANCE", "VERSION", "PLACED"]]
        for m in info.members {
            rows.append([
                String(m.id), m.role, m.leader ? "*" : "", m.address.isEmpty ? "-" : m.address, String(m.match), String(m.behind),
                m.caughtUp ? "yes" : "no", m.recentActive ? "yes" : "no", m.instanceState ?? "-", m.version ?? "-", String(m.placements),
            ])
        }
        let voters = info.members.filter { $0.role == "voter" }.count
        return Table.render(rows) + "\(voters) voter(s), \(info.members.count - voters) learner(s); leader \(info.leader), term \(info.term), last index \(info.lastIndex)\n"
    }
}

/// `peer leader transfer [--to ID]`: hands leadership to another voter (the most caught-up one
/// that answers, if none is named) and waits until it leads.
struct LeaderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leader", abstract: "Hand leadership to another voter.", subcommands: [LeaderTransfer.self])
}

struct LeaderTransfer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer", abstract: "Hand leadership to a voter (--to), or to the most caught-up voter that answers; waits until it leads.")

    @Option(help: "The voter to hand leadership to.")
    var to: UInt64?

    @OptionGroup var options: TenantOptions

    func run() async throws {
        let ctx = try options.context()
        let body = try JSONEncoder().encode(LeaderTransferRequest(to: to))
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout, attemptTimeoutMillis: 12_000).send(method: .POST, path: "/v1/leader/transfer", body: Array(body))
        let info = try JSONDecoder().decode(LeaderTransferInfo.self, from: Data(answer.body))
        switch options.output {
        case .json: print(String(decoding: answer.body, as: UTF8.self))
        case .table: print("leadership moved from peer \(info.from) to peer \(info.to) (term \(info.term)) in \(info.millis) ms")
        }
    }
}
