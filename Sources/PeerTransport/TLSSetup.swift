import Foundation
import NIOCore
import NIOSSL
import PeerCerts
import PeerWire
import Raft
import X509

/// A configuration file or key that could not be used. Raised by `PeerTransport.start`.
public enum TransportSetupError: Error, Sendable, CustomStringConvertible {
    case unreadablePEM(path: String, reason: String)
    case certificateDoesNotNameThisNode(path: String, detail: String)
    case bindFailed(PeerAddress, reason: String)
    case plaintext

    public var description: String {
        switch self {
        case .unreadablePEM(let p, let r): return "cannot use \(p): \(r)"
        case .certificateDoesNotNameThisNode(let p, let d): return "\(p) is not this node's certificate: \(d)"
        case .bindFailed(let a, let r): return "cannot listen on \(a): \(r)"
        case .plaintext: return "the transport runs without TLS: there is nothing to reload"
        }
    }
}

/// The TLS files as loaded and checked, ready for `PeerTransport.installTLS`.
public struct LoadedTLS: Sendable {
    let material: TLSMaterial
    /// This node's certificate.
    public var certificate: CertificateInfo { CertificateInfo(material.certificate) }
    /// The CAs whose peers it accepts, in `ca.pem`'s order.
    public var trusted: [CertificateInfo] { material.policy.trustedCAs.map(CertificateInfo.init) }
}

/// TLS material: two NIOSSL contexts and the identity policy, loaded at start and again at each
/// reload (`PeerTransport.loadTLS`).
struct TLSMaterial: Sendable {
    let serverContext: NIOSSLContext
    let clientContext: NIOSSLContext
    let policy: PeerCertificatePolicy
    let certificate: Certificate

    init(files: TLSFiles, clusterID: String, nodeID: NodeID) throws {
        func load<T>(_ path: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch { throw TransportSetupError.unreadablePEM(path: path, reason: "\(error)") }
        }
        // `ca.pem` is a bundle: one CA, or the old and the new one during a CA rotation.
        let cas = try load(files.caCertificatePath) { try NIOSSLCertificate.fromPEMFile(files.caCertificatePath) }
        let chain = try load(files.certificatePath) { try NIOSSLCertificate.fromPEMFile(files.certificatePath) }
        let key = try load(files.privateKeyPath) { try NIOSSLPrivateKey(file: files.privateKeyPath, format: .pem) }
        let caX509 = try load(files.caCertificatePath) { try loadCertificates(path: files.caCertificatePath) }
        let ownX509 = try load(files.certificatePath) { try loadCertificate(path: files.certificatePath) }
        let policy = PeerCertificatePolicy(trustedCAs: caX509, clusterID: clusterID)
        // A certificate and a key of different pairs (a rotation half-written) would fail every
        // handshake: refuse them here, keeping what runs.
        let keyMatches = try load(files.privateKeyPath) {
            try Certificate.PrivateKey(pemEncoded: try String(contentsOfFile: files.privateKeyPath, encoding: .utf8)).publicKey == ownX509.publicKey
        }
        guard keyMatches else {
            throw TransportSetupError.unreadablePEM(path: files.privateKeyPath, reason: "it is not the key of \(files.certificatePath)")
        }

        // Refuse to start with a certificate that peers would refuse: fail here, loudly, rather
        // than as a stream of handshake errors on every other node.
        // Peers both dial (client auth) and accept (server auth) with the same certificate.
        for usage in [ExtendedKeyUsage.Usage.clientAuth, .serverAuth] {
            let selfCheck = policy.verify(chain: [ownX509], expecting: .exactly(nodeID), usage: usage, now: Date())
            if case .rejected(let reason, let detail) = selfCheck {
                throw TransportSetupError.certificateDoesNotNameThisNode(
                    path: files.certificatePath, detail: "\(reason.rawValue): \(detail)")
            }
        }

        var server = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(key)
        server = Self.harden(server, cas: cas)
        client = Self.harden(client, cas: cas)
        self.serverContext = try NIOSSLContext(configuration: server)
        self.clientContext = try NIOSSLContext(configuration: client)
        self.policy = policy
        self.certificate = ownX509
    }

    /// TLS 1.3 only; a certificate is required from the other side (`.noHostnameVerification`
    /// maps to SSL_VERIFY_FAIL_IF_NO_PEER_CERT); the identity is checked by our own callback
    /// against the SAN URI, not by host name.
    private static func harden(_ base: TLSConfiguration, cas: [NIOSSLCertificate]) -> TLSConfiguration {
        var c = base
        c.minimumTLSVersion = .tlsv13
        c.maximumTLSVersion = .tlsv13
        c.certificateVerification = .noHostnameVerification
        c.trustRoots = .certificates(cas)
        return c
    }

    /// Builds the verification callback for one connection. It records the verdict in `box` so
    /// the connection handler can log the precise reason when the handshake fails.
    func verificationCallback(
        expecting: @escaping () -> PeerCertificatePolicy.Expectation, usage: ExtendedKeyUsage.Usage,
        box: VerdictBox
    ) -> NIOSSLCustomVerificationCallback {
        let policy = self.policy
        return { certificates, promise in
            let chain = certificates.compactMap { try? Certificate(derEncoded: $0.toDERBytes()) }
            let verdict: PeerCertificatePolicy.Verdict
            if chain.count != certificates.count {
                verdict = .rejected(.certificateUnfit, "a presented certificate does not parse")
            } else {
                verdict = policy.verify(chain: chain, expecting: expecting(), usage: usage, now: Date())
            }
            box.verdict = verdict
            switch verdict {
            case .accepted: promise.succeed(.certificateVerified)
            case .rejected: promise.succeed(.failed)
            }
        }
    }
}

/// Holds one connection's certificate verdict. Written by the verification callback and read by
/// the connection handler, both on the connection's event loop.
final class VerdictBox: @unchecked Sendable {
    var verdict: PeerCertificatePolicy.Verdict?
}

/// Maps a handshake error to a reason: our own verdict when the certificate was the problem,
/// otherwise BoringSSL's error names (stable across its versions) tell what the other side did.
func classifyHandshakeFailure(_ error: any Error, verdict: PeerCertificatePolicy.Verdict?) -> (RejectReason, String) {
    if case .rejected(let reason, let detail)? = verdict { return (reason, detail) }
    let text = String(describing: error)
    let table: [(String, RejectReason)] = [
        ("WRONG_VERSION_NUMBER", .notTLS), ("HTTP_REQUEST", .notTLS), ("HTTPS_PROXY_REQUEST", .notTLS),
        ("RECORD_TOO_LARGE", .notTLS), ("WRONG_VERSION", .notTLS), ("PACKET_LENGTH_TOO_LONG", .notTLS),
        ("UNSUPPORTED_PROTOCOL", .tlsVersionRefused), ("TLSV1_ALERT_PROTOCOL_VERSION", .tlsVersionRefused),
        ("PEER_DID_NOT_RETURN_A_CERTIFICATE", .noClientCertificate),
        ("CERTIFICATE_REQUIRED", .noClientCertificate),
    ]
    for (needle, reason) in table where text.contains(needle) { return (reason, text) }
    return (.tlsHandshakeFailed, text)
}
