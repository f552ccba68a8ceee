import Foundation
import PeerAPI
import PeerConfig
import Raft

/// What the cluster commands share: the loaded configuration and an admin client.
struct ClusterContext {
    let config: ClusterConfig
    let client: AdminClient
    /// `--endpoint`: the API addresses requests go to instead of the configuration's members.
    var endpoints: [HostPort] = []

    init(configPath: String) throws {
        do {
            config = try ClusterConfig.load(path: configPath)
        } catch {
            throw CLIError("\(error)")
        }
        let tls = APITLSFiles(caCertificatePath: config.caCertificatePath, certificatePath: config.adminCertificatePath, privateKeyPath: config.adminPrivateKeyPath)
        for path in [tls.caCertificatePath, tls.certificatePath, tls.privateKeyPath] where !FileManager.default.fileExists(atPath: path) {
            throw CLIError("\(path) does not exist: run `peer init --config \(configPath)` first")
        }
        do {
            client = try AdminClient(tls: tls)
        } catch {
            throw CLIError("\(error)")
        }
    }

    func settings(for id: UInt64) throws -> RuntimeSettings {
        guard let me = config.peer(id: id) else {
            throw CLIError("peer \(id) is not in \(config.file ?? "the configuration") (peers: \(config.peers.map { String($0.id) }.joined(separator: ", ")))")
        }
        return RuntimeSettings(
            clusterID: config.cluster, selfID: id, me: me, seeds: config.peers,
            dataDirectory: config.dataDirectory(for: id),
            caCertificatePath: config.caCertificatePath,
            certificatePath: config.peerCertificatePath(for: id),
            privateKeyPath: config.peerPrivateKeyPath(for: id),
            tickMillis: config.timing.tickMs, electionTicks: config.timing.electionTicks,
            heartbeatTicks: config.timing.heartbeatTicks, snapshotEveryEntries: UInt64(config.timing.snapshotEveryEntries),
            adminTokenFile: config.admin.tokenFile, brokerPasswordHashFile: config.broker.passwordHashFile,
            broker: config.broker, catalog: config.catalog, config: config
        )
    }

    /// Asks every member for its status at once, the config file's and then the instances added
    /// at run time (from the state the first answers carry); a member that does not answer is a
    /// failure with why.
    func memberStatuses(consistent: Bool, timeoutMillis: Int = 2_000) async -> [(ClusterConfig.Peer, Result<MemberStatus, CLIError>)] {
        let configured = await statuses(of: config.peers, consistent: consistent, timeoutMillis: timeoutMillis)
        let answers = configured.compactMap { try? $0.1.get() }
        let instances = (answers.first { $0.state == "leader" } ?? answers.first)?.instances ?? []
        let known = Set(config.peers.map(\.id))
        let added: [ClusterConfig.Peer] = instances.compactMap { i in
            guard i.state != "removed", let id = UInt64(i.id), !known.contains(id), let peer = HostPort(i.address),
                  let api = i.apiAddress.flatMap(HostPort.init) else { return nil }
            return .provisioned(
                id: id, peerAddress: peer, apiAddress: api, routerAddress: i.routerAddress.flatMap(HostPort.init), routerControlAddress: nil,
                componentAddress: i.componentsAddress.flatMap(HostPort.init))
        }
        guard !added.isEmpty else { return configured }
        return configured + (await statuses(of: added, consistent: consistent, timeoutMillis: timeoutMillis))
    }

    func statuses(of peers: [ClusterConfig.Peer], consistent: Bool, timeoutMillis: Int) async -> [(ClusterConfig.Peer, Result<MemberStatus, CLIError>)] {
        await withTaskGroup(of: (Int, Result<MemberStatus, CLIError>).self) { group in
            for (i, p) in peers.enumerated() {
                group.addTask {
                    (i, await fetchStatus(host: p.apiAddress.host, port: Int(p.apiAddress.port), consistent: consistent, timeoutMillis: timeoutMillis))
                }
            }
            var out: [(Int, Result<MemberStatus, CLIError>)] = []
            for await r in group { out.append(r) }
            return out.sorted { $0.0 < $1.0 }.map { (peers[$0.0], $0.1) }
        }
    }

    func fetchStatus(host: String, port: Int, consistent: Bool, timeoutMillis: Int) async -> Result<MemberStatus, CLIError> {
        do {
            let answer = try await client.request(host: host, port: port, method: .GET, path: "/v1/status" + (consistent ? "?consistent=true" : ""), timeoutMillis: timeoutMillis)
            guard answer.status == 200 else {
                return .failure(CLIError(Self.describe(answer)))
            }
            return .success(try JSONDecoder().decode(MemberStatus.self, from: Data(answer.body)))
        } catch let e as AdminClientError {
            return .failure(CLIError("\(e)"))
        } catch {
            return .failure(CLIError("unreadable status: \(error)"))
        }
    }

    static func describe(_ answer: HTTPAnswer) -> String {
        if let e = try? JSONDecoder().decode(APIError.self, from: Data(answer.body)) {
            return "HTTP \(answer.status) \(e.code): \(e.error)"
        }
        return "HTTP \(answer.status): \(String(decoding: answer.body.prefix(200), as: UTF8.self))"
    }
}

/// A failure the CLI reports in one line and exits non-zero for.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
