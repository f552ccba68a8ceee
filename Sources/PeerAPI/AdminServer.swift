import ClusterModel
import Failpoints
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import PeerNode
import Raft
import ServiceLifecycle
import Synchronization

/// Where a member listens.
public struct MemberAddresses: Sendable, Hashable {
    /// Peer-to-peer TLS address, host:port (as configured).
    public var peer: String
    public var apiHost: String
    public var apiPort: Int

    public init(peer: String, apiHost: String, apiPort: Int) {
        self.peer = peer
        self.apiHost = apiHost
        self.apiPort = apiPort
    }

    public var api: String { apiHost.contains(":") ? "[\(apiHost)]:\(apiPort)" : "\(apiHost):\(apiPort)" }
}

/// What the API knows of the cluster's providers (`providers:`), the first the default.
public struct Provisioning: Sendable, Hashable {
    public struct Provider: Sendable, Hashable {
        public var name: String
        public var kind: String
        /// An add not active after this long is undone (`providers[i].addTimeoutMs`).
        public var addTimeoutMs: Int64

        public init(name: String, kind: String, addTimeoutMs: Int64) {
            self.name = name
            self.kind = kind
            self.addTimeoutMs = addTimeoutMs
        }
    }

    /// Never empty.
    public var providers: [Provider]

    public init?(_ providers: [Provider]) {
        guard !providers.isEmpty else { return nil }
        self.providers = providers
    }
}

/// How the admin API runs on one peer.
public struct AdminServerConfiguration: Sendable {
    /// Where member `id` listens: `member`'s answer, else the starting `members`.
    func addresses(of id: NodeID) -> MemberAddresses? { member?(id) ?? members[id] }

    public var selfID: NodeID
    /// The members known when the peer starts (the config file's, or those a joining instance
    /// was told of): the listener counts their connections apart.
    public var members: [NodeID: MemberAddresses]
    /// Where a member listens now, including instances added at run time; nil falls back to
    /// `members`. Forwarded writes go to the leader found here.
    public var member: (@Sendable (NodeID) -> MemberAddresses?)?
    /// This peer's certificate (server side) and the CA that must have issued every client's.
    public var tls: APITLSFiles
    public var version: String
    public var protocolVersion: UInt32
    /// The cluster's id (the config file's `cluster:`), written into snapshot files.
    public var clusterID = ""
    /// The lowest cluster-model protocol version this build runs (`protocolVersion` the highest).
    public var protocolVersionMin: UInt32 = 1
    /// This peer's data directory, whose size `GET /v1/status` reports; nil reports none.
    public var dataDirectory: String?
    public var pid: Int32
    public var startedAtMs: Int64
    /// SHA-256 of the admin token, if one is configured: `Authorization: Bearer <token>` is then
    /// accepted as well as a client certificate (tools like wrk cannot present one).
    public var adminTokenSHA256: [UInt8]?
    /// Connection caps and timeouts of the API's listener, and the largest request.
    public var limits = ListenerLimits()
    /// The cluster's providers, if it has any: `POST /v1/instances` needs one.
    public var provisioning: Provisioning?
    /// The Open Service Broker API (`/v2`); nil serves no `/v2` routes.
    public var broker: BrokerConfiguration?
    /// This member's agent and router report (`GET /v1/dataplane`, `peer status`); nil when the
    /// peer runs neither.
    public var dataPlane: (@Sendable () -> DataPlaneReport)?
    /// Restarts an instance a provider made with another binary on the same data (`POST
    /// /v1/instances/{id}/restart`, served by the leader); nil: this peer has no provisioner.
    public var restartInstance: (@Sendable (_ id: String, _ binary: String) async -> Result<InstanceRestarted, APIError>)?
    /// This peer's TLS as it runs (`GET /v1/tls`) and the reload of its files (`POST
    /// /v1/tls/reload`, the same as SIGHUP); nil serves neither.
    public var tlsReport: (@Sendable () -> TLSReport)?
    public var tlsReload: (@Sendable () async -> Result<TLSReport, APIError>)?
    /// This peer's cluster file has an enabled `balancer:` section (`GET /v1/balancer` says so).
    public var balancerEnabled = false
    /// `events.retain`: carried by the events the API commits (pause, resume).
    public var eventsRetain = 10_000
    public var logger = Logger(label: "peer.api")

