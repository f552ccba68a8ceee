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

    /// The transport lost its connection to the current leader (or the leader's process is
    /// known dead). A follower forgets that leader, which also ends its lease, and starts a
    /// PRE-vote at once instead of waiting an election timeout. Safe against a leader that is
    /// only slow or cut off from this node alone: the other voters still hear from it, are in
    /// their lease and refuse the pre-vote, so no term changes anywhere (thesis §9.6, §6.2).
    /// Without pre-vote it only forgets the leader (a real election at once would disrupt).
    public mutating func leaderConnectionLost() {
        precondition(!awaitingAdvance, "leaderConnectionLost() between ready() and advance()")
        guard haltReason == nil, role == .follower, leader != noNode else { return }
        leader = noNode
        guard config.preVote, isPromotable else { return }
        counters.leaderConnectionsLost += 1
        hup()
        checkStorage()
    }
}
