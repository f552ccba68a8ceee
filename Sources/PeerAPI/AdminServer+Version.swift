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
        router.post("version/raise") { request, _ in
            var request = request
            return await self.write(request: &request) { (_: [UInt8]) async throws(APIError) -> (VersionInfo, HTTPResponse.Status) in
                (try await self.raiseClusterVersion(), .ok)
            }
        }
        router.post("version/lower") { request, _ in
            var request = request
            return await self.write(request: &request) { (body: [UInt8]) async throws(APIError) -> (VersionInfo, HTTPResponse.Status) in
                let req: VersionLowerRequest
                do { req = try JSONDecoder().decode(VersionLowerRequest.self, from: Data(body)) } catch {
                    throw APIError("badRequest", "the body is not a lower request ({\"to\": 1}): \(error)")
                }
                return (try await self.lowerClusterVersion(to: req.to), .ok)
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

    func raiseClusterVersion() async throws(APIError) -> VersionInfo {
        let s: NodeStatus
        do { s = try await node.status() } catch { throw Self.apiError(error) }
        let members = Set((s.voters + s.learners).map { "\($0)" })
        let target: Result<UInt32, ClusterVersion.Refusal>
        do { target = try await node.read(linearizable: true) { ClusterVersion.raiseTarget(state: $0, members: members) } } catch { throw Self.apiError(error) }
        switch target {
        case .failure(let refusal): throw APIError("conflict", refusal.description)
        case .success(let v):
            var c = PBSetMinVersion()
            c.protocolVersion = v
            let result = try await propose(.setMinVersion(c), clientId: nil, sequence: nil)
            guard case .applied = result else { throw Self.apiError(result) }
        }
        return try await versionInfo(consistent: false)
    }

    func lowerClusterVersion(to: UInt32) async throws(APIError) -> VersionInfo {
        var c = PBLowerMinVersion()
        c.protocolVersion = to
        let result = try await propose(.lowerMinVersion(c), clientId: nil, sequence: nil)
        switch result {
        case .applied: return try await versionInfo(consistent: false)
        case .rejected(let r) where r.code == .commandGated:
            throw APIError("conflict", "the cluster version is 1: there is nothing to lower (\(r.detail))")
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

public struct VersionLowerRequest: Codable, Sendable, Hashable {
    public var to: UInt32
    public init(to: UInt32) { self.to = to }
}
