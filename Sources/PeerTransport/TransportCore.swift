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
    private let membersBox: NIOLockedValueBox<Set<NodeID>>
    /// Established inbound connections by peer, so removing a member (or shutting down) closes
    /// the connections it already has: membership is the revocation (docs/tls.md).
    private let inboundBox = NIOLockedValueBox<[NodeID: [ObjectIdentifier: any Channel]]>([:])

    init(config: TransportConfiguration, tls: TLSMaterial?,
         events: AsyncStream<TransportEvent>.Continuation, incoming: AsyncStream<Message>.Continuation) {
        self.config = config
        self.tls = tls
        self.events = events
        self.incoming = incoming
        self.membersBox = NIOLockedValueBox([])
    }

    var logger: Logger { config.logger }

    /// Peers allowed to dial us: every peer with an address, never ourselves.
    var members: Set<NodeID> { membersBox.withLockedValue { $0 } }
    func setMember(_ id: NodeID, present: Bool) {
        membersBox.withLockedValue { if present { $0.insert(id) } else { $0.remove(id) } }
    }

    func inboundEstablished(_ peer: NodeID, channel: any Channel) {
        inboundBox.withLockedValue { $0[peer, default: [:]][ObjectIdentifier(channel)] = channel }
    }

    func inboundClosed(_ peer: NodeID, channel: any Channel) {
        inboundBox.withLockedValue { _ = $0[peer]?.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Removes and returns the inbound connections of `peer` (all peers when nil).
    func takeInbound(_ peer: NodeID?) -> [any Channel] {
        inboundBox.withLockedValue { box in
            if let peer { return Array((box.removeValue(forKey: peer) ?? [:]).values) }
            defer { box.removeAll() }
            return box.values.flatMap { $0.values }
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
