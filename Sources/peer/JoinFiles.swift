import Foundation
import Leader
import PeerCerts
import PeerConfig
import Providers
import Raft

/// The files an instance the leader provisions starts from (docs/adr/0013-instances-join-and-
/// leave.md). The leader makes them and the provider hands them over as bootstrap files (0600,
/// never in argv or the environment); `peer run --join DIR` reads them:
///
/// - `join.json`: the cluster id, the instance's id and the members it dials first (`Join`).
/// - `cluster.yaml`: the cluster's configuration file as the leader runs it, for the cluster-wide
///   settings (timings, limits, catalog, components, router). Its `peers` are not this instance.
/// - `ca.pem`, `peer.pem`, `peer.key`: the CA certificate (never its key) and this instance's
///   certificate, issued by the leader, naming only `peer://<cluster>/node/<id>` (and localhost).
/// - `broker-password.sha256`: the broker password's salted hash; `admin-token` if the
///   cluster accepts one.
///
/// The instance's own addresses come from its command line (the provider's placeholders), as
/// only the provider knows them before it starts.
enum JoinFiles {
    static let join = "join.json"
    static let config = "cluster.yaml"
    static let caCertificate = "ca.pem"
    static let certificate = "peer.pem"
    static let privateKey = "peer.key"
    static let brokerPasswordHash = "broker-password.sha256"
    static let adminToken = "admin-token"

    /// `join.json`.
    struct Join: Codable, Sendable, Hashable {
        static let currentVersion = 1
        var version: Int
        var cluster: String
        var id: UInt64
        /// The members this instance dials until it knows the Raft configuration: the leader's
        /// view when it provisioned it (at least the voters).
        var members: [Member]
    }

    struct Member: Codable, Sendable, Hashable {
        var id: UInt64
        var peer: String
        var api: String
        var router: String?
        var components: String?
    }

    /// What the leader hands over for instance `id`.
    static func bundle(
        id: UInt64, config: ClusterConfig, configText: String, authority: CertificateAuthority, members: [Member]
    ) throws -> [String: String] {
        let issued = try authority.issuePeerPEM(nodeID: id, dnsNames: ["localhost"])
        let join = Join(version: Join.currentVersion, cluster: config.cluster, id: id, members: members)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        var files: [String: String] = [
            Self.join: String(decoding: try encoder.encode(join), as: UTF8.self),
            Self.config: configText,
            Self.caCertificate: try authority.trustBundlePEM,
            Self.certificate: issued.certificatePEM,
            Self.privateKey: issued.privateKeyPEM,
            Self.brokerPasswordHash: try BrokerFiles.readPrivate(config.broker.passwordHashFile, what: "broker.passwordHashFile") + "\n",
        ]
        if let token = config.admin.tokenFile {
            files[Self.adminToken] = try BrokerFiles.readPrivate(token, what: "admin.tokenFile") + "\n"
        }
        return files
    }

    /// The addresses `peer run --join` is given on its command line.
    struct Addresses: Sendable {
        var peer: HostPort
        var api: HostPort
        var router: HostPort?
        var routerControl: HostPort?
        var components: HostPort?
    }

    /// The settings of a joining instance from its join directory, its data directory and its
    /// addresses. Every file is checked with a message naming it.
    static func settings(directory: String, dataDirectory: String, addresses: Addresses) throws -> RuntimeSettings {
        func path(_ name: String) -> String { directory.hasSuffix("/") ? directory + name : directory + "/" + name }
        let joinPath = path(Self.join)
        let join: Join
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: joinPath))
            guard data.count <= 64 * 1024 else { throw CLIError("\(joinPath): \(data.count) bytes; a join file is at most 64 KiB") }
            join = try JSONDecoder().decode(Join.self, from: data)
        } catch let e as CLIError {
            throw e
        } catch {
            throw CLIError("\(joinPath): not a join file: \(error)")
        }
        guard join.version == Join.currentVersion else {
            throw CLIError("\(joinPath): version \(join.version); this build reads version \(Join.currentVersion)")
        }
        guard ClusterConfig.peerIDRange.contains(join.id) else { throw CLIError("\(joinPath): id \(join.id) is not a peer id") }
        let config: ClusterConfig
        do {
            config = try ClusterConfig.load(path: path(Self.config))
        } catch {
            throw CLIError("\(path(Self.config)): \(error)")
        }
        guard config.cluster == join.cluster else {
            throw CLIError("\(joinPath): cluster \(join.cluster), but \(Self.config) is cluster \(config.cluster)")
        }
        guard config.peer(id: join.id) == nil, !join.members.contains(where: { $0.id == join.id }) else {
            throw CLIError("\(joinPath): id \(join.id) is already a member; a joining instance has a new id")
        }
        var seeds: [ClusterConfig.Peer] = []
        for m in join.members {
            guard let peer = HostPort(m.peer), let api = HostPort(m.api) else {
                throw CLIError("\(joinPath): member \(m.id) has an invalid peer or api address (\(m.peer), \(m.api))")
            }
            let router = try m.router.map { r in
                guard let h = HostPort(r) else { throw CLIError("\(joinPath): member \(m.id) has an invalid router address \(r)") }
                return h
            }
            let components = try m.components.map { c in
                guard let h = HostPort(c) else { throw CLIError("\(joinPath): member \(m.id) has an invalid components address \(c)") }
                return h
            }
            seeds.append(.provisioned(id: m.id, peerAddress: peer, apiAddress: api, routerAddress: router, routerControlAddress: nil, componentAddress: components))
        }
        guard !seeds.isEmpty else { throw CLIError("\(joinPath): no members to dial") }
        let me = ClusterConfig.Peer.provisioned(
            id: join.id, peerAddress: addresses.peer, apiAddress: addresses.api, routerAddress: addresses.router,
            routerControlAddress: addresses.routerControl, componentAddress: addresses.components)
        for name in [Self.caCertificate, Self.certificate, Self.privateKey, Self.brokerPasswordHash] where !FileManager.default.fileExists(atPath: path(name)) {
            throw CLIError("\(path(name)) does not exist: the join directory is incomplete")
        }
        let token = path(Self.adminToken)
        return RuntimeSettings(
            clusterID: config.cluster, selfID: join.id, me: me, seeds: seeds + [me], joining: true,
            dataDirectory: dataDirectory,
            caCertificatePath: path(Self.caCertificate),
            certificatePath: path(Self.certificate),
            privateKeyPath: path(Self.privateKey),
            tickMillis: config.timing.tickMs, electionTicks: config.timing.electionTicks,
            heartbeatTicks: config.timing.heartbeatTicks, snapshotEveryEntries: UInt64(config.timing.snapshotEveryEntries),
            adminTokenFile: FileManager.default.fileExists(atPath: token) ? token : nil,
            brokerPasswordHashFile: path(Self.brokerPasswordHash),
            broker: config.broker, catalog: config.catalog, config: config)
    }
}

