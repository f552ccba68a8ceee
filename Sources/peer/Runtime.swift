import ClusterModel
import Controller
import Crypto
import Foundation
import Leader
import Logging
import PeerAPI
import PeerConfig
import PeerNode
import PeerStore
import PeerTransport
import Raft
import ServiceLifecycle

/// This build's identity, shown by `peer status`.
/// This build's version and the cluster-model protocol versions it runs (docs/cluster-model.md
/// §Versioning). `PEER_PROTOCOL_VERSION=N` (or `MIN-MAX`) makes the peer run as the release of
/// that protocol version, so upgrade tests get two versions from one tree: the build string
/// follows (protocol 1: 0.1.0-dev), apply ignores what came later (`ClusterState.applierProtocolMax`).
/// For tests; an operator never sets it.
enum PeerVersion {
    static let environmentVariable = "PEER_PROTOCOL_VERSION"

    /// The versions this process runs, or why the environment's setting is refused.
    static let range: Result<ClosedRange<UInt32>, CLIError> = {
        let all: ClosedRange<UInt32> = 1...ClusterState.protocolVersionMax
        guard let text = ProcessInfo.processInfo.environment[environmentVariable] else { return .success(all) }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { UInt32($0) }
        let r: ClosedRange<UInt32>?
        switch parts.count {
        case 1: r = parts[0].map { 1...$0 }
        case 2: r = parts[0].flatMap { lo in parts[1].flatMap { hi in lo <= hi ? lo...hi : nil } }
        default: r = nil
        }
        guard let r, all.contains(r.lowerBound), all.contains(r.upperBound) else {
            return .failure(CLIError("\(environmentVariable)=\(text): give a protocol version (or MIN-MAX) within \(all.lowerBound)...\(all.upperBound)"))
        }
        return .success(r)
    }()

    static var protocolVersion: UInt32 { (try? range.get())?.upperBound ?? ClusterState.protocolVersionMax }
    static var protocolVersionMin: UInt32 { (try? range.get())?.lowerBound ?? 1 }
    static var build: String { "0.\(protocolVersion).0-dev" }
}

/// The durable log of a real peer: SQLite through PeerStore.
extension PeerStore: LogStore {
    public func currentSnapshotData() throws -> [UInt8] { try snapshotData() }
}

/// Everything one `peer run` needs, resolved from the cluster configuration (and, for an
/// instance a provider started, from its join files: `peer run --join`).
struct RuntimeSettings: Sendable {
    var clusterID: String
    var selfID: NodeID
    /// This peer's addresses.
    var me: ClusterConfig.Peer
    /// The members known at start, this peer included: the config file's peers, or the members a
    /// joining instance was told of. The replicated state takes over from them (`MemberDirectory`).
    var seeds: [ClusterConfig.Peer]
    /// A provisioned instance joining a running cluster: its log starts empty with no
    /// configuration, and it learns the membership from the leader (ADR 0005, 0013).
    var joining = false
    /// A configured peer started with `--existing`: like a joining instance, an empty log starts
    /// with no configuration (it waits to be added) instead of founding the file's cluster.
    var existing = false
    /// This peer's log (stderr, when it is a file) is kept under this many bytes (`peer run
    /// --log-max-mb`); 0 never rotates it.
    var logBytesMax: Int64 = 64 << 20
    var dataDirectory: String
    var caCertificatePath: String
    var certificatePath: String
    var privateKeyPath: String
    var tickMillis: Int
    var electionTicks: Int
    var heartbeatTicks: Int
    var snapshotEveryEntries: UInt64
    /// If set, the admin API also accepts this file's token as `Authorization: Bearer`.
    var adminTokenFile: String?
    /// The broker password's salted hash (`broker.passwordHashFile`, or the join files' copy).
    var brokerPasswordHashFile: String
    /// The Open Service Broker API's settings and catalog (`broker:`, `catalog:`).
    var broker: ClusterConfig.Broker
    var catalog: ClusterConfig.Catalog
    /// The whole file, for the data plane (components, router) and the leader (provider).
    var config: ClusterConfig

