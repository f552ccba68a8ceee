import Logging
import NIOConcurrencyHelpers
import NIOCore
import PeerWire
import Raft

/// The thread-safe state every connection handler and link shares: configuration, TLS material,
/// membership, and the two output streams.
final class TransportCore: Sendable {
    let config: TransportConfiguration
    let tls: TLSMaterial?
    let events: AsyncStream<TransportEvent>.Continuation
    let incoming: AsyncStream<Message>.Continuation
    /// Membership and the established inbound connections by peer, under one lock: a connection
    /// registers only while its peer is a member, and removing a member takes its connections in
    /// the same step, so no connection can register after its peer was removed (membership is
    /// the revocation, docs/tls.md).
    private let peersBox = NIOLockedValueBox(Peers())

    struct Peers {
        var members: Set<NodeID> = []
        /// Per peer, oldest first (the per-peer cap closes the oldest).
        var inbound: [NodeID: [any Channel]] = [:]
    }

    /// Accepted connections still in their handshake, and whether a refusal run was reported.
    private let handshakingBox = NIOLockedValueBox((count: 0, refusing: false))

    init(config: TransportConfiguration, tls: TLSMaterial?,
         events: AsyncStream<TransportEvent>.Continuation, incoming: AsyncStream<Message>.Continuation) {
        self.config = config
        self.tls = tls
        self.events = events
        self.incoming = incoming
    }

    var logger: Logger { config.logger }

    /// Peers allowed to dial us: every peer with an address, never ourselves.
    var members: Set<NodeID> { peersBox.withLockedValue { $0.members } }
    func setMember(_ id: NodeID, present: Bool) {
        if present {
            peersBox.withLockedValue { _ = $0.members.insert(id) }
        } else {
            for channel in removeMember(id) { channel.close(promise: nil) }
        }
    }

    /// Revokes `id` and returns its established inbound connections (for the caller to close).
    func removeMember(_ id: NodeID) -> [any Channel] {
        peersBox.withLockedValue { p in
            p.members.remove(id)
            return p.inbound.removeValue(forKey: id) ?? []
        }
    }

    /// Takes a handshake slot for a newly accepted connection. Not admitted when
    /// `handshakingConnectionsMax` are taken; `report` is true on the first refusal of a run (a
    /// flood logs one warning, not one per socket).
    func beginHandshake() -> (admitted: Bool, report: Bool) {
        handshakingBox.withLockedValue { h in
            if h.count < config.handshakingConnectionsMax {
                h.count += 1
                return (true, false)
            }
            defer { h.refusing = true }
            return (false, !h.refusing)
        }
    }

    /// Returns a slot taken by `beginHandshake` (the hello succeeded, or the connection ended).
    func endHandshake() {
        handshakingBox.withLockedValue { h in
            h.count -= 1
            h.refusing = false
        }
    }

    /// Registers an inbound connection whose hello succeeded, returning the connections of `peer`
    /// it pushes past `inboundConnectionsPerPeerMax` (oldest first) for the caller to close.
    /// Nil when `peer` is no longer a member: it was removed after its certificate was checked,
    /// and must be refused.
    func inboundEstablished(_ peer: NodeID, channel: any Channel) -> [any Channel]? {
        peersBox.withLockedValue { p in
            guard p.members.contains(peer) else { return nil }
            var list = p.inbound[peer, default: []]
            list.append(channel)
            let excess = max(0, list.count - config.inboundConnectionsPerPeerMax)
            let evicted = Array(list.prefix(excess))
            list.removeFirst(excess)
            p.inbound[peer] = list
            return evicted
        }
    }

    func inboundClosed(_ peer: NodeID, channel: any Channel) {
        peersBox.withLockedValue { p in p.inbound[peer]?.removeAll { $0 === channel } }
    }

    /// Removes and returns the inbound connections of `peer` (all peers when nil).
    func takeInbound(_ peer: NodeID?) -> [any Channel] {
        peersBox.withLockedValue { p in
            if let peer { return p.inbound.removeValue(forKey: peer) ?? [] }
            defer { p.inbound.removeAll() }
            return p.inbound.values.flatMap { $0 }
        }
    }

    /// One place for refusals: a warning with `reason=` (grep-able, docs/transport.md §Errors)
    /// and an event for the layer above and tests.
    func reportRejection(_ r: ConnectionRejection) {
        var meta: Logger.Metadata = [
            "reason": "\(r.reason.rawValue)", "direction": "\(r.direction.rawValue)", "remote": "\(r.remote)",
        ]
        if let p = r.peer { meta["peer"] = "\(p)" }
        logger.warning("connection refused: \(r.detail)", metadata: meta)
        events.yield(.connectionRejected(r))
    }

    /// Set by `PeerTransport.deliverDirectly`: inbound messages go here instead of `incoming`.
    /// A class around the closure: a closure kept directly in the generic box gained a
    /// reabstraction thunk on every `withLockedValue` (its inout write-back), so each message
    /// went through one more layer than the last (measured: 75% of the event loop's CPU).
    let receiver = NIOLockedValueBox<MessageReceiver?>(nil)

    func deliver(_ m: Message) {
        if let receiver = receiver.withLockedValue({ $0 }) {
            receiver.receive(m)
            return
        }
        if case .dropped = incoming.yield(m) {
            logger.debug("inbound message dropped: consumer is behind", metadata: ["from": "\(m.from)"])
        }
    }
}

/// Where `deliver` hands inbound messages when the layer above asked for direct delivery.
final class MessageReceiver: Sendable {
    let receive: @Sendable (Message) -> Void
    init(_ receive: @escaping @Sendable (Message) -> Void) { self.receive = receive }
}
