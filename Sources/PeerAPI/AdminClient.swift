import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Client identity and trust for the admin API: the cluster CA, and a certificate it issued
/// (an operator's client certificate, or a peer's own when it forwards a request).
public struct APITLSFiles: Sendable, Hashable {
    public var caCertificatePath: String
    public var certificatePath: String
    public var privateKeyPath: String

    public init(caCertificatePath: String, certificatePath: String, privateKeyPath: String) {
        self.caCertificatePath = caCertificatePath
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
    }
}

/// What went wrong talking to an admin API. `connect` and `timeout` mean the request may not
/// have arrived; the caller decides (a CLI write retries with the same request id).
public enum AdminClientError: Error, Sendable, CustomStringConvertible {
    case tls(String)
    case connect(address: String, reason: String)
    case timeout(address: String, millis: Int)
    case protocolError(address: String, reason: String)
    case responseTooLarge(address: String, limit: Int)

    public var description: String {
        switch self {
        case .tls(let r): return "TLS setup failed: \(r)"
        case .connect(let a, let r): return "cannot reach \(a): \(r)"
        case .timeout(let a, let ms): return "\(a) did not answer within \(ms) ms"
        case .protocolError(let a, let r): return "bad HTTP answer from \(a): \(r)"
        case .responseTooLarge(let a, let limit): return "answer from \(a) is larger than \(limit) bytes"
        }
    }
}

public struct HTTPAnswer: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
}

/// A small HTTPS/1.1 client over SwiftNIO with mutual TLS 1.3: one request per connection,
/// bounded answer size, a deadline on the whole exchange.
public final class AdminClient: Sendable {
    let sslContext: NIOSSLContext
    let group: any EventLoopGroup
    public let responseBytesMax: Int

    public init(tls: APITLSFiles, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, responseBytesMax: Int = 16 << 20) throws(AdminClientError) {
        do {
            var config = TLSConfiguration.makeClientConfiguration()
            config.minimumTLSVersion = .tlsv13
            config.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(tls.caCertificatePath))
            config.certificateChain = try NIOSSLCertificate.fromPEMFile(tls.certificatePath).map { .certificate($0) }
            config.privateKey = .privateKey(try NIOSSLPrivateKey(file: tls.privateKeyPath, format: .pem))
            // The cluster CA is the only trust root and it signs only this cluster's members, so
            // the chain proves membership; names are not checked (peers are addressed by IP).
            config.certificateVerification = .noHostnameVerification
            sslContext = try NIOSSLContext(configuration: config)
        } catch {
            throw .tls("\(error)")
        }
        self.group = group
        self.responseBytesMax = responseBytesMax
    }

    /// Sends one request to `host:port` and returns the answer.
    public func request(
        host: String, port: Int, method: HTTPMethod, path: String,
        headers: [(String, String)] = [], body: [UInt8]? = nil, timeoutMillis: Int = 5_000
    ) async throws(AdminClientError) -> HTTPAnswer {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let promise = group.next().makePromise(of: HTTPAnswer.self)
        let sslContext = self.sslContext
        let limit = responseBytesMax
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(Int64(min(timeoutMillis, 3_000))))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try NIOSSLClientHandler(context: sslContext, serverHostname: nil)
                    try channel.pipeline.syncOperations.addHandler(tls)
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(AnswerCollector(promise: promise, limit: limit, address: address))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            promise.fail(error)
            throw .connect(address: address, reason: "\(error)")
        }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: address)
        head.headers.add(name: "Connection", value: "close")
        head.headers.add(name: "Accept", value: "application/json")
        for (n, v) in headers { head.headers.add(name: n, value: v) }
        if let body {
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: "\(body.count)")
        } else if method == .POST || method == .PUT {
            head.headers.add(name: "Content-Length", value: "0")
        }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let timeout = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(timeoutMillis))) {
            promise.fail(AdminClientError.timeout(address: address, millis: timeoutMillis))
            channel.close(promise: nil)
        }
        defer { timeout.cancel() }
        do {
            let answer = try await promise.futureResult.get()
            channel.close(promise: nil)
            return answer
        } catch let e as AdminClientError {
            channel.close(promise: nil)
            throw e
        } catch {
            channel.close(promise: nil)
            throw .protocolError(address: address, reason: "\(error)")
        }
    }
}

/// Collects one HTTP answer, refusing more than `limit` body bytes.
final class AnswerCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<HTTPAnswer>
    let limit: Int
    let address: String
    var head: HTTPResponseHead?
    var body: [UInt8] = []
    var done = false

    init(promise: EventLoopPromise<HTTPAnswer>, limit: Int, address: String) {
        self.promise = promise
        self.limit = limit
        self.address = address
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
        case .body(var buffer):
            if body.count + buffer.readableBytes > limit {
                finish(context, .failure(AdminClientError.responseTooLarge(address: address, limit: limit)))
                return
            }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else {
                finish(context, .failure(AdminClientError.protocolError(address: address, reason: "end without a head")))
                return
            }
            finish(context, .success(HTTPAnswer(status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }, body: body)))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(context, .failure(AdminClientError.protocolError(address: address, reason: "connection closed before the answer ended")))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(context, .failure(AdminClientError.protocolError(address: address, reason: "\(error)")))
    }

    private func finish(_ context: ChannelHandlerContext, _ result: Result<HTTPAnswer, any Error>) {
        guard !done else { return }
        done = true
        promise.completeWith(result)
        context.close(promise: nil)
    }
}
