#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PeerWire
import Raft

/// The thread-safe state every connection handler and link shares: configuration, TLS material,
/// membership, and the two output streams.
final class TransportCore: Sendable {
    let config: TransportConfiguration
    /// The TLS material every new connection takes (nil: plaintext, tests only). Replaced whole
    /// by `PeerTransport.installTLS`; a connection keeps the material it started with.
    private let tlsBox: NIOLockedValueBox<TLSMaterial>?
    var tls: TLSMaterial? { tlsBox?.withLockedValue { $0 } }
    func replaceTLS(_ material: TLSMaterial) { tlsBox?.withLockedValue { $0 = material } }
    /// Connections that completed TLS and hello, inbound and outbound, since start.
    let established = NIOLockedValueBox<UInt64>(0)
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

    /// Accepted connections still in their handshake, in all and by client address, and
    /// whether a refusal run was reported.
    struct Handshaking {
        var count = 0
        var byAddress: [String: Int] = [:]
        /// Refusals since the last reported one, and when that was.
        var refusedSinceReport = 0
        var lastReported: ContinuousClock.Instant?
    }
    /// A flood is reported at most once per this long, with the refusals in between counted.
    static let refusalReportIntervalSeconds = 10
    private let handshakingBox = NIOLockedValueBox(Handshaking())

    init(config: TransportConfiguration, tls: TLSMaterial?,
         events: AsyncStream<TransportEvent>.Continuation, incoming: AsyncStream<Message>.Continuation) {
        self.config = config
        self.tlsBox = tls.map { NIOLockedValueBox($0) }
        self.events = events
        self.incoming = incoming
    }

    var logger: Logger { config.logger }

    /// Bounds how long a connection outlives a peer that went silent (see
    /// `TransportConfiguration.unacknowledgedTimeoutMs`), on dialled and accepted sockets alike.
    func boundSilence(of channel: any Channel) throws {
        let ms = config.unacknowledgedTimeoutMs
        guard ms > 0, let options = channel.syncOptions else { return }
        #if os(Linux)
        let probe = Int(max(1, ms / 3_000))
        try options.setOption(ChannelOptions.tcpOption(.init(rawValue: CInt(TCP_USER_TIMEOUT))), value: Int(ms))
        try options.setOption(ChannelOptions.tcpOption(.init(rawValue: CInt(TCP_KEEPIDLE))), value: probe)
        try options.setOption(ChannelOptions.tcpOption(.init(rawValue: CInt(TCP_KEEPINTVL))), value: probe)
        try options.setOption(ChannelOptions.tcpOption(.init(rawValue: CInt(TCP_KEEPCNT))), value: 3)
        #endif
    }

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

    /// Takes a handshake slot for a newly accepted connection from `address`. Not admitted when
    /// `handshakingConnectionsMax` are taken, or `handshakingPerAddressMax` from that address (so
    /// a flood from a few addresses cannot keep a member's redial out); `report` is true for at
    /// most one refusal per `refusalReportIntervalSeconds` (a flood logs a line now and then,
    /// counting the refusals in between, not one per socket).
    func beginHandshake(from address: String) -> (admitted: Bool, report: Bool, detail: String) {
        let now = ContinuousClock.now
        return handshakingBox.withLockedValue { h in
            let fromAddress = h.byAddress[address, default: 0]
            if h.count < config.handshakingConnectionsMax && fromAddress < config.handshakingPerAddressMax {
                h.count += 1
                h.byAddress[address] = fromAddress + 1
                return (true, false, "")
            }
            h.refusedSinceReport += 1
            if let last = h.lastReported, now - last < .seconds(Self.refusalReportIntervalSeconds) { return (false, false, "") }
            h.lastReported = now
            let also = h.refusedSinceReport > 1 ? " (\(h.refusedSinceReport - 1) more refused since the last such line)" : ""
            h.refusedSinceReport = 0
            let detail = h.count >= config.handshakingConnectionsMax
                ? "\(config.handshakingConnectionsMax) connections already in their handshake"
                : "\(config.handshakingPerAddressMax) connections from \(address) already in their handshake"
            return (false, true, detail + also)
        }
    }

    /// Logs the refusals held back since the last line once the interval has passed, so the end
    /// of a flood is reported without a further refusal (the transport calls it every second).
    func flushRefusals() {
        let now = ContinuousClock.now
        let held: Int? = handshakingBox.withLockedValue { h in
            guard h.refusedSinceReport > 0, let last = h.lastReported, now - last >= .seconds(Self.refusalReportIntervalSeconds) else { return nil }
            h.lastReported = now
            defer { h.refusedSinceReport = 0 }
            return h.refusedSinceReport
        }
        if let held {
            logger.warning("connection refused: \(held) more connections refused in their handshake since the last such line", metadata: [
                "reason": "\(RejectReason.tooManyHandshakes.rawValue)", "direction": "inbound",
            ])
        }
    }

    /// Returns a slot taken by `beginHandshake` (the hello succeeded, or the connection ended).
    func endHandshake(from address: String) {
        handshakingBox.withLockedValue { h in
            h.count -= 1
            let left = h.byAddress[address, default: 1] - 1
            h.byAddress[address] = left > 0 ? left : nil
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