    public init(selfID: NodeID, members: [NodeID: MemberAddresses], tls: APITLSFiles, version: String, protocolVersion: UInt32, pid: Int32, startedAtMs: Int64) {
        self.selfID = selfID
        self.members = members
        self.tls = tls
        self.version = version
        self.protocolVersion = protocolVersion
        self.pid = pid
        self.startedAtMs = startedAtMs
    }
}

/// The admin HTTPS API (`/v1`, docs/api.md) of one peer. Mutual TLS: a client must present a
/// certificate issued by the cluster CA (an operator's client certificate, or a peer's own when
/// a follower forwards a write). Writes are served by the leader; followers forward them.
public final class AdminServer: Sendable {
    let config: AdminServerConfiguration
    let node: PeerNode
    let forwarder: AdminClient
    /// The listener's certificate and trust, and the forwarder's (reloaded in place).
    public let tls: APITLS
    let wakeLeader: @Sendable () -> Void
    let broker: Broker?
    /// The API listener's open connections, refusals and timeouts.
    let connections: ConnectionRegistry
    let running = Mutex(Running())
    /// The data directory's size and when it was measured (`GET /v1/status`).
    let directorySize = Mutex<(ContinuousClock.Instant, UInt64)?>(nil)

    struct Running: Sendable {
        var group: ServiceGroup?
        var stopRequested = false
    }

    /// - Parameters:
    ///   - wakeLeader: called when an admin or broker request started an operation, so the
    ///     leader's operation driver takes it up at once (the `peer` executable passes `Leader.wake`).
    ///   - tls: the API's TLS, shared with the peer's other admin clients so one reload
    ///     reaches them all; nil reads `configuration.tls`.
    public init(configuration: AdminServerConfiguration, node: PeerNode, tls: APITLS? = nil, wakeLeader: @escaping @Sendable () -> Void = {}) throws(AdminClientError) {
        config = configuration
        if let tls { self.tls = tls } else { self.tls = try APITLS(files: configuration.tls) }
        self.node = node
        self.wakeLeader = wakeLeader
        let address = configuration.members[configuration.selfID]?.api ?? "?"
        let memberHosts = Set(configuration.members.values.flatMap { m in [m.apiHost, ConnectionRegistry.host(of: m.peer)].compactMap { $0 } })
        connections = ConnectionRegistry(
            name: "admin API \(address)", limits: configuration.limits, memberHosts: memberHosts.sorted(),
            memberCount: configuration.members.count, logger: configuration.logger)
        let forwarder = AdminClient(tls: self.tls)
        self.forwarder = forwarder
        broker = configuration.broker.map {
            Broker(config: $0, node: node, serverConfig: configuration, forwarder: forwarder, wakeLeader: wakeLeader, logger: configuration.logger)
        }
    }

    /// How long closing a connection waits for the client's TLS close_notify.
    static let tlsShutdownTimeoutMillis = 500

