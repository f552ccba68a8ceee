import ClusterModel
import Controller
import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PeerNode
import Raft

/// The Open Service Broker API v2.17 (`/v2`, docs/broker.md) of one peer: the platform's way to
/// create and remove tenants (service instances) and their user credentials (bindings).
///
/// Every write is decided and committed on the leader (a follower forwards it once, like the
/// admin API's writes); every decision reads the state linearizably first and is checked again
/// by apply, so concurrent or repeated requests settle on one outcome: a proposal refused because
/// the state moved (`alreadyExists`, `conflict`, ...) makes the handler look again and answer
/// from what is there now (an identical PUT that lost the race gets the winner's operation).
/// Asynchronous work (provision, deprovision) lives in the replicated state as an operation that
/// the leader's operation driver (`Leader` module) drives to its end.
final class Broker: Sendable {
    let config: BrokerConfiguration
    let node: PeerNode
    /// The admin server's settings: this peer's id and every member's API address (forwarding).
    let serverConfig: AdminServerConfiguration
    let forwarder: AdminClient
    /// Tells the leader's operation driver that an operation started.
    let wakeLeader: @Sendable () -> Void
    let logger: Logger

    /// A handler re-reads the state at most this many times after a proposal lost a race.
    static let decideAttemptsMax = 4

    init(config: BrokerConfiguration, node: PeerNode, serverConfig: AdminServerConfiguration, forwarder: AdminClient, wakeLeader: @escaping @Sendable () -> Void, logger: Logger) {
        self.config = config
        self.node = node
        self.serverConfig = serverConfig
        self.forwarder = forwarder
        self.wakeLeader = wakeLeader
        self.logger = logger
    }

    // MARK: - Routes

    func addRoutes(to router: Router<AdminRequestContext>) {
        let v2 = router.group("v2").add(middleware: BrokerMiddleware(username: config.username, password: config.password))
        v2.get("catalog") { _, _ in OSBReply(.ok, self.catalogBody()).response }
        v2.put("service_instances/:instance_id") { request, context in
            await self.write(request, context) { (request: OSBRequest, body: [UInt8]) async throws(OSBReply) -> OSBReply in
                try await self.provision(request.instanceId, acceptsIncomplete: request.acceptsIncomplete, body: body, identity: request.identity)
            }
        }
        v2.patch("service_instances/:instance_id") { request, context in
            await self.write(request, context) { (request: OSBRequest, body: [UInt8]) async throws(OSBReply) -> OSBReply in
                try await self.update(request.instanceId, acceptsIncomplete: request.acceptsIncomplete, body: body, identity: request.identity)
            }
        }
        v2.delete("service_instances/:instance_id") { request, context in
            await self.write(request, context) { (request: OSBRequest, _: [UInt8]) async throws(OSBReply) -> OSBReply in
                try await self.deprovision(request.instanceId, query: request.query, acceptsIncomplete: request.acceptsIncomplete, identity: request.identity)
            }
        }
        v2.get("service_instances/:instance_id") { request, context in
            await self.read(request, context) { (request: OSBRequest) async throws(OSBReply) -> OSBReply in try await self.fetchInstance(request.instanceId) }
        }
        v2.get("service_instances/:instance_id/last_operation") { request, context in
            await self.read(request, context) { (request: OSBRequest) async throws(OSBReply) -> OSBReply in
                try await self.lastOperation(request.instanceId, operation: request.query["operation"])
            }
        }
        v2.put("service_instances/:instance_id/service_bindings/:binding_id") { request, context in
            await self.write(request, context) { (request: OSBRequest, body: [UInt8]) async throws(OSBReply) -> OSBReply in
                try await self.bind(request.instanceId, request.bindingId, body: body, identity: request.identity)
            }
        }
        v2.delete("service_instances/:instance_id/service_bindings/:binding_id") { request, context in
            await self.write(request, context) { (request: OSBRequest, _: [UInt8]) async throws(OSBReply) -> OSBReply in
                try await self.unbind(request.instanceId, request.bindingId, query: request.query, identity: request.identity)
            }
        }
        v2.get("service_instances/:instance_id/service_bindings/:binding_id") { request, context in
            await self.read(request, context) { (request: OSBRequest) async throws(OSBReply) -> OSBReply in try await self.fetchBinding(request.instanceId, request.bindingId) }
        }
        v2.get("service_instances/:instance_id/service_bindings/:binding_id/last_operation") { request, context in
            await self.read(request, context) { (request: OSBRequest) async throws(OSBReply) -> OSBReply in try await self.bindingLastOperation(request.instanceId, request.bindingId) }
        }
        // RFC 9110 §15.5.6: a method the resource does not support is 405 with `Allow`.
        let resources: [(RouterPath, [HTTPRequest.Method])] = [
            ("catalog", [.get]),
            ("service_instances/:instance_id", [.get, .put, .patch, .delete]),
            ("service_instances/:instance_id/last_operation", [.get]),
            ("service_instances/:instance_id/service_bindings/:binding_id", [.get, .put, .delete]),
            ("service_instances/:instance_id/service_bindings/:binding_id/last_operation", [.get]),
        ]
        let all: [HTTPRequest.Method] = [.get, .head, .put, .patch, .delete, .post, .options, .trace, .connect]
            + [HTTPRequest.Method("QUERY")].compactMap { $0 }
        for (path, allowed) in resources {
            let allow = allowed.map(\.rawValue).joined(separator: ", ")
            for method in all where !allowed.contains(method) {
                v2.on(path, method: method, use: { _, _ in
                    var response = OSBReply(.methodNotAllowed, error: "MethodNotAllowed", "this resource supports \(allow)").response
                    response.headers[OSBHeader.allow] = allow
                    return response
                })
            }
        }
    }

