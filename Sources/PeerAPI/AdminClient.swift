import AsyncHTTPClient
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

/// The HTTPS/1.1 client of the admin and broker APIs, with mutual TLS 1.3: the CLI's, a
/// follower's that forwards writes to the leader, and the leader's data-plane polls. It is
/// AsyncHTTPClient with a connection pool, so a member keeps its TLS connections to another
/// alive (at most `connectionsPerHostMax` each, idle ones closed after `idleSeconds`) instead of
/// a handshake per request. Bounded answer size; a deadline on the whole exchange.
public final class AdminClient: Sendable {
    let http: HTTPClient
    public let responseBytesMax: Int
    /// A peer's own client: every request takes the TLS configuration `tls` holds at that
    /// moment (a reload applies to the next connection; pooled ones with the old finish).
    let reloadable: APITLS?

    /// A peer's client, whose certificate and trust follow `tls` (reloaded in place).
    public convenience init(tls: APITLS, responseBytesMax: Int = 16 << 20, connectionsPerHostMax: Int = 64, idleSeconds: Int64 = 30) {
        self.init(
            tlsConfiguration: tls.clientConfiguration, reloadable: tls, responseBytesMax: responseBytesMax,
            connectionsPerHostMax: connectionsPerHostMax, idleSeconds: idleSeconds)
    }

    public convenience init(tls: APITLSFiles, responseBytesMax: Int = 16 << 20, connectionsPerHostMax: Int = 64, idleSeconds: Int64 = 30) throws(AdminClientError) {
        try self.init(
            caCertificatePath: tls.caCertificatePath, identity: (tls.certificatePath, tls.privateKeyPath),
            responseBytesMax: responseBytesMax, connectionsPerHostMax: connectionsPerHostMax, idleSeconds: idleSeconds)
    }

    /// `identity` nil: no client certificate (a platform's broker client, which authenticates
    /// with basic auth over server-authenticated TLS).
    public convenience init(
        caCertificatePath: String, identity: (certificatePath: String, privateKeyPath: String)?,
        responseBytesMax: Int = 16 << 20, connectionsPerHostMax: Int = 64, idleSeconds: Int64 = 30
    ) throws(AdminClientError) {
        let cas = try Self.read("CA certificate", caCertificatePath) { try NIOSSLCertificate.fromPEMFile($0) }
        var pair: ([NIOSSLCertificate], NIOSSLPrivateKey)?
        if let identity {
            pair = (
                try Self.read("certificate", identity.certificatePath) { try NIOSSLCertificate.fromPEMFile($0) },
                try Self.read("private key", identity.privateKeyPath) { try NIOSSLPrivateKey(file: $0, format: .pem) })
        }
        self.init(
            tlsConfiguration: Self.clientConfiguration(cas: cas, identity: pair), reloadable: nil,
            responseBytesMax: responseBytesMax, connectionsPerHostMax: connectionsPerHostMax, idleSeconds: idleSeconds)
    }

    /// Mutual TLS 1.3 with the cluster CAs as the only trust roots.
    static func clientConfiguration(cas: [NIOSSLCertificate], identity: ([NIOSSLCertificate], NIOSSLPrivateKey)?) -> TLSConfiguration {
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        tlsConfiguration.minimumTLSVersion = .tlsv13
        tlsConfiguration.trustRoots = .certificates(cas)
        if let (chain, key) = identity {
            tlsConfiguration.certificateChain = chain.map { .certificate($0) }
            tlsConfiguration.privateKey = .privateKey(key)
        }
        // The cluster CA is the only trust root and it signs only this cluster's members, so
        // the chain proves membership; names are not checked (peers are addressed by IP).
        tlsConfiguration.certificateVerification = .noHostnameVerification
        return tlsConfiguration
    }

    private init(
        tlsConfiguration: TLSConfiguration, reloadable: APITLS?, responseBytesMax: Int, connectionsPerHostMax: Int, idleSeconds: Int64
    ) {
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tlsConfiguration, redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(3)),
            connectionPool: .init(idleTimeout: .seconds(idleSeconds), concurrentHTTP1ConnectionsPerHostSoftLimit: connectionsPerHostMax))
        configuration.httpVersion = .http1Only
        // A member that refuses the connection is down: say so at once, so the caller tries the
        // next member, instead of retrying the connection until the request's deadline.
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        self.responseBytesMax = responseBytesMax
        self.reloadable = reloadable
    }

    /// Loads one PEM file; a failure names the file and what it should have held.
    static func read<T>(_ what: String, _ path: String, _ load: (String) throws -> T) throws(AdminClientError) -> T {
        do {
            return try load(path)
        } catch {
            throw .tls("cannot read the \(what) \(path): \(error)")
        }
    }

    deinit {
        // Closes the pooled connections; the HTTP client stays alive until that is done.
        http.shutdown { _ in }
    }

    /// Sends one request to `host:port` and returns the answer.
    public func request(
        host: String, port: Int, method: HTTPMethod, path: String,
        headers: [(String, String)] = [], body: [UInt8]? = nil, timeoutMillis: Int = 5_000
    ) async throws(AdminClientError) -> HTTPAnswer {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        var request = HTTPClientRequest(url: "https://\(address)\(path)")
        request.method = method
        // The pool keys connections by TLS configuration: after a reload, new connections.
        // Before any reload the client's own configuration is the current one (no per-request
        // hashing of it on the forwarded-write path).
        if let reloadable, reloadable.reloaded { request.tlsConfiguration = reloadable.clientConfiguration }
        request.headers.add(name: "Accept", value: "application/json")
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        } else if method == .POST || method == .PUT {
            request.headers.add(name: "Content-Length", value: "0")
        }
        do {
            let response = try await http.execute(request, deadline: .now() + .milliseconds(Int64(timeoutMillis)))
            let body = try await response.body.collect(upTo: responseBytesMax)
            return HTTPAnswer(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: Array(buffer: body))
        } catch {
            throw Self.describe(error, address: address, timeoutMillis: timeoutMillis, limit: responseBytesMax)
        }
    }

    static let timeouts: [HTTPClientError] = [.deadlineExceeded, .readTimeout, .writeTimeout, .connectTimeout, .getConnectionFromPoolTimeout, .cancelled]

    /// The client's own words for what went wrong: `connect` and `timeout` when the request may
    /// not have arrived, `protocolError` when an answer was cut or malformed.
    static func describe(_ error: any Error, address: String, timeoutMillis: Int, limit: Int) -> AdminClientError {
        if error is NIOTooManyBytesError { return .responseTooLarge(address: address, limit: limit) }
        if let e = error as? HTTPClientError {
            if Self.timeouts.contains(e) { return .timeout(address: address, millis: timeoutMillis) }
            if e == .remoteConnectionClosed || e == .bodyLengthMismatch { return .protocolError(address: address, reason: "\(e)") }
            return .connect(address: address, reason: "\(e)")
        }
        // Connection refused or reset, TLS handshake failures: the request did not arrive.
        return .connect(address: address, reason: "\(error)")
    }
}