    /// Serves until `shutdown()`. `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        guard let me = config.members[config.selfID] else {
            throw APIError("config", "peer \(config.selfID) has no API address")
        }
        let router = Router(context: AdminRequestContext.self)
        // Three route groups, each with its own gate: /v1 (admin: client certificate or admin
        // token), /v1/auth (the tenant user's own token), /v2 (the broker's basic auth).
        addRoutes(to: router.group("v1").add(middleware: AuthMiddleware(tokenSHA256: config.adminTokenSHA256)))
        TokenCheck(node: node).addRoutes(to: router)
        broker?.addRoutes(to: router)
        let limits = config.limits
        let tls = self.tls
        let http1 = HTTP1Channel.Configuration(
            idleTimeout: nil,  // ConnectionDeadlines times every phase, the idle wait included
            httpDecoderConfiguration: .init(maxHeaderFieldSize: limits.headerBytesMax, maxHeaderListSize: limits.headerBytesMax))
        let connections = self.connections
        let app = Application(
            router: router,
            server: HTTPServerBuilder { responder in
                GuardedChannel(
                    base: ReloadableTLSChannel(base: HTTP1Channel(responder: responder, configuration: http1), tls: tls),
                    registry: connections, tls: true)
            },
            configuration: .init(address: .hostname(me.apiHost, port: me.apiPort), serverName: "peer/\(config.version)"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? me.apiPort) },
            logger: config.logger
        )
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], cancellationSignals: [], logger: config.logger))
        let stopEarly = running.withLock { r -> Bool in
            if r.stopRequested { return true }
            r.group = group
            return false
        }
        if stopEarly { return }
        // The listener's held-back refusal and timeout lines, reported even when no event follows.
        let flusher = Task { [connections] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                connections.flush()
            }
        }
        defer { flusher.cancel() }
        try await group.run()
    }

    /// Stops serving gracefully: no new connections; requests in flight finish. `run` returns.
    public func shutdown() async {
        let group = running.withLock { r -> ServiceGroup? in
            r.stopRequested = true
            return r.group
        }
        await group?.triggerGracefulShutdown()
    }

    // MARK: - Routes

    /// A path parameter, percent-decoded once (the router hands it over encoded:
    /// `/v1/tenants/%61cme` names tenant `acme`). An invalid escape is either refused here or
    /// left as text, which no id may hold (400 either way).
    static func pathSegment(_ context: AdminRequestContext, _ name: String) -> Result<String, APIError> {
        let raw = context.parameters.get(name) ?? ""
        guard let decoded = raw.removingPercentEncoding else {
            return .failure(APIError("badRequest", "the path's \(name) is not a valid percent-encoded string"))
        }
        return .success(decoded)
    }

    func addRoutes(to router: RouterGroup<AdminRequestContext>) {
        addInstanceRoutes(to: router)
        addFailpointRoutes(to: router)
        addBalancerRoutes(to: router)
        addMemberRoutes(to: router)
        addSnapshotRoutes(to: router)
        addVersionRoutes(to: router)
        addTLSRoutes(to: router)
        router.get("status") { request, _ in
            await self.respond { () async throws(APIError) -> MemberStatus in try await self.status(consistent: Self.flag(request, "consistent")) }
        }
        router.get("tenants") { request, _ in
            await self.respond { () async throws(APIError) -> [TenantInfo] in try await self.listTenants(consistent: Self.flag(request, "consistent")) }
        }
        router.post("tenants") { request, _ in
            var request = request
            return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (WriteResult, HTTPResponse.Status) in
                // The plain form without Codable (FastJSON.swift); anything else through JSONDecoder.
                if let req = CreateTenantRequest.decodePlain(body) { return try await self.createTenant(req) }
                let req: CreateTenantRequest
                do { req = try JSONDecoder().decode(CreateTenantRequest.self, from: Data(body)) } catch {
                    throw APIError("badRequest", "the body is not a tenant request: \(error)")
                }
                return try await self.createTenant(req)
            }
        }
        router.get("dataplane") { _, _ in
            var response = await self.respond { () async throws(APIError) -> DataPlaneReport in
                guard let report = self.config.dataPlane?() else {
                    throw APIError("notFound", "this peer runs no agent and no router")
                }
                return report
            }
            // The leader's poll learns the version each member runs from every answer.
            response.headers[VersionHeader.name] = VersionHeader.value(build: self.config.version, min: self.config.protocolVersionMin, max: self.config.protocolVersion)
            return response
        }
        router.get("operations/:id") { request, context in
            let id = Self.pathSegment(context, "id")
            return await self.respond { () async throws(APIError) -> OperationInfo in
                try await self.operation(try id.get(), consistent: Self.flag(request, "consistent"))
            }
        }
        router.post("tenants/:id/move") { request, context in
            var request = request
            let id = Self.pathSegment(context, "id")
            return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (OperationInfo, HTTPResponse.Status) in
                let id = try id.get()
                let req: MoveTenantRequest
                do { req = try JSONDecoder().decode(MoveTenantRequest.self, from: Data(body)) } catch {
                    throw APIError("badRequest", "the body is not a move request ({\"to\": \"<instance id>\"}): \(error)")
                }
                return try await self.moveTenant(id, req)
            }
        }
        router.delete("tenants/:id") { request, context in
            var request = request
            let id = Self.pathSegment(context, "id")
            let client = request.uri.queryParameters.get("clientId").map { String($0) }
            let sequence = request.uri.queryParameters.get("sequence").flatMap { UInt64($0) }
            return await self.write(request: &request) { (_: [UInt8]) async throws(APIError) -> (WriteResult, HTTPResponse.Status) in
                try await self.deleteTenant(try id.get(), clientId: client, sequence: sequence)
            }
        }
    }

    static func flag(_ request: Request, _ name: String) -> Bool {
        guard let v = request.uri.queryParameters.get(name) else { return false }
        return v == "true" || v == "1" || v.isEmpty
    }

    /// Runs a read handler and turns its result or error into a JSON response.
    func respond<T: Encodable>(_ body: () async throws(APIError) -> T) async -> Response {
        do {
            return Self.json(try await body())
        } catch {
            return Self.json(error, status: Self.httpStatus(for: error))
        }
    }

    /// Serves a write on the leader, forwards it from a follower (once), and maps errors.
    func write<T: Encodable>(request: inout Request, _ handler: ([UInt8]) async throws(APIError) -> (T, HTTPResponse.Status)) async -> Response {
        let bytes: [UInt8]
        do {
            var buffer = try await request.collectBody(upTo: config.limits.bodyBytesMax)
            bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch {
            return Self.json(APIError("tooLarge", "the request body is larger than \(config.limits.bodyBytesMax) bytes or unreadable: \(error)"), status: .contentTooLarge)
        }
        let hint = node.leaderHint
        if hint.role != .leader {
            let forwarded = request.headers.contains { $0.name.canonicalName == "x-peer-forwarded-by" }
            guard hint.leader != noNode, !forwarded, let leader = config.addresses(of: hint.leader) else {
                let e = hint.leader == noNode
                    ? APIError("noLeader", "no leader is known right now (election in progress?); retry", retryable: true)
                    : APIError("notLeader", "this peer does not lead; the leader is peer \(hint.leader)", retryable: true, leader: hint.leader)
                return Self.json(e, status: .serviceUnavailable)
            }
            return await forward(request: request, body: bytes, to: leader)
        }
        do {
            let (value, status) = try await handler(bytes)
            return Self.json(value, status: status)
        } catch {
            return Self.json(error, status: Self.httpStatus(for: error))
        }
    }

    func forward(request: Request, body: [UInt8], to leader: MemberAddresses) async -> Response {
        let method = HTTPMethod(rawValue: request.method.rawValue)
        do {
            let answer = try await forwarder.request(
                host: leader.apiHost, port: leader.apiPort, method: method, path: request.uri.description,
                headers: [("X-Peer-Forwarded-By", "\(config.selfID)")], body: body.isEmpty && method == .DELETE ? nil : body,
                timeoutMillis: 15_000
            )
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: HTTPResponse.Status(code: answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
        } catch {
            // The leader may have received it: a write's outcome is unknown; retry with the same id.
            return Self.json(APIError("outcomeUnknown", "forwarding to the leader at \(leader.api) failed: \(error)", retryable: true, outcomeUnknown: true), status: .serviceUnavailable)
        }
    }

    // MARK: - Handlers

    func status(consistent: Bool) async throws(APIError) -> MemberStatus {
        struct Summary: Sendable {
            var instances: [InstanceInfo]
            var tenantCount: Int
            var balancer: BalancerInfo
        }
        let balancerEnabled = config.balancerEnabled
        let summarize: @Sendable (ClusterState) -> Summary = { state in
            let active = state.activeTenantCountsByInstance
            return Summary(
                instances: state.allInstances.map {
                    InstanceInfo($0, state: state, active: active)
                },
                tenantCount: state.tenantCount,
                balancer: BalancerInfo(state, enabled: balancerEnabled)
            )
        }
        let summary: Summary
        do {
            summary = try await node.read(linearizable: consistent, summarize)
        } catch {
            throw Self.apiError(error)
        }
        let s: NodeStatus
        do {
            s = try await node.status()
        } catch {
            throw Self.apiError(error)
        }
        let me = config.addresses(of: config.selfID)
        let dataPlane = config.dataPlane?()
        let role = s.voters.contains(s.id) ? "voter" : s.learners.contains(s.id) ? "learner" : "none"
        var member = MemberStatus(
            id: s.id, address: me?.peer ?? "", apiAddress: me?.api ?? "", role: role, state: s.role.rawValue,
            term: s.term, leader: s.leader == noNode ? nil : s.leader,
            commitIndex: s.commitIndex, appliedIndex: s.appliedIndex, firstIndex: s.firstIndex, lastIndex: s.lastIndex,
            snapshotIndex: s.snapshotIndex, stateDigest: s.stateDigest, pid: config.pid, version: config.version,
            protocolVersion: config.protocolVersion, reportedAtMs: Self.nowMs(), startedAtMs: config.startedAtMs,
            haltReason: s.haltReason,
            progress: s.role == .leader ? s.progress.map { FollowerProgress(id: $0.id, match: $0.match, next: $0.next, state: $0.state, learner: $0.isLearner, recentActive: $0.recentActive) } : nil,
            lastContactMs: Dictionary(uniqueKeysWithValues: s.lastContactMillis.map { ("\($0.key)", $0.value) }),
            voters: s.voters, learners: s.learners, tenantCount: summary.tenantCount, droppedMessages: s.droppedMessages,
            snapshotsInstalled: s.snapshotsInstalled,
            source: consistent ? "linearizable" : "local", instances: summary.instances,
            routerURL: dataPlane?.routerURL, dataPlane: dataPlane, balancer: summary.balancer
        )
        member.versionChangeIndex = s.versionChangeIndex
        member.witnessed = s.witnessed.sorted { $0.key < $1.key }.map { WitnessedState(id: $0.key, term: $0.value.term, ackTerm: $0.value.ackTerm, ackIndex: $0.value.ackIndex) }
        member.dataBytes = config.dataDirectory.map { dir in directorySize.withLock { c in
            // Walked at most once a second, however often status is asked.
            let now = ContinuousClock.now
            if let (at, bytes) = c, now - at < .seconds(1) { return bytes }
            let bytes = Self.directoryBytes(dir)
            c = (now, bytes)
            return bytes
        } }
        return member
    }

    func listTenants(consistent: Bool) async throws(APIError) -> [TenantInfo] {
        do {
            return try await node.read(linearizable: consistent) { state in state.allTenants.map { TenantInfo($0, state: state) } }
        } catch {
            throw Self.apiError(error)
        }
    }

    /// Creates a tenant the way the broker provisions one (ProvisionTenant: the tenant and its
    /// provision operation in one entry), so the leader's driver places it and the agents and
    /// routers serve it. The plan is a catalog plan id or name; its components and quotas apply.
    func createTenant(_ req: CreateTenantRequest) async throws(APIError) -> (WriteResult, HTTPResponse.Status) {
        let planName = req.plan ?? "development"
        let plan = config.broker?.catalog.services.lazy.flatMap(\.plans).first { $0.id == planName || $0.name == planName }
        // Refusals that depend only on the request never reach the log.
        if let problem = ClusterState.tenantIdProblem(req.id) { throw APIError("badRequest", problem) }
        if let catalog = config.broker?.catalog {
            guard let plan else {
                let offered = catalog.services.flatMap(\.plans).map { "\($0.name) (\($0.id))" }.joined(separator: ", ")
                throw APIError("badRequest", "unknown plan '\(planName)': the catalog offers \(offered)")
            }
            for component in req.components ?? [] where !plan.components.contains(component) {
                throw APIError("badRequest", "component '\(component)' is not in plan \(plan.name) (\(plan.components.joined(separator: ", ")))")
            }
        }
        var body = PBCreateTenant()
        body.id = req.id
        body.plan = plan?.id ?? planName
        body.components = req.components ?? plan?.components ?? ["dfx-dev", "dfc"]
        if let plan {
            body.quotas.requestsPerSecond = plan.requestsPerSecond
            body.quotas.connectionsMax = plan.connectionsMax
        }
        var provision = PBProvisionTenant()
        provision.tenant = body
        // One operation id per client request, so a retry (same client and sequence) is the same entry.
        let client = req.clientId ?? Self.freshClientID()
        provision.operationID = "admin-\(client)-\(req.sequence ?? 1)"
        // The answer's tenant is read on the node thread right after the entry applied.
        let id = req.id
        let (result, tenant) = try await propose(.provisionTenant(provision), clientId: client, sequence: req.sequence) { state in
            state.tenant(id).map { TenantInfo($0, state: state) }
        }
        switch result {
        case .applied:
            wakeLeader()
            return (WriteResult(result: "applied", tenant: tenant), .created)
        case .duplicate(.applied): return (WriteResult(result: "duplicate", tenant: tenant), .ok)
        default: throw Self.apiError(result)
        }
    }

    /// Deletes a tenant the way the broker deprovisions one: it enters `deprovisioning` with a
    /// deprovision operation, and the leader's driver drains its placements and deletes it.
    func deleteTenant(_ id: String, clientId: String?, sequence: UInt64?) async throws(APIError) -> (WriteResult, HTTPResponse.Status) {
        let client = clientId ?? Self.freshClientID()
        var c = PBDeprovisionTenant()
        c.tenantID = id
        c.operationID = "admin-\(client)-\(sequence ?? 1)"
        let result = try await propose(.deprovisionTenant(c), clientId: client, sequence: sequence)
        switch result {
        case .applied:
            wakeLeader()
            return (WriteResult(result: "applied", tenant: nil), .ok)
        case .duplicate(.applied): return (WriteResult(result: "duplicate", tenant: nil), .ok)
        default: throw Self.apiError(result)
        }
    }

    /// Starts a make-before-break move; the answer is the operation, which the caller polls.
    func moveTenant(_ id: String, _ req: MoveTenantRequest) async throws(APIError) -> (OperationInfo, HTTPResponse.Status) {
        let client = req.clientId ?? Self.freshClientID()
        var c = PBMoveTenant()
        c.tenantID = id
        c.instanceID = req.to
        c.operationID = req.operationId ?? "move-\(client)-\(req.sequence ?? 1)"
        let result = try await propose(.moveTenant(c), clientId: client, sequence: req.sequence)
        if result == .applied {
            Failpoint.moveAfterStarted.hit()
            wakeLeader()
        }
        switch result {
        case .applied, .duplicate(.applied):
            return (try await operation(c.operationID), result == .applied ? .accepted : .ok)
        default: throw Self.apiError(result)
        }
    }

    /// `consistent`: a linearizable read, so a client polling the operation it just started
    /// through another member never reads a state from before it (404).
    func operation(_ id: String, consistent: Bool = false) async throws(APIError) -> OperationInfo {
        let info: OperationInfo?
        do {
            info = try await node.read(linearizable: consistent) { state in state.operation(id).map { OperationInfo($0, state: state) } }
        } catch {
            throw Self.apiError(error)
        }
        guard let info else { throw APIError("notFound", "no operation \(id)") }
        return info
    }

    func propose(_ body: Command.OneOf_Body, clientId: String?, sequence: UInt64?) async throws(APIError) -> ApplyResult {
        try await propose(body, clientId: clientId, sequence: sequence) { _ in () }.0
    }

    /// Proposes and runs `read` on the state right after the entry applied.
    func propose<T: Sendable>(
        _ body: Command.OneOf_Body, clientId: String?, sequence: UInt64?, thenRead read: @escaping @Sendable (ClusterState) -> T
    ) async throws(APIError) -> (ApplyResult, T) {
        let client = clientId ?? Self.freshClientID()
        let seq = sequence ?? 1
        guard seq >= 1 else { throw APIError("badRequest", "sequence must be >= 1") }
        let now = Self.nowMs()
        try await refuseIfTheAppliedStateRefuses(body, clientId: client, sequence: seq, leaderTimeMs: now)
        let command = Command(clientId: client, sequence: seq, leaderTimeMs: now, body)
        do {
            return try await node.propose(command.entryBytes(), thenRead: read)
        } catch {
            switch error {
            case .notLeader(let leader):
                throw APIError("notLeader", "\(error)", retryable: true, leader: leader == noNode ? nil : leader)
            case .notApplied:
                throw APIError("unavailable", "\(error)", retryable: true)
            case .refused:
                throw APIError("conflict", "\(error)")
            case .outcomeUnknown:
                throw APIError("outcomeUnknown", "\(error)", retryable: true, outcomeUnknown: true)
            case .stopped:
                throw APIError("unavailable", "\(error)", retryable: true, outcomeUnknown: true)
            case .halted:
                throw APIError("halted", "\(error)")
            }
        }
    }

    /// Checks `body` against this peer's applied state with the apply's own rules
    /// (`ClusterState.preview`) and throws the refusal it meets, so a write the state already
    /// refuses (an unknown tenant or instance, an operation in progress) appends nothing. A
    /// retry of a request the log has seen is not checked: the log answers it as a duplicate.
    func refuseIfTheAppliedStateRefuses(_ body: Command.OneOf_Body, clientId: String, sequence: UInt64, leaderTimeMs: Int64) async throws(APIError) {
        let refusal: Rejection?
        do {
            refusal = try await node.read(linearizable: false) { state -> Rejection? in
                if let last = state.lastSequence(ofClient: clientId), last >= sequence { return nil }
                return state.preview(body, leaderTimeMs: leaderTimeMs)
            }
        } catch {
            throw Self.apiError(error)
        }
        if let refusal { throw Self.apiError(.rejected(refusal)) }
    }

    // MARK: - Helpers

    static func apiError(_ result: ApplyResult) -> APIError {
        switch result {
        case .rejected(let r), .duplicate(.rejected(let r)):
            switch r.code {
            case .notFound: return APIError("notFound", r.detail)
            case .alreadyExists: return APIError("conflict", r.detail)
            case .invalidField, .malformedCommand, .staleSequence: return APIError("badRequest", r.detail)
            case .limitReached: return APIError("limitReached", r.detail)
            default: return APIError("conflict", "\(r.code): \(r.detail)")
            }
        case .skipped(let reason), .duplicate(.skipped(let reason)):
            return APIError("conflict", "skipped: \(reason)")
        case .applied, .duplicate(.applied):
            return APIError("internal", "unexpected success")
        }
    }

    static func apiError(_ e: ReadError) -> APIError {
        switch e {
        case .noLeader: return APIError("noLeader", "\(e)", retryable: true)
        case .halted: return APIError("halted", "\(e)")
        default: return APIError("unavailable", "\(e)", retryable: true)
        }
    }

    static func httpStatus(for e: APIError) -> HTTPResponse.Status {
        switch e.code {
        case "badRequest": return .badRequest
        case "notFound": return .notFound
        case "conflict", "limitReached": return .conflict
        case "forbidden": return .forbidden
        case "unprocessable": return .unprocessableContent
        case "tooLarge": return .contentTooLarge
        case "halted": return .internalServerError
        default: return .serviceUnavailable
        }
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let fast = value as? any FastJSONEncodable {
            // The write path's answers: the same bytes, without Codable (FastJSON.swift).
            return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: FastJSON.encode(fast))))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{\"error\":\"encoding failed\",\"code\":\"internal\",\"retryable\":false,\"outcomeUnknown\":false}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The bytes of every regular file under `path` (symbolic links not followed). Bounded: at
    /// most 100,000 entries are looked at.
    static func directoryBytes(_ path: String) -> UInt64 {
        guard let walker = FileManager.default.enumerator(at: URL(fileURLWithPath: path), includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey]) else { return 0 }
        var total: UInt64 = 0
        var seen = 0
        for case let url as URL in walker {
            seen += 1
            if seen > 100_000 { break }
            guard let v = try? url.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey]), v.isRegularFile == true else { continue }
            total += UInt64(v.fileSize ?? 0)
        }
        return total
    }

    static func freshClientID() -> String {
        var g = SystemRandomNumberGenerator()
        return "api-" + String(g.next(), radix: 16) + String(g.next(), radix: 16)
    }
}
