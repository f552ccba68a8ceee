import ClusterModel
import Foundation
import PeerNode
import Raft

/// What the leader's loops need of the local Raft node: who leads, reads of the replicated
/// state, proposals, the node's status and membership changes. `PeerNode` in the peer; a
/// simulated node in `peer-sim --world cluster`, so the same loops run in both (ADR 0010).
public protocol LeaderNode: Sendable {
    var leaderHint: (leader: NodeID, role: Role, term: Term) { get }
    func propose(_ bytes: [UInt8]) async throws(ProposeError) -> ApplyResult
    func read<T: Sendable>(linearizable: Bool, _ body: @escaping @Sendable (ClusterState) -> T) async throws(ReadError) -> T
    func status() async throws(ReadError) -> NodeStatus
    func changeMembership(_ change: ConfChange) async throws(ProposeError)
}

extension PeerNode: LeaderNode {}

/// The leader's clock: the wall time it stamps on commands and decides with, and the loops'
/// waits. The system's in the peer; the simulator's virtual one in `peer-sim`, which is why no
/// loop reads `Date()` or sleeps on its own.
public protocol LeaderClock: Sendable {
    /// Unix time, milliseconds.
    func nowMs() -> Int64
    /// Returns after `millis`, or soon after the task is cancelled.
    func sleep(millis: Int) async
}

/// The system's clock.
public struct SystemClock: LeaderClock {
    public init() {}

    public func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    public func sleep(millis: Int) async { try? await Task.sleep(for: .milliseconds(millis)) }
}
