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
        let address = ConnectionRegistry.key(channel.remoteAddress)
        let refusal = registry.admit(address)
        if refusal == nil {
            // Returned however the connection ends, a failed setup included.
            let registry = self.registry
            channel.closeFuture.whenComplete { _ in registry.release(address) }
        }
        // The base's pipeline is set up either way: a failed setup would reach the server's
        // accept loop as an error. A refused connection is closed right after.
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            if refusal != nil {
                channel.close(promise: nil)
                return value
            }
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
/// request's head (idle keep-alive, or a head sent slowly), a request's body (its timer runs
/// until the body is read, even if the answer went out first). Honours HTTP/1.0 and
/// `Connection: close` per request, pipelined ones included: the connection closes once that
/// request's answer is written. Sits right after the HTTP/1 decoder, on the connection's event loop.
final class ConnectionDeadlines: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    enum Deadline { case handshake, head, body }

    let registry: ConnectionRegistry
    let awaitsHandshake: Bool
    private var started = false
    private var handshaken: Bool
    /// Between a request's head and the end of its body.
    private var readingRequest = false
    /// One entry per request whose head arrived and whose answer has not ended: keep-alive or not.
    private var unanswered: [Bool] = []
    private var closing = false
    private var timer: Scheduled<Void>?

    init(registry: ConnectionRegistry, awaitsHandshake: Bool) {
        self.registry = registry
        self.awaitsHandshake = awaitsHandshake
        handshaken = !awaitsHandshake
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
        if !handshaken, case TLSUserEvent.handshakeCompleted? = event as? TLSUserEvent {
            handshaken = true
            arm(.head, context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            unanswered.append(head.isKeepAlive)
            readingRequest = true
            arm(.body, context)
        case .body:
            break
        case .end:
            readingRequest = false
            // Answered already (an early refusal): the next head's wait starts now; otherwise
            // the server is working on it, which its own timeouts bound.
            if unanswered.isEmpty { arm(.head, context) } else { cancelTimer() }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where unanswered.first == false:
            head.headers.replaceOrAdd(name: "connection", value: "close")
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end:
            let keepAlive = unanswered.isEmpty ? true : unanswered.removeFirst()
            if !keepAlive {
                // Close once the answer's last bytes are in the socket (closing earlier would drop them).
                closing = true
                cancelTimer()
                let written = promise ?? context.eventLoop.makePromise()
                let channel = context.channel
                written.futureResult.whenComplete { _ in channel.close(promise: nil) }
                context.write(data, promise: written)
                return
            }
            context.write(data, promise: promise)
            // A body still being read keeps its timer; with nothing left to answer, the wait
            // for the next head starts.
            if !readingRequest && unanswered.isEmpty { arm(.head, context) }
        default:
            context.write(data, promise: promise)
        }
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        arm(handshaken ? .head : .handshake, context)
    }

    /// Replaces the running deadline with `deadline`'s.
    private func arm(_ deadline: Deadline, _ context: ChannelHandlerContext) {
        cancelTimer()
        guard !closing else { return }
        let limits = registry.limits
        let (ms, what): (Int, String)
        switch deadline {
        case .handshake: (ms, what) = (limits.handshakeTimeoutMs, "TLS handshake")
        case .head: (ms, what) = (limits.idleTimeoutMs, "complete request head")
        case .body: (ms, what) = (limits.bodyTimeoutMs, "complete request body")
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
