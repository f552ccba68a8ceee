// What the driver tells the core about its connections (the transport sees them; the core has
// no sockets). Both inputs only make the core react sooner; ignoring them is always safe.

extension RaftNode {
    /// The transport could not deliver to `peer` (connection lost, queue full). On the leader:
    /// a pipelining follower falls back to probing (its in-flight appends are likely lost), and a
    /// snapshot transfer to it pauses, to resume from the last acknowledged byte when the peer
    /// answers again (or after an election timeout). Elsewhere it does nothing.
    public mutating func reportUnreachable(_ peer: NodeID) {
        precondition(!awaitingAdvance, "reportUnreachable() between ready() and advance()")
        guard haltReason == nil, role == .leader, peer != id, var pr = progress[peer] else { return }
        switch pr.state {
        case .replicate:
            pr.becomeProbe()
        case .probe:
            break
        case .snapshot:
            pr.transfer!.paused = true
            pr.transfer!.rewind()
        }
        progress[peer] = pr
    }
}
