import ArgumentParser
import Foundation
import PeerAPI
import PeerConfig

/// The JSON form of `peer status` (docs/api.md §peer status). Field names are an interface.
struct ClusterStatus: Codable {
    struct Member: Codable {
        var id: UInt64
        /// Peer-to-peer TLS address, host:port.
        var address: String
        var apiAddress: String
        /// `voter` / `learner` (from the member's own report, else the leader's configuration).
        var role: String
        /// `leader`, `follower`, `candidate`, `preCandidate`, or `unreachable`.
        var state: String
        var term: UInt64?
        var commitIndex: UInt64?
        var appliedIndex: UInt64?
        /// The member's latest snapshot (its log starts after it).
        var snapshotIndex: UInt64?
        /// Snapshots it received from a leader since it started (catch-up by snapshot).
        var snapshotsInstalled: Int?
        /// How many entries this member's applied index trails the leader's commit index.
        var trailsLeaderBy: UInt64?
        /// Milliseconds since the leader last heard from this member (leader's view).
        var lastContactMs: Int?
        var version: String?
        var stateDigest: String?
        var pid: Int32?
        var haltReason: String?
        /// Why it is unreachable.
        var error: String?
        /// The HTTP address of this member's NGINX, when it runs a router.
        var routerURL: String?
        /// Its agent's components, the tenants they serve, its router's confirmed config, load.
        var dataPlane: DataPlaneReport?
        /// Bytes its data directory holds (the store, its WAL, the agent's files and logs).
        var dataBytes: UInt64? = nil
    }

    var cluster: String
    var healthy: Bool
    /// How many more voters may fail with a quorum left.
    var failureTolerance: Int
    var leader: UInt64?
    var term: UInt64?
    /// `members` (each member's own applied state) or `linearizable` (ReadIndex through the leader).
    var source: String
    var readAtMs: Int64
    var members: [Member]
    var instances: [InstanceInfo]
    var tenants: Int?
    /// Paused or not, and the last decision (the leader's view, else the first member's).
    var balancer: BalancerInfo?
}