    var seedEntries: [NodeID: MemberEntry] { Dictionary(seeds.map { ($0.id, MemberEntry($0)) }, uniquingKeysWith: { a, _ in a }) }
}

/// Runs one peer in the foreground until SIGTERM or SIGINT, then stops gracefully: the API
/// stops accepting, waiting requests fail with a clear error, the node's thread exits after its
/// last durable write, the transport closes, the store closes.
enum PeerRuntime {
    static func run(_ s: RuntimeSettings, logger: Logger) async throws {
        let started = Int64(Date().timeIntervalSince1970 * 1000)
        // Enough descriptors for every connection the limits admit, or no start at all.
        try OpenFiles.raise(toAtLeast: s.config.limits.openFilesNeeded(peerCount: s.seeds.count), logger: logger)
        try FileManager.default.createDirectory(atPath: s.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // A founding member's empty log starts with the config file's peers as voters; a joining
        // instance's knows no configuration until the leader's log or snapshot tells it.
        let storePath = s.dataDirectory + "/raft.sqlite"
        let founding = !s.joining && !s.existing
        // What the other members answer (2 s), asked once: whether a cluster runs without this
        // peer (FoundingCheck), and what they saw of its data (StaleDataCheck).
        let probed = try await MemberProbe.others(s, timeoutMillis: 2_000)
        if founding && !FileManager.default.fileExists(atPath: storePath) {
            try FoundingCheck.refuseIfTheClusterRunsWithoutMe(s, probed: probed, logger: logger)
        }
        let voters: Set<NodeID> = founding ? Set(s.seeds.map(\.id)) : []
        let store = try PeerStore.open(path: storePath, clusterID: s.clusterID, peerID: s.selfID, initialConf: ConfState(voters: voters))
        logger.info("store open", metadata: ["path": "\(storePath)", "last": "\((try? store.lastIndex()) ?? 0)"])
        do {
            let (hard, _) = try store.initialState()
            try StaleDataCheck.refuseIfOlderThanTheClusterRemembers(s, answers: probed, term: hard.term, lastIndex: try store.lastIndex(), logger: logger)
        } catch let e as StorageError {
            throw CLIError("reading \(storePath): \(e)")
        }

        var tconf = TransportConfiguration(
            clusterID: s.clusterID, nodeID: s.selfID,
            listen: PeerAddress(host: s.me.peerAddress.host, port: Int(s.me.peerAddress.port)),
            security: .mutualTLS(TLSFiles(caCertificatePath: s.caCertificatePath, certificatePath: s.certificatePath, privateKeyPath: s.privateKeyPath))
        )
        tconf.logger = logger
        let transportLimits = s.config.limits.transport
        tconf.handshakingConnectionsMax = transportLimits.handshakingConnectionsMax
        tconf.handshakingPerAddressMax = transportLimits.handshakingPerAddressMax
        tconf.helloTimeoutMs = Int64(transportLimits.helloTimeoutMs)
        tconf.inboundConnectionsPerPeerMax = transportLimits.inboundConnectionsPerPeerMax
        // A partition that drops packets sends no reset: a connection is dropped after twice
        // the election timeout without acknowledgements, and dialled again at most an election
        // timeout apart, each attempt bounded by one, so a member cut off for any length
        // catches up within a few election timeouts of the heal (chaos/partition.sh).
        let electionMs = Int64(s.tickMillis * s.electionTicks)
        tconf.unacknowledgedTimeoutMs = max(2_000, 2 * electionMs)
        tconf.connectTimeoutMs = max(500, min(tconf.connectTimeoutMs, electionMs))
        tconf.backoff = Backoff(initialMs: min(100, max(20, electionMs / 10)), maxMs: max(500, electionMs))
        let transport = try PeerTransport(configuration: tconf)
        let directory = MemberDirectory(seeds: s.seedEntries)
        let dialled = TransportPeers(transport: transport, selfID: s.selfID, directory: directory, logger: logger)

        var raft = RaftConfig(id: s.selfID)
        raft.electionTimeoutTicks = s.electionTicks
        raft.heartbeatTimeoutTicks = s.heartbeatTicks
        var options = PeerNodeOptions(raft: raft)
        options.protocolVersionMin = PeerVersion.protocolVersionMin
        options.protocolVersionMax = PeerVersion.protocolVersion
        options.tickMillis = s.tickMillis
        options.snapshotEveryEntries = s.snapshotEveryEntries
        let node = try PeerNode(options: options, store: store, send: { m in _ = transport.send(m) })
        node.onSlowTurn { t in
            logger.warning("node loop turn took \(Int(t.totalMillis)) ms: nothing was sent or answered meanwhile", metadata: [
                "step_ms": "\(Int(t.stepMillis))", "persist_ms": "\(Int(t.persistMillis))", "apply_ms": "\(Int(t.applyMillis))",
                "compaction_ms": "\(Int(t.compactionMillis))", "messages": "\(t.messages)", "requests": "\(t.requests)",
                "applied": "\(t.appliedEntries)",
            ])
        }
        // Every change of role, term or leader, at notice: the history of elections an operator
        // reads after a failover, and what chaos/run.sh checks (one leader per term).
        node.onLeadership { l in
            let what = l.role == .leader ? "this peer leads" : l.leader == noNode ? "no leader known" : "peer \(l.leader) leads"
            logger.notice("raft: \(what) at term \(l.term)", metadata: ["role": "\(l.role)", "term": "\(l.term)", "leader": "\(l.leader)"])
        }
        // Membership follows the replicated configuration and state (ADR 0005, 0013): the
        // directory learns each instance's addresses, the transport dials the configuration's
        // nodes (a joiner that knows no configuration yet dials its seeds).
        node.onMembership { update in
            for r in update.changes {
                guard let change = r.change else {
                    logger.error("configuration change at index \(r.index) is malformed and changed nothing: \(String(describing: r.error))")
                    continue
                }
                logger.notice("configuration change applied", metadata: [
                    "index": "\(r.index)", "change": "\(change)",
                    "voters": "\(r.conf.voters.sorted())", "learners": "\(r.conf.learners.sorted())",
                ])
            }
            directory.follow(update.state)
            dialled.follow(update.conf)
        }

        var apiConfig = AdminServerConfiguration(
            selfID: s.selfID,
            members: s.seedEntries.mapValues(\.addresses),
            tls: APITLSFiles(caCertificatePath: s.caCertificatePath, certificatePath: s.certificatePath, privateKeyPath: s.privateKeyPath),
            version: PeerVersion.build, protocolVersion: PeerVersion.protocolVersion,
            pid: getpid(), startedAtMs: started
        )
        apiConfig.logger = logger
        apiConfig.clusterID = s.clusterID
        apiConfig.protocolVersionMin = PeerVersion.protocolVersionMin
        apiConfig.dataDirectory = s.dataDirectory
        apiConfig.member = { id in directory.entry(id)?.addresses }
        apiConfig.limits = ListenerLimits(s.config.limits.api)
        if let path = s.adminTokenFile { apiConfig.adminTokenSHA256 = try AdminToken.load(path: path) }
        apiConfig.provisioning = Provisioning(s.config.providers.map {
            Provisioning.Provider(name: $0.name, kind: $0.kind.rawValue, addTimeoutMs: Int64($0.addTimeoutMs))
        })
        let brokerConfig = BrokerConfiguration(
            username: s.broker.username, password: try BrokerFiles.loadVerifier(path: s.brokerPasswordHashFile), catalog: BrokerCatalog(s.catalog),
            tenantURLTemplate: s.broker.tenantURL, instanceCapacityUnits: UInt64(s.broker.instanceCapacity),
            provisionTimeoutMs: Int64(s.broker.provisionTimeoutMs), retryAfterSeconds: s.broker.retryAfterSeconds)
        apiConfig.broker = brokerConfig
        apiConfig.balancerEnabled = s.config.balancer?.enabled ?? false
        apiConfig.eventsRetain = s.config.events.retain
        // The data plane: this instance's components and NGINX, from the applied state.
        let dataPlane = try DataPlane(
            DataPlane.Settings(
                selfID: s.selfID, me: s.me, config: s.config, caCertificatePath: s.caCertificatePath, directory: s.dataDirectory,
                peerBinary: PeerProcesses.selfExecutable()),
            logger: logger)
        if !dataPlane.isEmpty { apiConfig.dataPlane = { dataPlane.report() } }
        // The leader's loops (registrar, operation driver, data-plane watch): they act while
        // this peer leads; the API wakes the driver when it starts an operation.
        // One API TLS for the listener, the forwarder and the leader's client: one reload
        // (SIGHUP, `POST /v1/tls/reload`) reaches them all, and the transport (TLSReload.swift).
        let apiTLS = try APITLS(files: apiConfig.tls)
        let reloader = TLSReloader(selfID: s.selfID, transport: transport, api: apiTLS, dataPlane: dataPlane, logger: logger)
        apiConfig.tlsReport = { reloader.report() }
        apiConfig.tlsReload = { await reloader.reload() }
        let leader = try Self.leader(s, node: node, directory: directory, brokerConfig: brokerConfig, tls: apiTLS, logger: logger)
        if let instances = leader.instances {
            apiConfig.restartInstance = { id, binary in
                do throws(InstanceLifecycleLoop.RestartRefused) {
                    let provided = try await instances.restart(id, executable: binary)
                    return .success(InstanceRestarted(id: id, binary: binary, handle: provided.handle))
                } catch {
                    return .failure(APIError(error.beforeProvider ? "conflict" : "unavailable", error.description))
                }
            }
        }
        let api = try AdminServer(configuration: apiConfig, node: node, tls: apiTLS, wakeLeader: { leader.wake() })
        let hangup = reloader.reloadOnHangup()
        defer { hangup.cancel() }

        // Raft messages go from the transport's event loop straight into the node's mailbox.
        transport.deliverDirectly { m in node.receive(m) }
        try await transport.start()
        node.start()
        try await dataPlane.start()
        logger.info("peer running", metadata: [
            "id": "\(s.selfID)", "cluster": "\(s.clusterID)", "peer": "\(s.me.peerAddress)", "api": "\(s.me.apiAddress)",
        ])

        // Started in this order, shut down gracefully in the reverse one (Services.swift).
        let services: [any Service] = [
            TransportService(transport: transport, node: node, logger: logger), NodeService(node: node, logger: logger),
            DataPlaneService(dataPlane: dataPlane, node: node, logger: logger), LeaderService(leader: leader, logger: logger),
            APIService(api: api, address: s.me.apiAddress.description, logger: logger),
            LogBoundService(maxBytes: s.logBytesMax, logger: logger),
        ]
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        let outcome: Result<Void, any Error>
        do {
            try await group.run()
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        do {
            try store.close()
        } catch {
            logger.error("closing the store failed: \(error)")
        }
        logger.info("peer stopped", metadata: ["id": "\(s.selfID)"])
        try outcome.get()
    }
}

extension PeerRuntime {
    /// The leader's loops for this peer, wired to the configuration: every configured member is
    /// registered, tenants are placed with the broker's numbers, and the data-plane watch asks
    /// each member's admin API (`GET /v1/dataplane`) for what the move driver needs.
    static func leader(_ s: RuntimeSettings, node: PeerNode, directory: MemberDirectory, brokerConfig: BrokerConfiguration, tls: APITLS, logger: Logger) throws -> Leader {
        let client = AdminClient(tls: tls)
        let watch = DataPlaneWatch(
            members: {
                directory.all.mapValues { m in DataPlaneWatch.Member(supervised: m.components != nil, routed: m.router != nil) }
            },
            poll: { id, timeoutMillis in
                guard let api = directory.entry(id)?.api,
                      let answer = try? await client.request(host: api.host, port: Int(api.port), method: .GET, path: "/v1/dataplane", timeoutMillis: timeoutMillis)
                else { return nil }
                // Any answer means the member is alive; a 404 means it runs no data plane.
                let version = answer.headers.first { $0.0.caseInsensitiveCompare(VersionHeader.nameText) == .orderedSame }.flatMap { VersionHeader.parse($0.1) }
                    .map { DataPlaneWatch.MemberVersion(build: $0.build, protocolMin: $0.min, protocolMax: $0.max) }
                guard answer.status == 200, let report = try? JSONDecoder().decode(DataPlaneReport.self, from: Data(answer.body)) else {
                    return DataPlaneWatch.PollAnswer(report: nil, version: version)
                }
                return DataPlaneWatch.PollAnswer(report: DataPlaneWatch.MemberReport(report), version: version)
            },
            instanceLostAfterMs: Int64(s.config.timing.instanceLostAfterMs),
            logger: logger)
        var policy = brokerConfig.placementPolicy
        policy.moveTimeoutMs = Int64(s.config.router.moveTimeoutMs)
        let registrar = Registrar(
            node: node, selfID: s.selfID,
            members: s.joining ? [] : s.config.peers.map {
                Registrar.Member(
                    id: $0.id, peerAddress: $0.peerAddress.description, apiAddress: $0.apiAddress.description,
                    routerAddress: $0.routerAddress?.description ?? "", componentsAddress: $0.componentAddress?.description ?? "")
            },
            version: PeerVersion.build, protocolVersion: PeerVersion.protocolVersion,
            versions: { term in
                Dictionary(uniqueKeysWithValues: watch.versions(term: term).map { ("\($0.key)", ClusterVersion.Reported(build: $0.value.build, protocolMax: $0.value.protocolMax)) })
            },
            logger: logger)
        var settings = InstanceLifecycleLoop.Settings(
            clusterID: s.clusterID, selfID: s.selfID, version: PeerVersion.build, protocolVersion: PeerVersion.protocolVersion)
        settings.orphanGraceMs = Int64(s.config.timing.instanceLostAfterMs) * 12
        settings.deadVoterRemoveAfterMs = Int64(s.config.timing.deadVoterRemoveAfterMs)
        settings.learnerStableMs = Int64(s.config.timing.learnerStableMs)
        settings.eventsRetain = UInt32(s.config.events.retain)
        var lifecycleLogger = logger
        lifecycleLogger[metadataKey: "part"] = "instances"
        let instances = InstanceLifecycleLoop(
            settings: settings, node: node, providers: try ProviderWiring.make(s.config, peerBinary: PeerProcesses.selfExecutable()),
            bootstrap: try ProviderWiring.bootstrap(config: s.config),
            answering: { term in watch.answering(term: term) },
            lost: { now, term in Set(watch.liveness(nowMs: now, term: term).lost.keys) }, logger: lifecycleLogger)
        let waker = Waker()
        var balancer: BalancerLoop?
        if let b = s.config.balancer, b.enabled {
            var settings = BalancerLoop.Settings()
            settings.intervalMillis = b.intervalMs
            settings.seedIDs = s.config.peers.map { "\($0.id)" }
            var balancerLogger = logger
            balancerLogger[metadataKey: "part"] = "balancer"
            balancer = BalancerLoop(
                settings: settings, node: node, policy: BalancerPolicy(s.config, balancer: b), placement: policy, watch: watch, waker: waker,
                logger: balancerLogger)
        }
        return Leader(
            node: node, registrar: registrar, policy: policy, watch: watch, waker: waker, instances: instances, balancer: balancer,
            driverIntervalMillis: s.broker.driverIntervalMs, logger: logger)
    }
}

/// The admin token file: one line, at least 32 characters, readable by its owner only.
enum AdminToken {
    static let charactersMin = 32

    static func load(path: String) throws -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw CLIError("admin.tokenFile \(path): cannot read it (\(String(cString: strerror(errno)))); create it with `openssl rand -hex 32 > \(path); chmod 600 \(path)`")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw CLIError("admin.tokenFile \(path): mode \(String(st.st_mode & 0o777, radix: 8)) lets others read the token; chmod 600 it")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CLIError("admin.tokenFile \(path): not UTF-8 text")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= charactersMin, !token.contains(where: { $0.isWhitespace }) else {
            throw CLIError("admin.tokenFile \(path): the token must be one word of at least \(charactersMin) characters")
        }
        return Array(SHA256.hash(data: Array(token.utf8)))
    }
}

extension BrokerCatalog {
    /// The configured catalog as the API serves it.
    init(_ catalog: ClusterConfig.Catalog) {
        self.init(services: catalog.services.map { service in
            BrokerCatalog.Service(
                id: service.id, name: service.name, description: service.description, tags: service.tags,
                plans: service.plans.map { plan in
                    BrokerCatalog.Plan(
                        id: plan.id, name: plan.name, description: plan.description, components: plan.components,
                        weightUnits: UInt64(plan.weight), requestsPerSecond: UInt32(plan.requestsPerSecond),
                        connectionsMax: UInt32(plan.connectionsMax), free: plan.free, maintenanceVersion: plan.maintenanceVersion)
                })
        })
    }
}

/// The API listener's limits from the configuration file's `limits.api`.
extension ListenerLimits {
    init(_ c: ClusterConfig.Limits.API) {
        self.init()
        connectionsMax = c.connectionsMax
        connectionsPerAddressMax = c.connectionsPerAddressMax
        handshakeTimeoutMs = c.handshakeTimeoutMs
        idleTimeoutMs = c.idleTimeoutMs
        bodyTimeoutMs = c.bodyTimeoutMs
        headerBytesMax = c.headerBytesMax
        bodyBytesMax = c.bodyBytesMax
    }
}

extension DataPlaneWatch.MemberReport {
    /// The part of a member's `GET /v1/dataplane` answer the leader decides with.
    init(_ report: DataPlaneReport) {
        let cpu = report.components.compactMap(\.cpuPermille)
        self.init(
            servingTenants: report.servingTenants, routerConfirmedIndex: report.routerConfirmedIndex, servingAsOfIndex: report.servingAsOfIndex,
            load: report.load.map { load in
                DataPlaneWatch.RouterLoad(
                    instances: Dictionary((load.instances ?? []).map {
                        ($0.instance, LoadObservation.InstanceLoad(requestsPerSecond: $0.requestsPerSecond, errorsPerSecond: $0.errorsPerSecond, p99Ms: $0.upstreamP99Ms))
                    }, uniquingKeysWith: { a, _ in a }),
                    tenants: Dictionary(load.topTenants.map { ($0.tenant, $0.requestsPerSecond) }, uniquingKeysWith: { a, _ in a }))
            },
            componentsCpuPermille: cpu.isEmpty ? nil : Double(cpu.reduce(0, +)))
    }
}

extension BalancerPolicy {
    /// The cluster file's `balancer:` section as the pure balancer takes it.
    init(_ config: ClusterConfig, balancer b: ClusterConfig.Balancer) {
        let provider = b.provider.flatMap { name in config.providers.first { $0.name == name } } ?? config.providers.first
        let addTimeoutMs = Int64(provider?.addTimeoutMs ?? 300_000)
        self.init(
            instanceRequestsPerSecond: Double(b.instanceRequestsPerSecond),
            instanceCpuPermille: b.instanceCpuPermille > 0 ? Double(b.instanceCpuPermille) : nil,
            p99HighMs: b.p99HighMs > 0 ? Double(b.p99HighMs) : nil,
            errorShareHigh: b.errorPercentHigh > 0 ? Double(b.errorPercentHigh) / 100 : nil,
            highWater: Double(b.highWaterPercent) / 100, target: Double(b.targetPercent) / 100, lowWater: Double(b.lowWaterPercent) / 100,
            overloadWindowMs: Int64(b.overloadWindowMs), underloadWindowMs: Int64(b.underloadWindowMs),
            cooldownMs: Int64(b.cooldownMs), tenantCooldownMs: Int64(b.tenantCooldownMs),
            minInstances: b.minInstances, maxInstances: b.maxInstances, dedicatedShare: Double(b.dedicatedSharePercent) / 100,
            // Five rounds missed (a leader that stalled, reports that stopped) start the windows again.
            observationGapMs: Int64(max(5_000, 5 * b.intervalMs)),
            // A scale-up's moves wait for the new instance (its add timeout), then move.
            planTimeoutMs: addTimeoutMs + 2 * Int64(config.router.moveTimeoutMs),
            eventsRetain: config.events.retain, addTimeoutMs: addTimeoutMs, provider: provider?.name)
    }
}
