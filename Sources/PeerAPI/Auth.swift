import Crypto
import Hummingbird
import NIOCore
import NIOSSL

/// The request context of the admin API: Hummingbird's, plus the connection, so the
/// authorization middleware can ask the TLS handler whether the client proved a certificate.
public struct AdminRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Admits a request that comes over a connection whose client presented a certificate the
/// cluster CA issued (verified during the handshake), or that carries the admin token. Anything
/// else is 401 with a JSON body saying what is missing. The token is compared by its SHA-256
/// in constant time and never logged.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext
    let tokenSHA256: [UInt8]?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let expected = tokenSHA256, let header = request.headers[.authorization], header.hasPrefix("Bearer ") {
            let presented = Array(SHA256.hash(data: Array(header.dropFirst("Bearer ".count).utf8)))
            if Self.constantTimeEqual(presented, expected) { return try await next(request, context) }
            return AdminServer.json(APIError("unauthorized", "the bearer token is not the admin token"), status: .unauthorized)
        }
        let channel = context.channel
        let hasCertificate = try await channel.eventLoop.submit {
            (try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self))?.peerCertificate != nil
        }.get()
        if hasCertificate { return try await next(request, context) }
        let how = tokenSHA256 == nil
            ? "present a client certificate issued by the cluster CA (peer init makes client-admin.pem)"
            : "present a client certificate issued by the cluster CA, or the admin token as `Authorization: Bearer <token>`"
        return AdminServer.json(APIError("unauthorized", "not authenticated: \(how)"), status: .unauthorized)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
