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
        var inbound: [NodeID: [ObjectIdentifier: any Channel]] = [:]
    }

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
            return Array((p.inbound.removeValue(forKey: id) ?? [:]).values)
        }
    }

    /// Registers an inbound connection whose hello succeeded. False when `peer` is no longer a
    /// member: it was removed after its certificate was checked, and must be refused.
    func inboundEstablished(_ peer: NodeID, channel: any Channel) -> Bool {
        peersBox.withLockedValue { p in
            guard p.members.contains(peer) else { return false }
            p.inbound[peer, default: [:]][ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func inboundClosed(_ peer: NodeID, channel: any Channel) {
        peersBox.withLockedValue { _ = $0.inbound[peer]?.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Removes and returns the inbound connections of `peer` (all peers when nil).
    func takeInbound(_ peer: NodeID?) -> [any Channel] {
        peersBox.withLockedValue { p in
            if let peer { return Array((p.inbound.removeValue(forKey: peer) ?? [:]).values) }
            defer { p.inbound.removeAll() }
            return p.inbound.values.flatMap { $0.values }
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

    func deliver(_ m: Message) {
        if case .dropped = incoming.yield(m) {
            logger.debug("inbound message dropped: consumer is behind", metadata: ["from": "\(m.from)"])
        }
    }
}