/// The cluster file's `provider:` as a running provider, and what the leader needs to add
/// instances through it.
enum ProviderWiring {
    /// The command a new instance runs: `peer run --join` with the provider's placeholders.
    static func defaultCommand(peerBinary: String) -> [String] {
        [
            peerBinary, "run", "--join", "{bootstrap}", "--data", "{dir}", "--peer", "{host}:{peerPort}", "--api", "{host}:{apiPort}",
            "--router", "{host}:{routerPort}", "--router-control", "127.0.0.1:{routerControlPort}", "--components", "{host}:{componentsPort}",
        ]
    }

    /// The cluster file's providers, in its order (the first is the default).
    static func make(_ config: ClusterConfig, peerBinary: String) throws -> [InstanceLifecycleLoop.NamedProvider] {
        // Enough component ports for the highest offset of the catalog.
        let componentPorts = (config.components.map(\.portOffset).max() ?? 0) + 1
        return try config.providers.map { p in
            do {
                let provider: any InstanceProvider
                switch p.kind {
                case .process:
                    let plan = try PortPlan(host: p.host, range: p.ports, componentPorts: componentPorts)
                    provider = ProcessProvider(ProcessProvider.Settings(
                        directory: p.directory, ports: plan, command: try CommandTemplate(p.command ?? defaultCommand(peerBinary: peerBinary))))
                case .docker:
                    let plan = try PortPlan(host: p.host, range: p.ports, componentPorts: componentPorts)
                    var settings = DockerProvider.Settings(
                        image: p.image, ports: plan, command: try CommandTemplate(p.command ?? defaultCommand(peerBinary: "/usr/local/bin/peer")))
                    settings.socketPath = p.socket
                    provider = DockerProvider(settings)
                case .exec:
                    provider = ExecProvider(ExecProvider.Settings(create: p.create, destroy: p.destroy, list: p.list, workDirectory: p.directory))
                }
                return InstanceLifecycleLoop.NamedProvider(name: p.name, provider: provider)
            } catch {
                throw CLIError("provider \(p.name) (\(p.kind.rawValue)): \(error)")
            }
        }
    }

    /// The join files for instance `id`, with the members the state knows as seeds.
    static func bootstrap(config: ClusterConfig) throws -> InstanceLifecycleLoop.Bootstrap {
        guard let file = config.file else { throw CLIError("the configuration has no file to hand to new instances") }
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch { throw CLIError("\(file): cannot read it to hand to new instances: \(error)") }
        return { id, state in
            let authority: CertificateAuthority
            do {
                // During a CA rotation, the new CA once every member trusts it (`CARotation`).
                authority = try CARotation.signing(directory: config.tlsDir)
            } catch {
                throw CLIError("instance \(id): this leader cannot issue its certificate: \(error) (the leader signs new instances' certificates with \(config.caPrivateKeyPath))")
            }
            var members: [JoinFiles.Member] = []
            for i in state.allInstances where i.state != .removed {
                guard let n = UInt64(i.id), n != id else { continue }
                let seed = config.peer(id: n)
                let api = i.apiAddress.isEmpty ? seed?.apiAddress.description : i.apiAddress
                guard let api else { continue }
                members.append(JoinFiles.Member(
                    id: n, peer: i.address, api: api,
                    router: i.routerAddress.isEmpty ? seed?.routerAddress?.description : i.routerAddress,
                    components: i.componentsAddress.isEmpty ? seed?.componentAddress?.description : i.componentsAddress))
            }
            return try JoinFiles.bundle(id: id, config: config, configText: text, authority: authority, members: members)
        }
    }
}
