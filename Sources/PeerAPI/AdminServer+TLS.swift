import Hummingbird
import PeerCerts

/// `/v1/tls`: this peer's certificates as they run, and their reload from the files (docs/api.md
/// §TLS, docs/tls.md §Rotation). Served by the peer asked, never forwarded: each member has its
/// own files.
extension AdminServer {
    func addTLSRoutes(to router: RouterGroup<AdminRequestContext>) {
        router.get("tls") { _, _ in
            await self.respond { () async throws(APIError) -> TLSReport in
                guard let report = self.config.tlsReport else { throw APIError("notFound", "this peer reports no TLS") }
                return report()
            }
        }
        router.post("tls/reload") { _, _ in
            await self.respond { () async throws(APIError) -> TLSReport in
                guard let reload = self.config.tlsReload else { throw APIError("notFound", "this peer reloads no TLS") }
                return try await reload().get()
            }
        }
    }
}

/// A peer's TLS as it runs: what the admin API and the peer transport present and trust (both
/// read the same files), and whether the router's NGINX runs with the same trust.
public struct TLSReport: Codable, Sendable, Hashable {
    public struct Side: Codable, Sendable, Hashable {
        public var certificate: CertificateInfo
        public var trusted: [CertificateInfo]
        public init(certificate: CertificateInfo, trusted: [CertificateInfo]) {
            self.certificate = certificate
            self.trusted = trusted
        }
    }

    public var id: UInt64
    public var api: Side
    /// Nil when the transport runs without TLS (tests only).
    public var transport: Side?
    /// Peer connections that completed TLS and hello since the peer started: a reload leaves
    /// the open ones open, so it does not move this.
    public var peerConnectionsEstablished: UInt64
    /// The SHA-256 of the CA bundle NGINX was last started or reloaded with (its token checks
    /// verify the API's certificate); nil when this peer runs no router.
    public var routerTrustSHA256: String?
    /// When the files were last loaded (start or reload), Unix ms.
    public var loadedAtMs: Int64

    public init(id: UInt64, api: Side, transport: Side?, peerConnectionsEstablished: UInt64, routerTrustSHA256: String?, loadedAtMs: Int64) {
        self.id = id
        self.api = api
        self.transport = transport
        self.peerConnectionsEstablished = peerConnectionsEstablished
        self.routerTrustSHA256 = routerTrustSHA256
        self.loadedAtMs = loadedAtMs
    }
}