/// `peer status`: the cluster line, the members table, instances and tenant counts.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the cluster: leader, term, health; every member (unreachable ones too); instances; tenants.")

    @Option(help: "The cluster configuration file.")
    var config: String

    @Option(help: "table or json.")
    var output: OutputFormat = .table

    @Flag(help: "Read through the leader with ReadIndex (linearizable) instead of each member's local view.")
    var consistent = false

    @Option(help: "Ask only this member's API (host:port or https://host:port) instead of every member of the configuration.")
    var endpoint: String?

    func run() async throws {
        let ctx = try ClusterContext(configPath: config)
        var peers = ctx.config.peers
        if let endpoint {
            let hp = endpoint.replacingOccurrences(of: "https://", with: "").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            guard let addr = HostPort(hp) else { throw ValidationError("--endpoint \(endpoint) is not host:port") }
            peers = peers.filter { $0.apiAddress == addr }
            guard !peers.isEmpty else { throw ValidationError("--endpoint \(endpoint) is no member's API address in \(config)") }
        }
        let all = await ctx.memberStatuses(consistent: consistent)
        let results = endpoint == nil ? all : all.filter { r in peers.contains { $0.id == r.0.id } }
        let status = Self.assemble(config: ctx.config, results: results, consistent: consistent)
        switch output {
        case .json:
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(status), as: UTF8.self))
        case .table:
            print(Self.render(status))
        }
        if status.leader == nil { throw ExitCode(2) }
    }

    static func assemble(config: ClusterConfig, results: [(ClusterConfig.Peer, Result<MemberStatus, CLIError>)], consistent: Bool) -> ClusterStatus {
        let ok = results.compactMap { try? $0.1.get() }
        // The leader is the member that says it leads in the highest term.
        let leaderStatus = ok.filter { $0.state == "leader" }.max { $0.term < $1.term }
        let voters = leaderStatus?.voters ?? ok.first?.voters ?? config.peers.map(\.id)
        var members: [ClusterStatus.Member] = []
        for (p, r) in results {
            switch r {
            case .success(let s):
                let trails = leaderStatus.map { $0.commitIndex > s.appliedIndex ? $0.commitIndex - s.appliedIndex : 0 }
                let contact = s.id == leaderStatus?.id ? 0 : leaderStatus?.lastContactMs["\(s.id)"]
                members.append(.init(id: s.id, address: s.address, apiAddress: s.apiAddress, role: s.role, state: s.state, term: s.term,
                                     commitIndex: s.commitIndex, appliedIndex: s.appliedIndex,
                                     snapshotIndex: s.snapshotIndex, snapshotsInstalled: s.snapshotsInstalled, trailsLeaderBy: trails,
                                     lastContactMs: contact, version: s.version, stateDigest: s.stateDigest, pid: s.pid, haltReason: s.haltReason, error: nil,
                                     routerURL: s.routerURL, dataPlane: s.dataPlane, dataBytes: s.dataBytes))
            case .failure(let e):
                let role = voters.contains(p.id) ? "voter" : "learner"
                members.append(.init(id: p.id, address: p.peerAddress.description, apiAddress: p.apiAddress.description, role: role, state: "unreachable",
                                     lastContactMs: leaderStatus?.lastContactMs["\(p.id)"], error: e.description))
            }
        }
        let quorum = voters.count / 2 + 1
        let healthyVoters = members.filter { m in
            voters.contains(m.id) && m.state != "unreachable" && m.haltReason == nil && (m.trailsLeaderBy ?? UInt64.max) < 1_000
        }.count
        let healthy = leaderStatus != nil && healthyVoters >= quorum
        return ClusterStatus(
            cluster: config.cluster, healthy: healthy, failureTolerance: max(0, healthyVoters - quorum),
            leader: leaderStatus?.id, term: leaderStatus?.term ?? ok.map(\.term).max(),
            source: consistent ? "linearizable" : "members",
            readAtMs: Int64(Date().timeIntervalSince1970 * 1000), members: members,
            instances: leaderStatus?.instances ?? ok.first?.instances ?? [],
            tenants: leaderStatus?.tenantCount ?? ok.first?.tenantCount,
            balancer: leaderStatus?.balancer ?? ok.first?.balancer
        )
    }

    static func cell<T: CustomStringConvertible>(_ v: T?) -> String { v.map { $0.description } ?? "-" }

    static func render(_ s: ClusterStatus) -> String {
        var out = ""
        let when = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(s.readAtMs) / 1000))
        let source = s.source == "linearizable" ? "linearizable reads through the leader" : "each member's own view"
        out += "cluster \(s.cluster): \(s.healthy ? "healthy" : "UNHEALTHY"), failure tolerance \(s.failureTolerance), "
        out += "leader \(s.leader.map { "peer \($0)" } ?? "none"), term \(s.term.map(String.init) ?? "-")\n"
        out += "source: \(source), at \(when)\n\n"
        var rows = [["ID", "ADDRESS", "ROLE", "STATE", "TERM", "COMMIT", "APPLIED", "TRAILS", "CONTACT", "VERSION", "DIGEST", "PID", "DATA"]]
        for m in s.members {
            var row: [String] = [String(m.id), m.address, m.role, m.state]
            row.append(Self.cell(m.term))
            row.append(Self.cell(m.commitIndex))
            row.append(Self.cell(m.appliedIndex))
            row.append(Self.cell(m.trailsLeaderBy))
            row.append(m.lastContactMs.map { "\($0)ms" } ?? "-")
            row.append(m.version ?? "-")
            row.append(m.stateDigest.map { String($0.prefix(12)) } ?? "-")
            row.append(Self.cell(m.pid))
            row.append(m.dataBytes.map { Table.bytes($0) } ?? "-")
            rows.append(row)
        }
        out += Table.render(rows)
        for m in s.members {
            if let e = m.error { out += "  peer \(m.id) unreachable: \(e)\n" }
            if let h = m.haltReason { out += "  peer \(m.id) HALTED: \(h)\n" }
        }
        out += "\ninstances: \(s.instances.count)\n"
        if !s.instances.isEmpty {
            var irows = [["INSTANCE", "ADDRESS", "ROLE", "STATE", "VERSION", "TENANTS"]]
            for i in s.instances { irows.append([i.id, i.address, i.role, i.state, i.version, String(i.activeTenants)]) }
            out += Table.render(irows)
        }
        out += "tenants: \(s.tenants.map(String.init) ?? "unknown")"
        if let b = s.balancer, b.enabled || b.eventCount > 0 {
            out += "\nbalancer: \(b.paused ? "PAUSED" : b.enabled ? "acting" : "not enabled"), \(b.eventCount) event(s)"
            if let e = b.lastEvent {
                out += "; last: \(e.kind) \(e.instance.map { "instance \($0)" } ?? "cluster") at \(EventsTable.time(e.atMs)): \(e.reason)"
            }
        }
        out += renderDataPlane(s)
        return out
    }

    /// Per instance: its router, the components its agent runs, the tenants they serve, load.
    static func renderDataPlane(_ s: ClusterStatus) -> String {
        let planes = s.members.compactMap { m in m.dataPlane.map { (m.id, $0) } }
        guard !planes.isEmpty else { return "" }
        var out = "\n\ndata plane:\n"
        var rows = [["INSTANCE", "ROUTER", "CONFIRMED", "SERVING", "REQ/S", "ERR/S", "P99"]]
        for (id, d) in planes {
            rows.append([
                String(id), d.routerURL ?? "-", Self.cell(d.routerConfirmedIndex), String(d.servingTenants.count),
                d.load.map { String(format: "%.1f", $0.requestsPerSecond) } ?? "-",
                d.load.map { String(format: "%.1f", $0.errorsPerSecond) } ?? "-",
                d.load?.upstreamP99Ms.map { String(format: "%.0fms", $0) } ?? "-",
            ])
        }
        out += Table.render(rows)
        var crows = [["INSTANCE", "COMPONENT", "PID", "STATE", "TENANTS", "RESTARTS", "CPU", "RSS", "LAST EXIT"]]
        for (id, d) in planes {
            for c in d.components {
                crows.append([
                    String(id), c.name, Self.cell(c.pid), c.state, String(c.tenants), String(c.restarts),
                    c.cpuPermille.map { String(format: "%.1f%%", Double($0) / 10) } ?? "-",
                    c.rssBytes.map { "\($0 >> 20)MiB" } ?? "-", c.lastExit ?? "-",
                ])
            }
        }
        if crows.count > 1 { out += "\n" + Table.render(crows) }
        for (id, d) in planes {
            if let e = d.routerError { out += "  instance \(id) router: \(e)\n" }
            if !d.servingTenants.isEmpty {
                let shown = d.servingTenants.prefix(20).joined(separator: " ")
                out += "  instance \(id) serves: \(shown)\(d.servingTenants.count > 20 ? " ... (\(d.servingTenants.count))" : "")\n"
            }
            if let load = d.load, !load.topTenants.isEmpty {
                out += "  instance \(id) busiest: " + load.topTenants.prefix(5).map { "\($0.tenant) " + String(format: "%.1f/s", $0.requestsPerSecond) }.joined(separator: ", ") + "\n"
            }
        }
        return out
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json

}
