import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PeerWire
import Raft

/// Carries Raft messages between peers over mutual TLS (ARCHITECTURE.md §8, docs/transport.md).
///
/// Each node dials every peer it sends to and accepts the peers that send to it, so a pair of
/// peers uses two connections, one per direction; neither needs a tie-break. Outbound messages go
/// through `send` (never blocks); inbound ones arrive on `messages`; connectivity and refusals on
/// `events`.
public final class PeerTransport: Sendable {
    /// Raft messages from authenticated peers, addressed to this node.
    public let messages: AsyncStream<Message>
    /// Connection events for the layer above: report `.peerUnreachable` to Raft.
    public let events: AsyncStream<TransportEvent>

    private let core: TransportCore
    private let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let links = NIOLockedValueBox<[NodeID: OutboundLink]>([:])
    private let server = NIOLockedValueBox<(any Channel)?>(nil)

    /// Loads the TLS material (failing on an unusable file) but opens no socket yet.
    public init(configuration: TransportConfiguration, group: (any EventLoopGroup)? = nil) throws {
        let tls: TLSMaterial?
        switch configuration.security {
        case .mutualTLS(let files):
            tls = try TLSMaterial(files: files, clusterID: configuration.clusterID, nodeID: configuration.nodeID)
        case .insecurePlaintext:
            configuration.logger.warning("peer transport running WITHOUT TLS: benchmark and test use only")
            tls = nil
        }
        let (messages, messagesContinuation) = AsyncStream.makeStream(
            of: Message.self, bufferingPolicy: .bufferingOldest(configuration.incomingMessagesMax))
        let eventsBufferMax = 4096
        let (events, eventsContinuation) = AsyncStream.makeStream(
            of: TransportEvent.self, bufferingPolicy: .bufferingNewest(eventsBufferMax))
        self.messages = messages
        self.events = events
        self.core = TransportCore(config: configuration, tls: tls, events: eventsContinuation, incoming: messagesContinuation)
        if let group {
            self.group = group
            self.ownsGroup = false
        } else {
            self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            self.ownsGroup = true
        }
    }

    /// From now on inbound messages go to `receiver` instead of `messages`, called on the
    /// connection's event loop as each message is decoded: no task and no thread hop per
    /// message. `receiver` must not block (a peer node posts to its bounded mailbox, which drops
    /// what does not fit, as `messages` drops beyond `incomingMessagesMax`). Call before `start`.
    public func deliverDirectly(to receiver: @escaping @Sendable (Message) -> Void) {
        let boxed = MessageReceiver(receiver)
        core.receiver.withLockedValue { $0 = boxed }
    }

    /// Whether inbound messages go to a `deliverDirectly` receiver (tests).
    var hasDirectReceiver: Bool { core.receiver.withLockedValue { $0 != nil } }

