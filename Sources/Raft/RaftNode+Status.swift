// Read-only views of the core's state for operators (`peer status`). Nothing here changes the
// node; the driver copies these into its status answers.

/// How the leader replicates to one peer, as `peer status` shows it.
public struct PeerProgressView: Sendable, Hashable {
    public var id: NodeID
    /// Highest index known to be in the peer's log.
    public var match: LogIndex
    /// Next index the leader will send.
    public var next: LogIndex
    /// `probe`, `replicate` or `snapshot`.
    public var state: String
    public var isLearner: Bool
    /// Heard from since the last check-quorum round.
    public var recentActive: Bool
}

extension RaftNode {
    /// The leader's view of every other peer, sorted by id; empty on a non-leader.
    public var progressView: [PeerProgressView] {
        guard role == .leader else { return [] }
        return progress.keys.sorted().compactMap { peer in
            guard peer != id, let pr = progress[peer] else { return nil }
            let state: String
            switch pr.state {
            case .probe: state = "probe"
            case .replicate: state = "replicate"
            case .snapshot: state = "snapshot"
            }
            return PeerProgressView(id: peer, match: pr.match, next: pr.next, state: state, isLearner: pr.isLearner, recentActive: pr.recentActive)
        }
    }
}

extension RaftNode {
    /// Messages queued for the next `Ready`, in order (read-only). The simulator inspects each
    /// message as the step that queued it returns, so it can check a vote at the moment it is
    /// cast, against the log the voter held then.
    public var queuedMessages: ArraySlice<Message> { outbox[...] }
}
