import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOTLS

/// A Hummingbird child channel with the listener's limits: a connection over a cap is closed
/// as soon as it is accepted (its descriptor is freed at once; the server never runs out of
/// them), and every admitted one gets `ConnectionDeadlines`.
struct GuardedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let registry: ConnectionRegistry
    let tls: Bool

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let refusal = registry.admit(address)
        // The base's pipeline is set up either way: a failed setup would reach the server's
        // accept loop as an error. A refused connection is closed right after.
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            if refusal != nil {
                channel.close(promise: nil)
                return value
            }
            let registry = self.registry
            channel.closeFuture.whenComplete { _ in registry.release(address) }
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(
                ConnectionDeadlines(registry: registry, awaitsHandshake: tls), position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Closes a connection that takes too long in any phase: the TLS handshake, the wait for a
/// request's head (idle keep-alive, or a head sent slowly), a request's body. Honours
/// HTTP/1.0 and `Connection: close`: the connection closes once that request's answer is
/// written. Sits right after the HTTP/1 decoder, on the connection's event loop.
final class ConnectionDeadlines: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    enum Phase { case notStarted, handshake, awaitingHead, readingBody, responding }

    let registry: ConnectionRegistry
    let awaitsHandshake: Bool
    private var phase = Phase.notStarted
    private var closeAfterResponse = false
    private var timer: Scheduled<Void>?

    init(registry: ConnectionRegistry, awaitsHandshake: Bool) {
        self.registry = registry
        self.awaitsHandshake = awaitsHandshake
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if phase == .handshake, case TLSUserEvent.handshakeCompleted? = event as? TLSUserEvent {
            enter(.awaitingHead, context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            closeAfterResponse = closeAfterResponse || !head.isKeepAlive
            enter(.readingBody, context)
        case .body:
            break
        case .end:
            phase = .responding
            cancelTimer()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where closeAfterResponse:
            head.headers.replaceOrAdd(name: "connection", value: "close")
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end where closeAfterResponse:
            // Close once the answer's last bytes are in the socket (closing earlier would drop them).
            let written = promise ?? context.eventLoop.makePromise()
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
            cancelTimer()
            context.write(data, promise: written)
        case .end:
            context.write(data, promise: promise)
            enter(.awaitingHead, context)
        default:
            context.write(data, promise: promise)
        }
    }

    private func start(_ context: ChannelHandlerContext) {
        guard phase == .notStarted else { return }
        enter(awaitsHandshake ? .handshake : .awaitingHead, context)
    }

    /// Enters `next` and arms its deadline.
    private func enter(_ next: Phase, _ context: ChannelHandlerContext) {
        phase = next
        cancelTimer()
        let limits = registry.limits
        let (ms, what): (Int, String)
        switch next {
        case .handshake: (ms, what) = (limits.handshakeTimeoutMs, "TLS handshake")
        case .awaitingHead: (ms, what) = (limits.idleTimeoutMs, "complete request head")
        case .readingBody: (ms, what) = (limits.bodyTimeoutMs, "complete request body")
        case .notStarted, .responding: return
        }
        let channel = context.channel
        let registry = self.registry
        timer = context.eventLoop.scheduleTask(in: .milliseconds(Int64(ms))) {
            registry.timedOut(what, after: ms)
            channel.close(promise: nil)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }
}
