import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One keep-alive HTTPS/1.1 connection, one request at a time: what a platform's broker client
/// does, without a TLS handshake per request distorting the numbers.
struct HTTPSConnection {
    struct Answer {
        var status: Int
        var body: [UInt8]
    }

    /// Opens a connection and runs `body` with it; closes it afterwards.
    static func with<T: Sendable>(
        host: String, port: Int, tls: NIOSSLContext, group: any EventLoopGroup,
        _ body: (inout Exchange) async throws -> T
    ) async throws -> T {
        let channel = try await ClientBootstrap(group: group).connect(host: host, port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil))
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
            }
        }
        return try await channel.executeThenClose { inbound, outbound in
            var exchange = Exchange(host: "\(host):\(port)", inbound: inbound.makeAsyncIterator(), outbound: outbound)
            return try await body(&exchange)
        }
    }

    struct Exchange {
        let host: String
        var inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
        let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

        static let responseBytesMax = 1 << 20

        mutating func send(_ method: HTTPMethod, _ path: String, headers: [(String, String)], body: [UInt8]?) async throws -> Answer {
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
            head.headers.add(name: "Host", value: host)
            for (n, v) in headers { head.headers.add(name: n, value: v) }
            if let body {
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: "\(body.count)")
            }
            try await outbound.write(.head(head))
            if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try await outbound.write(.end(nil))
            var status = 0
            var bytes: [UInt8] = []
            while let part = try await inbound.next() {
                switch part {
                case .head(let h): status = Int(h.status.code)
                case .body(var b):
                    guard bytes.count + b.readableBytes <= Self.responseBytesMax else { throw BenchError("answer larger than \(Self.responseBytesMax) bytes") }
                    bytes += b.readBytes(length: b.readableBytes) ?? []
                case .end: return Answer(status: status, body: bytes)
                }
            }
            throw BenchError("\(host) closed the connection before answering \(method) \(path)")
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