    /// What a handler needs of the HTTP request, checked once.
    struct OSBRequest: Sendable {
        var instanceId: String
        var bindingId: String
        var acceptsIncomplete: Bool
        var identity: String
        var query: [String: String]
    }

    /// Validates the path ids, `accepts_incomplete` and the originating identity (400 otherwise).
    func parse(_ request: Request, _ context: AdminRequestContext) throws(OSBReply) -> OSBRequest {
        func pathId(_ name: String) throws(OSBReply) -> String {
            guard let raw = context.parameters.get(name) else { return "" }
            guard let id = raw.removingPercentEncoding, !id.isEmpty else { throw .badRequest("\(name) is not a valid percent-encoded string") }
            guard id.utf8.count <= OSBLimits.idBytesMax else { throw .badRequest("\(name) is longer than \(OSBLimits.idBytesMax) bytes") }
            return id
        }
        var query: [String: String] = [:]
        for (key, value) in request.uri.queryParameters {
            let k = String(key), v = String(value)  // Hummingbird percent-decodes query values
            guard !k.isEmpty else { throw .badRequest("a query parameter has no name") }
            // Some clients repeat a parameter (path and parameter list); the same value twice is
            // one value, two different values are a contradiction.
            if let first = query[k], first != v { throw .badRequest("query parameter \(k) is given twice with different values") }
            query[k] = v
        }
        var accepts = false
        if let value = query["accepts_incomplete"] {
            switch value {
            case "true": accepts = true
            case "false": accepts = false
            default: throw .badRequest("accepts_incomplete must be true or false, got \(BrokerMiddleware.printable(value))")
            }
        }
        // OSB: service_id, plan_id and operation, "if present, MUST be a non-empty string".
        for hint in ["service_id", "plan_id", "operation"] where query[hint]?.isEmpty == true {
            throw .badRequest("the query parameter \(hint) must not be empty when present")
        }
        let identity = request.headers[OSBHeader.originatingIdentity] ?? ""
        guard identity.utf8.count <= OSBLimits.originatingIdentityBytesMax,
              identity.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F })
        else {
            throw .badRequest("X-Broker-API-Originating-Identity must be 'Platform base64value' in at most \(OSBLimits.originatingIdentityBytesMax) printable ASCII characters")
        }
        return OSBRequest(instanceId: try pathId("instance_id"), bindingId: try pathId("binding_id"), acceptsIncomplete: accepts, identity: identity, query: query)
    }

    // MARK: - Leader routing

    /// Serves a write on the leader; a follower forwards it (once) with the platform's own
    /// headers, and the leader checks the credentials again.
    func write(_ request: Request, _ context: AdminRequestContext, _ handler: (OSBRequest, [UInt8]) async throws(OSBReply) -> OSBReply) async -> Response {
        var request = request
        let body: [UInt8]
        do {
            var buffer = try await request.collectBody(upTo: serverConfig.limits.bodyBytesMax)
            body = buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch {
            return OSBReply.badRequest("the request body is larger than \(serverConfig.limits.bodyBytesMax) bytes or unreadable").response
        }
        let parsed: OSBRequest
        do {
            parsed = try parse(request, context)
        } catch {
            return error.response
        }
        let hint = node.leaderHint
        if hint.role != .leader {
            let forwarded = request.headers[OSBHeader.forwardedBy] != nil
            guard hint.leader != noNode, !forwarded, let leader = serverConfig.members[hint.leader] else {
                let why = hint.leader == noNode ? "no leader is known right now (election in progress?)" : "this peer does not lead (peer \(hint.leader) does)"
                return OSBReply.unavailable(why).response
            }
            return await forward(request, body: body, to: leader)
        }
        logger.debug("broker \(request.method) \(request.uri.path)", metadata: Self.requestMetadata(request))
        do {
            return try await handler(parsed, body).response
        } catch {
            return error.response
        }
    }

    /// Serves a read on any peer from its applied state after a ReadIndex round (linearizable:
    /// a platform that was just told 201 by one peer finds the binding on every other).
    func read(_ request: Request, _ context: AdminRequestContext, _ handler: (OSBRequest) async throws(OSBReply) -> OSBReply) async -> Response {
        do {
            return try await handler(try parse(request, context)).response
        } catch {
            return error.response
        }
    }

    func forward(_ request: Request, body: [UInt8], to leader: MemberAddresses) async -> Response {
        var headers: [(String, String)] = [("X-Peer-Forwarded-By", "\(serverConfig.selfID)")]
        for name in [HTTPField.Name.authorization, OSBHeader.version, OSBHeader.originatingIdentity, OSBHeader.requestIdentity] {
            if let value = request.headers[name] { headers.append((name.rawName, value)) }
        }
        let method = HTTPMethod(rawValue: request.method.rawValue)
        do {
            let answer = try await forwarder.request(
                host: leader.apiHost, port: leader.apiPort, method: method, path: request.uri.description,
                headers: headers, body: body.isEmpty ? nil : body, timeoutMillis: 15_000)
            var fields = HTTPFields()
            fields[.contentType] = "application/json"
            for (name, value) in answer.headers where name.lowercased() == "retry-after" || name.lowercased() == "www-authenticate" {
                if let field = HTTPField.Name(name) { fields[field] = value }
            }
            return Response(status: HTTPResponse.Status(code: answer.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
        } catch {
            return OSBReply.unavailable("forwarding to the leader at \(leader.api) failed, the outcome is unknown: \(error)").response
        }
    }

    static func requestMetadata(_ request: Request) -> Logger.Metadata {
        var metadata: Logger.Metadata = [:]
        if let id = request.headers[OSBHeader.requestIdentity], BrokerMiddleware.isEchoable(id) { metadata["request"] = "\(id)" }
        if let who = request.headers[OSBHeader.originatingIdentity], BrokerMiddleware.isEchoable(who) { metadata["originating"] = "\(who)" }
        return metadata
    }

    // MARK: - State access

    /// Runs `body` on the state after a ReadIndex round; a failure is 503 (nothing changed).
    func readState<T: Sendable>(_ body: @escaping @Sendable (ClusterState) -> T) async throws(OSBReply) -> T {
        do {
            return try await node.read(linearizable: true, body)
        } catch {
            throw .unavailable("the cluster state cannot be read consistently now: \(error)")
        }
    }

    /// Proposes one command under a fresh client session and returns what apply said.
    func propose(_ body: Command.OneOf_Body) async throws(OSBReply) -> ApplyResult {
        let command = Command(clientId: BrokerIds.freshClientId(), sequence: 1, leaderTimeMs: Self.nowMs(), body)
        do {
            return try await node.propose(command.entryBytes())
        } catch {
            if error.certainlyNotApplied { throw .unavailable("not applied: \(error)") }
            throw .unavailable("the outcome is unknown (\(error)); repeating the request is safe")
        }
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// SHA-256 over the canonical JSON of the attributes that make two requests "identical".
    static func attributesDigest(_ attributes: [String: JSONValue]) -> String {
        ClusterModel.Hex.encode(Array(SHA256.hash(data: JSONValue.object(attributes).canonicalBytes)))
    }

    /// A proposal refused because the state moved under the decision: decide again.
    static func lostRace(_ result: ApplyResult) -> Bool {
        switch result {
        case .rejected(let r), .duplicate(.rejected(let r)):
            return [.alreadyExists, .conflict, .notFound, .invalidTransition].contains(r.code)
        default:
            return false
        }
    }

    static func unexpected(_ result: ApplyResult) -> OSBReply {
        switch result {
        case .rejected(let r) where r.code == .limitReached, .duplicate(.rejected(let r)) where r.code == .limitReached:
            return OSBReply(.unprocessableContent, error: "LimitReached", r.detail)
        case .rejected(let r) where r.code == .invalidField, .duplicate(.rejected(let r)) where r.code == .invalidField:
            return .badRequest(r.detail)
        default:
            return .unavailable("the cluster refused the change: \(result)")
        }
    }

    static func raced(_ what: String) -> OSBReply {
        .unavailable("\(what) changed under this request \(decideAttemptsMax) times")
    }
}
