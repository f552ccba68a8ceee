import ClusterModel
import Controller
import Foundation
import Hummingbird
import HTTPTypes
import PeerNode

/// `/v1/events` (the balancer's decisions and the operator's pauses, newest first) and
/// `/v1/balancer` (its state; pause and resume). docs/api.md §Balancer.
extension AdminServer {
    /// Most events one `GET /v1/events` answers.
    static let eventsPageMax = 1_000

    func addBalancerRoutes(to router: RouterGroup<AdminRequestContext>) {
        router.get("events") { request, _ in
            await self.respond { () async throws(APIError) -> [EventInfo] in
                let q = request.uri.queryParameters
                let text = { (name: String) -> String? in q.get(name).map { String($0) } }
                let limit = try Self.integer(text("limit"), "limit", default: 100, in: 1...Self.eventsPageMax)
                let after = text("after") == nil ? nil : try Self.integer(text("after"), "after", default: 0, in: 0...Int.max)
                let before = text("before") == nil ? nil : try Self.integer(text("before"), "before", default: 0, in: 1...Int.max)
                guard after == nil || before == nil else { throw APIError("badRequest", "give after or before, not both") }
                return try await self.events(after: after, before: before, limit: limit, consistent: Self.flag(request, "consistent"))
            }
        }
        router.get("balancer") { request, _ in
            await self.respond { () async throws(APIError) -> BalancerInfo in try await self.balancerInfo(consistent: Self.flag(request, "consistent")) }
        }
        for (verb, paused) in [("pause", true), ("resume", false)] {
            router.post("balancer/\(verb)") { request, _ in
                var request = request
                return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (BalancerInfo, HTTPResponse.Status) in
                    let req: BalancerPauseRequest
                    do { req = body.isEmpty ? BalancerPauseRequest() : try JSONDecoder().decode(BalancerPauseRequest.self, from: Data(body)) } catch {
                        throw APIError("badRequest", "the body is not a balancer request ({\"reason\": ..., \"clientId\": ..., \"sequence\": ...}, all optional): \(error)")
                    }
                    return try await self.setBalancerPaused(paused, req)
                }
            }
        }
    }

    static func integer(_ text: String?, _ name: String, default value: Int, in range: ClosedRange<Int>) throws(APIError) -> Int {
        guard let text else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw APIError("badRequest", "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), got \(text)")
        }
        return n
    }

    func events(after: Int?, before: Int?, limit: Int, consistent: Bool) async throws(APIError) -> [EventInfo] {
        do {
            return try await node.read(linearizable: consistent) { state in
                let events = after.map { state.events(after: UInt64($0), limit: limit) }
                    ?? state.events(newestFirstBefore: before.map { UInt64($0) }, limit: limit)
                return events.map(EventInfo.init)
            }
        } catch {
            throw Self.apiError(error)
        }
    }

    func balancerInfo(consistent: Bool) async throws(APIError) -> BalancerInfo {
        let enabled = config.balancerEnabled
        do {
            return try await node.read(linearizable: consistent) { state in
                BalancerInfo(state, enabled: enabled)
            }
        } catch {
            throw Self.apiError(error)
        }
    }

    /// Commits a `paused` or `resumed` event (the state's flag follows the last one). Pausing a
    /// paused balancer is 200 with nothing committed.
    func setBalancerPaused(_ paused: Bool, _ req: BalancerPauseRequest) async throws(APIError) -> (BalancerInfo, HTTPResponse.Status) {
        if let reason = req.reason, reason.utf8.count > 512 { throw APIError("badRequest", "reason is \(reason.utf8.count) bytes, max 512") }
        let current = try await balancerInfo(consistent: true)
        if current.paused == paused { return (current, .ok) }
        let client = req.clientId ?? Self.freshClientID()
        let sequence = req.sequence ?? 1
        var event = PBEvent()
        event.id = "\(paused ? "paused" : "resumed")-\(IdHash.fnv1a64Hex("\(client)|\(sequence)"))"
        event.kind = paused ? .paused : .resumed
        event.reason = "\(paused ? "paused" : "resumed") by an operator" + (req.reason.map { ": \($0)" } ?? "")
        var c = PBRecordEvent()
        c.event = event
        c.retain = UInt32(config.eventsRetain)
        let result = try await propose(.recordEvent(c), clientId: client, sequence: sequence)
        switch result {
        case .applied, .duplicate(.applied):
            config.logger.notice("balancer \(paused ? "paused" : "resumed") by an operator", metadata: ["event": "\(event.id)"])
            return (try await balancerInfo(consistent: false), .ok)
        default:
            throw Self.apiError(result)
        }
    }
}

/// One event (`GET /v1/events`): a balancer decision with the inputs behind it, or an operator's
/// pause or resume.
public struct EventInfo: Codable, Sendable, Hashable {
    public struct Measure: Codable, Sendable, Hashable {
        public var name: String
        public var value: Double
        /// The mark it was compared with (0: none).
        public var mark: Double
    }

    public struct Move: Codable, Sendable, Hashable {
        public var tenant: String
        /// The target instance (the event's new instance for a scale-up).
        public var to: String
        /// The move's operation id (`GET /v1/operations/{id}`).
        public var operation: String
    }

    public var id: String
    /// `scale-up`, `rebalance`, `scale-down`, `failover`, `replace`, `alert`, `paused`, `resumed`, `autopilot`.
    public var kind: String
    public var index: UInt64
    public var atMs: Int64
    public var instance: String?
    public var reason: String
    public var measures: [Measure]
    public var moves: [Move]
    public var newInstance: String?
    public var intent: String?
}

extension EventInfo {
    init(_ e: Event) {
        id = e.id
        kind = Balancer.kindName(e.kind)
        index = e.index
        atMs = e.atMs
        instance = e.instanceID.isEmpty ? nil : e.instanceID
        reason = e.reason
        measures = e.measures.map { Measure(name: $0.name, value: $0.value, mark: $0.mark) }
        moves = e.moves.map {
            Move(tenant: $0.tenantID, to: $0.targetInstanceID.isEmpty ? e.newInstanceID : $0.targetInstanceID,
                 operation: Balancer.moveOperationId(event: e.id, tenant: $0.tenantID))
        }
        newInstance = e.newInstanceID.isEmpty ? nil : e.newInstanceID
        intent = e.intentID.isEmpty ? nil : e.intentID
    }
}

/// `GET /v1/balancer`.
public struct BalancerInfo: Codable, Sendable, Hashable {
    /// The cluster file of the peer that answered has a `balancer:` section that is enabled.
    public var enabled: Bool
    public var paused: Bool
    public var lastEvent: EventInfo?
    public var eventCount: Int
}

extension BalancerInfo {
    init(_ state: ClusterState, enabled: Bool) {
        self.init(enabled: enabled, paused: state.isBalancerPaused, lastEvent: state.allEvents.last.map(EventInfo.init), eventCount: state.allEvents.count)
    }
}

/// `POST /v1/balancer/pause`, `POST /v1/balancer/resume`.
public struct BalancerPauseRequest: Codable, Sendable, Hashable {
    public var reason: String?
    public var clientId: String?
    public var sequence: UInt64?

    public init(reason: String? = nil, clientId: String? = nil, sequence: UInt64? = nil) {
        self.reason = reason
        self.clientId = clientId
        self.sequence = sequence
    }
}
