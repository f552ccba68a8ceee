import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Why a loopback request got no usable answer.
public enum LoopbackHTTPError: Error, Sendable, Hashable, CustomStringConvertible {
    case connect(address: String, reason: String)
    case timedOut(address: String, after: Duration)
    case responseTooLarge(address: String, bytesMax: Int)
    case protocolError(address: String, reason: String)

    public var description: String {
        switch self {
        case .connect(let address, let reason): "cannot reach \(address): \(reason)"
        case .timedOut(let address, let after): "\(address) gave no complete response within \(after)"
        case .responseTooLarge(let address, let max): "the response from \(address) exceeds \(max) bytes"
        case .protocolError(let address, let reason): "bad HTTP response from \(address): \(reason)"
        }
    }
}

/// Where a request goes: `host:port` on this machine, or a Unix socket's path.
public enum LoopbackTarget: Sendable, Hashable, CustomStringConvertible {
    case tcp(String)
    case unixSocket(String)

    public var description: String {
        switch self {
        case .tcp(let address): address
        case .unixSocket(let path): "unix://\(path)"
        }
    }
}

/// A response: status, headers (names as sent) and the whole body.
public struct LoopbackHTTPReply: Sendable, Hashable {
    public let status: Int
    public let headers: [String: [String]]
    public let body: [UInt8]

    public init(status: Int, headers: [String: [String]], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.key.lowercased() == lowered }?.value.first
    }
}

/// The one plain-HTTP client for this machine's own endpoints: nginx's control server (the
/// router) and the components' health and tenant probes (the agent). AsyncHTTPClient on the
/// shared event loops. Every request has a deadline on the whole exchange and a bound on the
/// body; a refused connection fails at once (no connection retries: a probe that cannot
/// connect has its answer); no redirects; `Connection: close`, so no pooled connection to a
/// restarted component ever turns a healthy probe into a failure.
public final class LoopbackHTTPClient: Sendable {
    /// One per process; it lives as long as the process.
    public static let shared = LoopbackHTTPClient()

    private let http: HTTPClient

    private init() {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(2)))
        configuration.httpVersion = .http1Only
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    /// Starts `method path` to `address` (`host:port`); the future completes within `timeout`.
    /// For a thread that is not an event loop's and may block (`.wait()`), or to start many
    /// requests at once.
    public func start(
        _ address: String, method: HTTPMethod = .GET, path: String, headers: [(String, String)] = [],
        body: [UInt8] = [], timeout: Duration, responseBytesMax: Int
    ) -> EventLoopFuture<LoopbackHTTPReply> {
        start(.tcp(address), method: method, path: path, headers: headers, body: body, timeout: timeout, responseBytesMax: responseBytesMax)
    }

    /// The same to a TCP address or a Unix socket (the Docker Engine's API).
    public func start(
        _ target: LoopbackTarget, method: HTTPMethod = .GET, path: String, headers: [(String, String)] = [],
        body: [UInt8] = [], timeout: Duration, responseBytesMax: Int
    ) -> EventLoopFuture<LoopbackHTTPReply> {
        let loop = http.eventLoopGroup.next()
        let address = target.description
        let request: HTTPClient.Request
        do {
            var head = HTTPHeaders(headers)
            head.replaceOrAdd(name: "Connection", value: "close")
            let bodyOrNil: HTTPClient.Body? = body.isEmpty && method != .POST && method != .PUT ? nil : .bytes(body)
            switch target {
            case .tcp(let address):
                request = try HTTPClient.Request(url: "http://\(address)\(path)", method: method, headers: head, body: bodyOrNil)
            case .unixSocket(let socketPath):
                guard let url = URL(httpURLWithSocketPath: socketPath, uri: path) else {
                    return loop.makeFailedFuture(LoopbackHTTPError.connect(address: address, reason: "cannot make a URL of socket \(socketPath) and path \(path)"))
                }
                // The socket's path is no host name; servers that check Host (Go's) refuse it.
                head.replaceOrAdd(name: "Host", value: "localhost")
                request = try HTTPClient.Request(url: url, method: method, headers: head, body: bodyOrNil)
            }
        } catch {
            return loop.makeFailedFuture(LoopbackHTTPError.connect(address: address, reason: "\(error)"))
        }
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let task = http.execute(
            request: request, delegate: ResponseAccumulator(request: request, maxBodySize: responseBytesMax),
            eventLoop: .delegate(on: loop), deadline: .now() + .nanoseconds(nanoseconds))
        return task.futureResult.flatMapErrorThrowing { error in
            throw Self.describe(error, address: address, timeout: timeout, bytesMax: responseBytesMax)
        }.map { response in
            var headers: [String: [String]] = [:]
            for header in response.headers { headers[header.name, default: []].append(header.value) }
            return LoopbackHTTPReply(status: Int(response.status.code), headers: headers, body: response.body.map { Array(buffer: $0) } ?? [])
        }
    }

    /// The same, awaited.
    public func request(
        _ address: String, method: HTTPMethod = .GET, path: String, headers: [(String, String)] = [],
        body: [UInt8] = [], timeout: Duration, responseBytesMax: Int
    ) async throws(LoopbackHTTPError) -> LoopbackHTTPReply {
        try await request(.tcp(address), method: method, path: path, headers: headers, body: body, timeout: timeout, responseBytesMax: responseBytesMax)
    }

    /// The same to a TCP address or a Unix socket, awaited.
    public func request(
        _ target: LoopbackTarget, method: HTTPMethod = .GET, path: String, headers: [(String, String)] = [],
        body: [UInt8] = [], timeout: Duration, responseBytesMax: Int
    ) async throws(LoopbackHTTPError) -> LoopbackHTTPReply {
        do {
            return try await start(target, method: method, path: path, headers: headers, body: body, timeout: timeout, responseBytesMax: responseBytesMax).get()
        } catch let error as LoopbackHTTPError {
            throw error
        } catch {
            throw .protocolError(address: target.description, reason: "\(error)")
        }
    }

    private static let timeouts: [HTTPClientError] = [.deadlineExceeded, .readTimeout, .writeTimeout, .connectTimeout, .getConnectionFromPoolTimeout]

    static func describe(_ error: any Error, address: String, timeout: Duration, bytesMax: Int) -> LoopbackHTTPError {
        if error is ResponseAccumulator.ResponseTooBigError { return .responseTooLarge(address: address, bytesMax: bytesMax) }
        if let error = error as? HTTPClientError {
            if timeouts.contains(error) { return .timedOut(address: address, after: timeout) }
            if error == .remoteConnectionClosed || error == .bodyLengthMismatch || error == .invalidURL {
                return .protocolError(address: address, reason: "\(error)")
            }
        }
        if error is HTTPParserError { return .protocolError(address: address, reason: "\(error)") }
        // Connection refused or reset: nothing answered.
        return .connect(address: address, reason: "\(error)")
    }
}
