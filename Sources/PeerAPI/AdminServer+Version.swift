import ClusterModel
import Controller
import Foundation
import Hummingbird
import HTTPTypes
import PeerNode
import Raft

/// `/v1/version`: the cluster version and what every instance runs; raise it once every member
/// runs the target (`peer upgrade finish`), lower it before going back (`peer downgrade`).
/// docs/api.md §Version, docs/operations.md §Upgrades.
extension AdminServer {
    func addVersionRoutes(to router: RouterGroup<AdminRequestContext>) {
        router.get("version") { request, _ in
            await self.respond { () async throws(APIError) -> VersionInfo in try await self.versionInfo(consistent: Self.flag(request, "consistent")) }
        }
        for verb in ["raise", "lower"] {
            router.post("version/\(verb)") { request, _ in
                var request = request
                return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (VersionInfo, HTTPResponse.Status) in
                    let req: VersionRequest
                    do { req = body.isEmpty ? VersionRequest() : try JSONDecoder().decode(VersionRequest.self, from: Data(body)) } catch {
                        throw APIError("badRequest", "the body is not a version request ({\"to\": 1, \"clientId\": ..., \"sequence\": ...}): \(error)")
                    }
                    if verb == "raise" { return (try await self.raiseClusterVersion(req), .ok) }
                    guard let to = req.to else { throw APIError("badRequest", "give the version to lower to: {\"to\": 1}") }
                    return (try await self.lowerClusterVersion(to: to, req), .ok)
                }
            }
        }
    }

    func versionInfo(consistent: Bool) async throws(APIError) -> VersionInfo {
        let (build, lo, hi) = (config.version, config.protocolVersionMin, config.protocolVersion)
        do {
            return try await node.read(linearizable: consistent) { state in
                VersionInfo(
                    clusterVersion: max(1, state.minProtocolVersion), peer: build, protocolVersionMin: lo, protocolVersionMax: hi,
                    instances: state.allInstances.filter { $0.state != .removed }.map {
                        VersionInfo.Member(id: $0.id, version: $0.version, protocolVersion: $0.protocolVersion, state: Names.instanceState($0.state))
                    })
            }
        } catch {
            throw Self.apiError(error)
        }
    }

    /// A retry (the same client and sequence, after an answer was lost) is answered by the log
    /// as a duplicate: never a second raise or lower, and never a refusal of the state the first
    /// one made (a second `LowerMinVersion` in the log would halt a replica of the lower release).
    func raiseClusterVersion(_ req: VersionRequest) async throws(APIError) -> VersionInfo {
        let client = req.clientId ?? Self.freshClientID()
        let sequence = req.sequence ?? 1
        let s: NodeStatus
        do { s = try await node.status() } catch { throw Self.apiError(error) }
        let members = Set((s.voters + s.learners).map { "\($0)" })
        let target: Result<UInt32, ClusterVersion.Refusal>?
        do {
            target = try await node.read(linearizable: true) { state in
                if let last = state.lastSequence(ofClient: client), last >= sequence { return nil }
                return ClusterVersion.raiseTarget(state: state, members: members)
            }
        } catch {
            throw Self.apiError(error)
        }
        var c = PBSetMinVersion()
        switch target {
        case .failure(let refusal)?: throw APIError("conflict", refusal.description)
        case .success(let v)?: c.protocolVersion = v
        case nil: break  // a retry: the log answers it
        }
        let result = try await propose(.setMinVersion(c), clientId: client, sequence: sequence)
        switch result {
        case .applied, .duplicate(.applied): return try await versionInfo(consistent: false)
        default: throw Self.apiError(result)
        }
    }

    func lowerClusterVersion(to: UInt32, _ req: VersionRequest) async throws(APIError) -> VersionInfo {
        var c = PBLowerMinVersion()
        c.protocolVersion = to
        let result = try await propose(.lowerMinVersion(c), clientId: req.clientId, sequence: req.sequence)
        switch result {
        case .applied, .duplicate(.applied): return try await versionInfo(consistent: false)
        default: throw Self.apiError(result)
        }
    }
}

/// `GET /v1/version`.
public struct VersionInfo: Codable, Sendable, Hashable {
    public struct Member: Codable, Sendable, Hashable {
        public var id: String
        public var version: String
        public var protocolVersion: UInt32
        public var state: String
    }

    /// The protocol version every replica applies alike (the state's min protocol version).
    public var clusterVersion: UInt32
    /// The answering peer's build and the protocol versions it runs.
    public var peer: String
    public var protocolVersionMin: UInt32
    public var protocolVersionMax: UInt32
    public var instances: [Member]
}

/// `POST /v1/version/raise` (no `to`) and `/lower`; the client session makes a retry apply once.
public struct VersionRequest: Codable, Sendable, Hashable {
    public var to: UInt32?
    public var clientId: String?
    public var sequence: UInt64?

    public init(to: UInt32? = nil, clientId: String? = nil, sequence: UInt64? = nil) {
        self.to = to
        self.clientId = clientId
        self.sequence = sequence
    }
}
