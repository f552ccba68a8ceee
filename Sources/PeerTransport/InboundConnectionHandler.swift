import NIOCore
import NIOSSL
import NIOTLS
import PeerWire
import Raft

/// The accepting side of one peer connection. Thin: it feeds events to `InboundHandshake` and
/// performs the actions it returns.
final class InboundConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var machine: InboundHandshake
    private let core: TransportCore
    private let verdict: VerdictBox?
    private var remote = "?"
    private var timeout: Scheduled<Void>?
    /// Closes the connection `rejectCloseGraceMs` after a `Reject` was written.
    private var hardClose: Scheduled<Void>?
    /// Set when an error ends the connection without a refusal to report.
    private var quietClose = false

    /// The client address whose handshake slot this holds until the hello succeeds or the
    /// connection ends; nil once returned (or when none was taken).
    private var handshakeSlotOf: String?

    /// `handshakeSlotOf`: the caller took a slot with `core.beginHandshake(from:)` for this
    /// handler to return.
    init(core: TransportCore, verdict: VerdictBox?, handshakeSlotOf: String? = nil) {
        self.core = core
        self.verdict = verdict
        self.handshakeSlotOf = handshakeSlotOf
        self.machine = InboundHandshake(local: core.config.localHello, members: core.members)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        remote = context.channel.remoteAddress.map { "\($0)" } ?? "?"
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let ctx = NIOLoopBound(context, eventLoop: context.eventLoop)
        timeout = context.eventLoop.scheduleTask(in: .milliseconds(core.config.helloTimeoutMs)) {
            loopBound.value.perform(loopBound.value.machine.timedOut(), context: ctx.value)
        }
        if verdict == nil { perform(machine.transportReady(certified: nil), context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        hardClose?.cancel()
        releaseHandshakeSlot()
    }

    private func releaseHandshakeSlot() {
        if let address = handshakeSlotOf {
            handshakeSlotOf = nil
            core.endHandshake(from: address)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls,
           case .accepted(let peer)? = verdict?.verdict {
            perform(machine.transportReady(certified: peer), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let body = unwrapInboundIn(data)
        let frame: WireFrame
        do {
            frame = try WireCodec.decode(Array(body.readableBytesView))
        } catch {
            perform(machine.failed(.malformedFrame, error.description, tellRemote: true), context: context)
            return
        }
        perform(machine.frameReceived(frame), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        perform(failure(for: error), context: context)
        if quietClose { context.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        releaseHandshakeSlot()
        if case .established(let peer, _) = machine.state { core.inboundClosed(peer, channel: context.channel) }
        if !machine.isEstablished, machine.state != .closed, machine.state != .awaitingTLS {
            core.logger.debug("inbound connection closed before hello", metadata: ["remote": "\(remote)"])
        }
        context.fireChannelInactive()
    }

    private func failure(for error: any Error) -> HandshakeAction {
        switch error {
        case let e as FrameError:
            return machine.failed(.frameTooLarge, e.description, tellRemote: true)
        case NIOSSLError.handshakeFailed, is BoringSSLError:
            let (reason, detail) = classifyHandshakeFailure(error, verdict: verdict?.verdict)
            return machine.failed(reason, detail, tellRemote: false)
        case is NIOSSLError where !machine.isEstablished && machine.state != .closed:
            return machine.failed(.tlsHandshakeFailed, "\(error)", tellRemote: false)
        default:
            // Resets, unclean TLS shutdowns of a live connection and the like: the peer went
            // away, nobody is being refused. Close quietly; the dialler's side reports it.
            core.logger.debug("inbound connection error: \(error)", metadata: ["remote": "\(remote)"])
            quietClose = true
            return .none
        }
    }

    private func perform(_ action: HandshakeAction, context: ChannelHandlerContext) {
        switch action {
        case .none, .establish:
            break
        case .send(let frame):
            write(frame, context: context)
        case .answerAndEstablish(let answer, let peer, let version):
            // Membership was checked when TLS finished; `removePeer` may have run since. The
            // registration re-checks it under the lock `removePeer` takes, before we answer.
            guard let evicted = core.inboundEstablished(peer, channel: context.channel) else {
                perform(machine.failed(.unknownPeer, "peer \(peer) was removed during the handshake", tellRemote: true), context: context)
                return
            }
            releaseHandshakeSlot()
            for old in evicted {
                core.reportRejection(ConnectionRejection(
                    reason: .tooManyConnections, detail: "peer \(peer) has more than \(core.config.inboundConnectionsPerPeerMax) connections: closing its oldest",
                    direction: .inbound, remote: old.remoteAddress.map { "\($0)" } ?? "?", peer: peer))
                old.close(promise: nil)
            }
            timeout?.cancel()
            write(.hello(answer), context: context)
            core.logger.info("inbound peer connected", metadata: ["peer": "\(peer)", "version": "\(version)", "remote": "\(remote)"])
            core.established.withLockedValue { $0 += 1 }
            core.events.yield(.inboundEstablished(peer, protocolVersion: version))
        case .deliver(let m):
            core.deliver(m)
        case .reject(let reason, let detail, let tellRemote):
            timeout?.cancel()
            var peer: NodeID?
            if case .accepted(let p)? = verdict?.verdict { peer = p }
            core.reportRejection(ConnectionRejection(reason: reason, detail: detail, direction: .inbound, remote: remote, peer: peer))
            if tellRemote {
                var buf = context.channel.allocator.buffer(capacity: 64)
                Framing.writeFrame(WireCodec.encode(.reject(reason: reason.rawValue, detail: detail)), into: &buf)
                context.writeAndFlush(wrapOutboundOut(buf)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                // The write may never complete (a peer that does not read, or TLS still buffering):
                // close regardless after a short grace, so a refused connection cannot linger.
                let channel = context.channel
                hardClose = context.eventLoop.scheduleTask(in: .milliseconds(core.config.rejectCloseGraceMs)) {
                    hardCloseNow(channel)
                }
            } else {
                context.close(promise: nil)
            }
        }
    }

    private func write(_ frame: WireFrame, context: ChannelHandlerContext) {
        var buf = context.channel.allocator.buffer(capacity: 64)
        Framing.writeFrame(WireCodec.encode(frame), into: &buf)
        context.writeAndFlush(wrapOutboundOut(buf), promise: nil)
    }
}

/// Closes `channel`'s socket now. A close from the tail would pass through `NIOSSLHandler`, which
/// waits up to its `shutdownTimeout` (5 s) for the other side's close_notify; a close issued from
/// the TLS handler's own context starts below it, at the socket. Call on the channel's event loop.
func hardCloseNow(_ channel: any Channel) {
    if let tls = try? channel.pipeline.syncOperations.context(handlerType: NIOSSLHandler.self) {
        tls.close(promise: nil)
    } else {
        channel.close(promise: nil)
    }
}
