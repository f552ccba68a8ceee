import ClusterModel
import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import PeerNode
import Raft

/// `GET /v1/snapshot`: a backup of the cluster state (docs/api.md §Snapshot). Served by the
/// leader only, after a linearizable read: the state holds every write acknowledged before the
/// request. A follower answers `notLeader` (retryable) rather than forwarding megabytes.
extension AdminServer {
    func addSnapshotRoutes(to router: RouterGroup<AdminRequestContext>) {
        router.get("snapshot") { _, _ in await self.snapshotResponse() }
    }

    func snapshotResponse() async -> Response {
        let file: SnapshotFile
        do { file = try await snapshotFile() } catch { return Self.json(error, status: Self.httpStatus(for: error)) }
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: file.encoded())))
    }

    func snapshotFile() async throws(APIError) -> SnapshotFile {
        let hint = node.leaderHint
        guard hint.role == .leader else {
            throw hint.leader == noNode
                ? APIError("noLeader", "no leader is known right now; retry", retryable: true)
                : APIError("notLeader", "a snapshot is taken by the leader, peer \(hint.leader)", retryable: true, leader: hint.leader)
        }
        // The state is a value: the read hands a copy over (copy-on-write, nothing is encoded on
        // the node's thread).
        let state: ClusterState
        let s: NodeStatus
        do {
            state = try await node.read(linearizable: true) { $0 }
            s = try await node.status()
        } catch {
            throw Self.apiError(error)
        }
        guard s.role == .leader, s.term == hint.term else {
            throw APIError("notLeader", "leadership changed while the snapshot was taken; retry", retryable: true, leader: s.leader == noNode ? nil : s.leader)
        }
        return SnapshotFile(
            clusterID: config.clusterID, index: state.appliedIndex, term: s.term, savedAtMs: Self.nowMs(), savedBy: s.id,
            version: config.version, voters: s.voters.sorted(), learners: s.learners.sorted(), state: state.encodeSnapshot())
    }
}
