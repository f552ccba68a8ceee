import ClusterModel
import Controller
import Foundation
import Hummingbird
import HTTPTypes
import PeerNode
import Raft

/// `/v1/members` (the Raft configuration, for the operator: list, add a learner, promote,
/// remove) and `/v1/leader/transfer`. They touch Raft membership only: placing tenants and an
/// instance's lifecycle are `/v1/instances`' (docs/api.md §Members). Every one is served by the
/// leader (a follower forwards it): only the leader knows each member's progress.
extension AdminServer {
    func addMemberRoutes(to router: RouterGroup<AdminRequestContext>) {
        router.get("members") { request, _ in
            var request = request
            return await self.write(request: &request) { (_: [UInt8]) async throws(APIError) -> (MembersInfo, HTTPResponse.Status) in
                (try await self.members(), .ok)
            }
        }
        router.post("members") { request, _ in
            var request = request
            return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (MembersInfo, HTTPResponse.Status) in
                let req: MemberAddRequest
                do { req = try JSONDecoder().decode(MemberAddRequest.self, from: Data(body)) } catch {
                    throw APIError("badRequest", "the body is not a member add request ({\"id\": \"4\", \"peer\": ..., \"api\": ..., all but id optional for a known instance}): \(error)")
                }
                return (try await self.addMember(req), .ok)
            }
        }
        for verb in ["promote", "remove"] {
            router.post("members/:id/\(verb)") { request, context in
                var request = request
                let id = Self.pathSegment(context, "id")
                return await self.write(request: &request) { (_: [UInt8]) async throws(APIError) -> (MembersInfo, HTTPResponse.Status) in
                    let member = try Self.memberID(try id.get())
                    return (verb == "promote" ? try await self.promoteMember(member) : try await self.removeMember(member), .ok)
                }
            }
        }
        router.post("leader/transfer") { request, _ in
            var request = request
            return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (LeaderTransferInfo, HTTPResponse.Status) in
                let req: LeaderTransferRequest
                do { req = body.isEmpty ? LeaderTransferRequest() : try JSONDecoder().decode(LeaderTransferRequest.self, from: Data(body)) } catch {
                    throw APIError("badRequest", "the body is not a transfer request ({\"to\": 2}, optional): \(error)")
                }
                return (try await self.transferLeadership(to: req.to), .ok)
            }
        }
    }

    static func memberID(_ text: String) throws(APIError) -> NodeID {
        guard let n = NodeID(text), n != noNode else { throw APIError("badRequest", "a member id is a positive integer, got \(text)") }
        return n
    }

    /// The configuration as the leader sees it, with each member's progress and what the state
    /// knows of it.
    func members() async throws(APIError) -> MembersInfo {
        let s: NodeStatus
        do { s = try await node.status() } catch { throw Self.apiError(error) }
        guard s.role == .leader else { throw APIError("notLeader", "this peer no longer leads", retryable: true, leader: s.leader == noNode ? nil : s.leader) }
        struct Known: Sendable {
            var state: String
            var version: String
            var placements: Int
        }
        let ids = s.voters + s.learners
        let known: [NodeID: Known]
        do {
            known = try await node.read(linearizable: false) { state in
                var out: [NodeID: Known] = [:]
                for id in ids {
                    guard let i = state.instance("\(id)") else { continue }
                    out[id] = Known(state: "\(i.state)", version: i.version, placements: state.placements(onInstance: i.id).count)
                }
                return out
            }
        } catch {
            throw Self.apiError(error)
        }
        let progress = Dictionary(uniqueKeysWithValues: s.progress.map { ($0.id, $0) })
        let rows = ids.sorted().map { id -> MemberInfo in
            let p = progress[id]
            let me = id == s.id
            let match = me ? s.lastIndex : (p?.match ?? 0)
            return MemberInfo(
                id: id, role: s.voters.contains(id) ? "voter" : "learner", leader: me,
                address: config.addresses(of: id)?.peer ?? "", apiAddress: config.addresses(of: id)?.api ?? "",
                match: match, behind: s.lastIndex > match ? s.lastIndex - match : 0,
                caughtUp: me || (p.map { InstanceLifecycle.isCaughtUp(match: $0.match, lastIndex: s.lastIndex, recentlyActive: $0.recentActive) } ?? false),
                recentActive: me || (p?.recentActive ?? false), lastContactMs: me ? 0 : s.lastContactMillis[id],
                instanceState: known[id]?.state, version: known[id]?.version, placements: known[id]?.placements ?? 0)
        }
        return MembersInfo(leader: s.id, term: s.term, commitIndex: s.commitIndex, lastIndex: s.lastIndex, members: rows)
    }

    /// Adds a learner. A member the state knows (its addresses too) needs only its id; a new
    /// host the operator runs by hand (`peer run --existing`) also gives its addresses, which are
    /// recorded first as an active instance, so every member dials it and routes to it.
    func addMember(_ req: MemberAddRequest) async throws(APIError) -> MembersInfo {
        let id = try Self.memberID(req.id)
        let s: NodeStatus
        do { s = try await node.status() } catch { throw Self.apiError(error) }
        if s.voters.contains(id) || s.learners.contains(id) {
            throw APIError("conflict", "peer \(id) is already a \(s.voters.contains(id) ? "voter" : "learner")")
        }
        let instance: Instance?
        do { instance = try await node.read(linearizable: true) { $0.instance(req.id) } } catch { throw Self.apiError(error) }
        if let instance, instance.state == .removed {
            throw APIError("conflict", "instance \(req.id) was removed and ids are never reused: give the new host a new id")
        }
        if instance == nil {
            guard let peer = req.peer, let api = req.api else {
                throw APIError("badRequest", "instance \(req.id) is not in the cluster's state: give its addresses (peer and api; router and components if it runs a data plane)")
            }
            var add = PBAddInstance()
            add.id = req.id
            add.address = peer
            add.apiAddress = api
            add.routerAddress = req.router ?? ""
            add.componentsAddress = req.components ?? ""
            add.role = .learner
            add.version = req.version ?? "unreported"
            add.protocolVersion = config.protocolVersion
            let client = Self.freshClientID()
            let added = try await propose(.addInstance(add), clientId: client, sequence: 1)
            guard case .applied = added else { throw Self.apiError(added) }
            var active = PBSetInstanceState()
            active.id = req.id
            active.state = .active
            let activated = try await propose(.setInstanceState(active), clientId: client, sequence: 2)
            guard case .applied = activated else { throw Self.apiError(activated) }
        } else if req.peer != nil || req.api != nil {
            let known = "\(instance!.address), api \(instance!.apiAddress)"
            if req.peer.map({ $0 != instance!.address }) ?? false || req.api.map({ $0 != instance!.apiAddress }) ?? false {
                throw APIError("conflict", "instance \(req.id) is known at \(known); addresses of an instance never change: give a new host a new id")
            }
        }
        try await changeMembership(.addLearner(id))
        return try await members()
    }

    func promoteMember(_ id: NodeID) async throws(APIError) -> MembersInfo {
        let s: NodeStatus
        do { s = try await node.status() } catch { throw Self.apiError(error) }
        if s.voters.contains(id) { throw APIError("conflict", "peer \(id) is already a voter") }
        guard s.learners.contains(id) else { throw APIError("notFound", "peer \(id) is not a member: add it as a learner first (peer members add)") }
        try await changeMembership(.promote(id))
        return try await members()
    }

    /// Removes a member from the Raft configuration. Refused for the leader (hand leadership
    /// over first: `peer leader transfer`), for a member that still holds tenants (drain it
    /// first), and for a voter whose removal would leave a configuration whose answering voters
    /// are no quorum.
    func removeMember(_ id: NodeID) async throws(APIError) -> MembersInfo {
        let s: NodeStatus
        do { s = try await node.status() } catch { throw Self.apiError(error) }
        guard s.voters.contains(id) || s.learners.contains(id) else { throw APIError("notFound", "peer \(id) is not a member") }
        if id == s.id {
            throw APIError("conflict", "peer \(id) leads: hand leadership to another voter first (peer leader transfer), then remove it")
        }
        let placed: Int
        do { placed = try await node.read(linearizable: true) { $0.placements(onInstance: "\(id)").count } } catch { throw Self.apiError(error) }
        if placed > 0 {
            throw APIError("conflict", "instance \(id) still holds \(placed) placement(s): drain it first (peer instances drain \(id)), or retire it whole (peer instances remove \(id))")
        }
        if s.voters.contains(id), let why = Self.quorumRefusal(removing: id, status: s) { throw APIError("conflict", why) }
        try await changeMembership(.removeNode(id))
        return try await members()
    }

    /// Why removing voter `id` would leave no quorum that answers, or nil. The leader answers
    /// for itself; the others count if the leader heard from them in its last check-quorum round.
    static func quorumRefusal(removing id: NodeID, status s: NodeStatus) -> String? {
        let rest = s.voters.filter { $0 != id }
        if rest.isEmpty { return "peer \(id) is the last voter; the cluster cannot lose it" }
        let active = Set(s.progress.filter(\.recentActive).map(\.id)).union([s.id])
        let answering = rest.filter { active.contains($0) }
        let quorum = rest.count / 2 + 1
        if answering.count < quorum {
            return "removing voter \(id) would leave \(rest.count) voter(s) of which \(answering.count) answer (\(answering.sorted().map(String.init).joined(separator: ", "))), fewer than the \(quorum) a quorum needs"
        }
        return nil
    }

    func changeMembership(_ change: ConfChange) async throws(APIError) {
        do {
            try await node.changeMembership(change)
        } catch {
            switch error {
            case .refused(let why): throw APIError("conflict", "\(change) refused: \(why)")
            case .notLeader(let leader): throw APIError("notLeader", "\(error)", retryable: true, leader: leader == noNode ? nil : leader)
            case .notApplied: throw APIError("unavailable", "\(error)", retryable: true)
            case .outcomeUnknown, .stopped: throw APIError("outcomeUnknown", "\(change): \(error); `peer members list` shows whether it applied", outcomeUnknown: true)
            case .halted: throw APIError("halted", "\(error)")
            }
        }
    }

    /// Hands leadership to `to`, or to the most caught-up voter that answers, and waits (up to
    /// 10 s) until this peer no longer leads.
    func transferLeadership(to: NodeID?) async throws(APIError) -> LeaderTransferInfo {
        let s: NodeStatus
        do { s = try await node.status() } catch { throw Self.apiError(error) }
        let target: NodeID
        if let to {
            // Already done (a retry of a transfer that went through): say so, change nothing.
            if to == s.id { return LeaderTransferInfo(from: s.id, to: s.id, term: s.term, millis: 0) }
            guard s.voters.contains(to) else { throw APIError("badRequest", "peer \(to) is not a voter; only a voter can lead") }
            target = to
        } else {
            let candidates = s.progress.filter { !$0.isLearner && $0.recentActive && s.voters.contains($0.id) && $0.id != s.id }
            guard let best = candidates.max(by: { ($0.match, $1.id) < ($1.match, $0.id) }) else {
                throw APIError("conflict", "no other voter answers the leader: nobody to hand leadership to")
            }
            target = best.id
        }
        let began = ContinuousClock.now
        do {
            try await node.transferLeadership(to: target)
        } catch {
            switch error {
            case .notLeader(let leader): throw APIError("notLeader", "\(error)", retryable: true, leader: leader == noNode ? nil : leader)
            default: throw APIError("conflict", "transfer to peer \(target): \(error)")
            }
        }
        while ContinuousClock.now - began < .seconds(10) {
            let hint = node.leaderHint
            if hint.role != .leader, hint.leader != noNode {
                let t = (ContinuousClock.now - began).components
                return LeaderTransferInfo(from: s.id, to: hint.leader, term: hint.term, millis: Int(t.seconds) * 1000 + Int(t.attoseconds / 1_000_000_000_000_000))
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        throw APIError("unavailable", "peer \(s.id) still leads 10 s after asking peer \(target) to take over (it may be too far behind); retry", retryable: false)
    }
}

/// `GET /v1/members`.
public struct MembersInfo: Codable, Sendable, Hashable {
    public var leader: UInt64
    public var term: UInt64
    public var commitIndex: UInt64
    public var lastIndex: UInt64
    public var members: [MemberInfo]
}

public struct MemberInfo: Codable, Sendable, Hashable {
    public var id: UInt64
    /// `voter` or `learner`.
    public var role: String
    public var leader: Bool
    public var address: String
    public var apiAddress: String
    /// The highest entry the leader knows it holds, and how far behind the leader's last it is.
    public var match: UInt64
    public var behind: UInt64
    /// Within the catch-up bound and heard from recently: may be promoted.
    public var caughtUp: Bool
    public var recentActive: Bool
    public var lastContactMs: Int?
    /// What the replicated state says of the instance with this id (nil: it knows none).
    public var instanceState: String?
    public var version: String?
    public var placements: Int
}

/// `POST /v1/members`.
public struct MemberAddRequest: Codable, Sendable, Hashable {
    public var id: String
    public var peer: String?
    public var api: String?
    public var router: String?
    public var components: String?
    public var version: String?

    public init(id: String, peer: String? = nil, api: String? = nil, router: String? = nil, components: String? = nil, version: String? = nil) {
        self.id = id
        self.peer = peer
        self.api = api
        self.router = router
        self.components = components
        self.version = version
    }
}

/// `POST /v1/leader/transfer`.
public struct LeaderTransferRequest: Codable, Sendable, Hashable {
    public var to: UInt64?

    public init(to: UInt64? = nil) { self.to = to }
}

public struct LeaderTransferInfo: Codable, Sendable, Hashable {
    public var from: UInt64
    public var to: UInt64
    public var term: UInt64
    public var millis: Int
}
