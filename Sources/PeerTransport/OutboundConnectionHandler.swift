import NIOCore
import NIOSSL
import NIOTLS
import PeerWire
import Raft

/// The dialling side of one peer connection: waits for TLS, says hello, then hands the channel
/// to its `OutboundLink`, which writes messages. Thin: decisions live in `OutboundHandshake`.
final class OutboundConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var machine: OutboundHandshake
    private let core: TransportCore
    private let link: OutboundLink
    private let generation: Int
    private let verdict: VerdictBox?
    private var remote = "?"
    private var timeout: Scheduled<Void>?
    /// Closes the connection `rejectCloseGraceMs` after a `Reject` was written.
    private var hardClose: Scheduled<Void>?
    private var lostReason = "connection closed"
    /// Set when we close the connection ourselves with a reason, so the errors that close causes
    /// (an unclean TLS shutdown) do not overwrite it.
    private var closingDeliberately = false
    /// Closes the connection if it stays unwritable longer than `writeStallMsMax`.
    private var writeStall: Scheduled<Void>?

    init(core: TransportCore, link: OutboundLink, generation: Int, verdict: VerdictBox?) {
        self.core = core
        self.link = link
        self.generation = generation
        self.verdict = verdict
        self.machine = OutboundHandshake(local: core.config.localHello, expectedPeer: link.peer)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        remote = context.channel.remoteAddress.map { "\($0)" } ?? "?"
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let ctx = NIOLoopBound(context, eventLoop: context.eventLoop)
        timeout = context.eventLoop.scheduleTask(in: .milliseconds(core.config.helloTimeoutMs)) {
            loopBound.value.perform(loopBound.value.machine.timedOut(), context: ctx.value)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        remote = context.channel.remoteAddress.map { "\($0)" } ?? remote
        if verdict == nil { perform(machine.transportReady(), context: context) }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        hardClose?.cancel()
        writeStall?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, case .accepted? = verdict?.verdict {
            perform(machine.transportReady(), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame: WireFrame
        do {
            frame = try WireCodec.decode(Array(unwrapInboundIn(data).readableBytesView))
        } catch {
            perform(machine.failed(.malformedFrame, error.description, tellRemote: true), context: context)
            return
        }
        perform(machine.frameReceived(frame), context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            writeStall?.cancel()
            writeStall = nil
            link.flushOnLoop()
        } else if writeStall == nil {
            // A peer that stops reading (hung process, stuck consumer) would otherwise keep the
            // link "connected" forever while every send fills the queue: bound the stall, then
            // treat the peer as unreachable so Raft hears of it and the link redials.
            let stallMs = core.config.writeStallMsMax
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let channel = context.channel
            writeStall = context.eventLoop.scheduleTask(in: .milliseconds(stallMs)) {
                loopBound.value.lostReason = "write stalled: unwritable for more than \(stallMs) ms"
                loopBound.value.closingDeliberately = true
                hardCloseNow(channel)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let action: HandshakeAction
        switch error {
        case let e as FrameError:
            action = machine.failed(.frameTooLarge, e.description, tellRemote: true)
        case NIOSSLError.handshakeFailed, is BoringSSLError:
            let (reason, detail) = classifyHandshakeFailure(error, verdict: verdict?.verdict)
            action = machine.failed(reason, detail, tellRemote: false)
        case is NIOSSLError where machine.state == .awaitingTLS || machine.state == .awaitingAnswer:
            action = machine.failed(.tlsHandshakeFailed, "\(error)", tellRemote: false)
        default:
            // The connection died (reset, unclean shutdown): not a refusal. The link logs it
            // as "peer link down" and reports the peer unreachable.
            // Keep a reason already set (a write stall): the error is that close's echo.
            if !closingDeliberately { lostReason = "\(error)" }
            action = .none
            context.close(promise: nil)
        }
        perform(action, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        writeStall?.cancel()
        link.failed(generation: generation, reason: lostReason)
        context.fireChannelInactive()
    }

    private func perform(_ action: HandshakeAction, context: ChannelHandlerContext) {
        switch action {
        case .none, .deliver, .answerAndEstablish:
            break
        case .send(let frame):
            var buf = context.channel.allocator.buffer(capacity: 64)
            Framing.writeFrame(WireCodec.encode(frame), into: &buf)
            context.writeAndFlush(wrapOutboundOut(buf), promise: nil)
        case .establish(let peer, let version):
            timeout?.cancel()
            core.logger.info("connected to peer", metadata: ["peer": "\(peer)", "version": "\(version)", "remote": "\(remote)"])
            link.connectionEstablished(generation: generation, channel: context.channel, version: version)
        case .reject(let reason, let detail, let tellRemote):
            timeout?.cancel()
            lostReason = "\(reason.rawValue): \(detail)"
            core.reportRejection(ConnectionRejection(reason: reason, detail: detail, direction: .outbound, remote: remote, peer: link.peer))
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
}