    /// Starts accepting peers on `configuration.listen`.
    public func start() async throws {
        let core = self.core
        let config = core.config
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Cap connections still in their handshake: each holds an fd (and TLS state)
                    // until the hello timeout, so an unbounded number is an fd-exhaustion attack.
                    let address = channel.remoteAddress?.ipAddress ?? "unknown"
                    let admission = core.beginHandshake(from: address)
                    guard admission.admitted else {
                        if admission.report {
                            core.reportRejection(ConnectionRejection(
                                reason: .tooManyHandshakes,
                                detail: admission.detail,
                                direction: .inbound, remote: channel.remoteAddress.map { "\($0)" } ?? "?", peer: nil))
                        }
                        channel.close(promise: nil)
                        return
                    }
                    do {
                        try core.boundSilence(of: channel)
                        let sync = channel.pipeline.syncOperations
                        var box: VerdictBox?
                        if let tls = core.tls {
                            let verdict = VerdictBox()
                            box = verdict
                            try sync.addHandler(NIOSSLServerHandler(
                                context: tls.serverContext,
                                customVerificationCallback: tls.verificationCallback(
                                    expecting: { .anyOf(core.members) }, usage: .clientAuth, box: verdict)))
                        }
                        try sync.addHandler(ByteToMessageHandler(FrameDecoder(frameBytesMax: config.frameBytesMax)))
                        try sync.addHandler(InboundConnectionHandler(core: core, verdict: box, handshakeSlotOf: address))
                    } catch {
                        // The handler that would have returned the slot was never added.
                        core.endHandshake(from: address)
                        throw error
                    }
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: config.listen.host, port: config.listen.port).get()
        } catch {
            throw TransportSetupError.bindFailed(config.listen, reason: "\(error)")
        }
        server.withLockedValue { $0 = channel }
        // Held-back refusal lines, reported even when a flood ends without a further refusal.
        let flusher = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in core.flushRefusals() }
        channel.closeFuture.whenComplete { _ in flusher.cancel() }
        core.logger.info("peer transport listening", metadata: [
            "address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "node": "\(config.nodeID)",
            "tls": "\(core.tls != nil)",
        ])
    }

    /// Reads and checks the TLS files again (as at start: this node's certificate, issued by a
    /// CA of the bundle, for both usages) without using them yet. Throws what start would.
    public func loadTLS() throws -> LoadedTLS {
        guard case .mutualTLS(let files) = core.config.security else { throw TransportSetupError.plaintext }
        return LoadedTLS(material: try TLSMaterial(files: files, clusterID: core.config.clusterID, nodeID: core.config.nodeID))
    }

    /// Every connection from now on, dialled or accepted, uses `loaded`; the open ones keep the
    /// keys they agreed on and stay open (no message is lost to a certificate rotation).
    public func installTLS(_ loaded: LoadedTLS) {
        core.replaceTLS(loaded.material)
        core.logger.notice("peer transport TLS reloaded", metadata: [
            "certificate": "\(loaded.certificate.serial)", "trusted": "\(loaded.trusted.map(\.subject))",
        ])
    }

    /// The certificate and the CAs new connections use.
    public var currentTLS: LoadedTLS? { core.tls.map(LoadedTLS.init(material:)) }

    /// Connections that completed TLS and hello since start, inbound and outbound.
    public var connectionsEstablished: UInt64 { core.established.withLockedValue { $0 } }

    /// The port actually bound (useful with port 0).
    public var listeningPort: Int? { server.withLockedValue { $0?.localAddress?.port } }

    /// Adds or updates a peer: it may now dial us, and we dial it (at once).
    public func setPeer(_ id: NodeID, address: PeerAddress) {
        precondition(id != noNode && id != core.config.nodeID, "peer id \(id) is reserved or ourselves")
        core.setMember(id, present: true)
        let link = links.withLockedValue { links -> OutboundLink in
            if let existing = links[id] {
                existing.updateAddress(address)
                return existing
            }
            let link = OutboundLink(peer: id, address: address, eventLoop: group.next(), core: core)
            links[id] = link
            return link
        }
        link.connectEagerly()
    }

    /// Forgets a peer: its connection closes and it may no longer dial us.
    public func removePeer(_ id: NodeID) {
        let inbound = core.removeMember(id)
        links.withLockedValue { $0.removeValue(forKey: id) }?.stop()
        for channel in inbound { channel.close(promise: nil) }
    }

    /// Queues `message` for `message.to`. Never blocks; see `SendQueue` for what is dropped.
    @discardableResult
    public func send(_ message: Message) -> SendResult {
        guard let link = links.withLockedValue({ $0[message.to] }) else {
            core.events.yield(.messagesDropped(message.to, count: 1, reason: .unknownPeer))
            return .dropped(.unknownPeer)
        }
        return link.send(message)
    }

    /// Waits until `peer`'s queue has room for more snapshot chunks (see `OutboundLink`).
    public func waitForSendCapacity(to peer: NodeID) async {
        guard let link = links.withLockedValue({ $0[peer] }) else { return }
        await link.waitForCapacity()
    }

    /// Messages dropped for `peer` so far (for metrics and tests).
    public func droppedMessages(to peer: NodeID) -> Int {
        links.withLockedValue { $0[peer] }?.droppedMessages ?? 0
    }

    /// Closes every connection and the listener; ends both streams.
    public func shutdown() async {
        let all = links.withLockedValue { l -> [OutboundLink] in
            defer { l.removeAll() }
            return Array(l.values)
        }
        all.forEach { $0.stop() }
        if let channel = server.withLockedValue({ s -> (any Channel)? in defer { s = nil }; return s }) {
            try? await channel.close()
        }
        for channel in core.takeInbound(nil) { try? await channel.close() }
        core.events.finish()
        core.incoming.finish()
        // Nothing is delivered after shutdown, and the receiver (which holds the node, which
        // holds this transport to send) is released.
        core.receiver.withLockedValue { $0 = nil }
        if ownsGroup {
            try? await group.shutdownGracefully()
        }
    }
}
