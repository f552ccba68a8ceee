import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import PeerCerts
import Synchronization
import X509

/// The admin API's TLS, read from its files and replaceable while the peer runs (`POST
/// /v1/tls/reload`, SIGHUP): the server's context, which every accepted connection takes as it
/// starts, and the client configuration every outgoing request takes (a follower's forwarded
/// writes, the leader's data-plane polls). Connections already open keep what they agreed on.
public final class APITLS: Sendable {
    public let files: APITLSFiles
    private let current: Mutex<Loaded>
    /// Installs since start: 0 means the clients' own configuration (made from the same files
    /// at start) is still current, so a request need not carry one.
    private let installs = Atomic<Int>(0)

    /// One reading of the files, checked.
    public struct Loaded: Sendable {
        let serverContext: NIOSSLContext
        let clientConfiguration: TLSConfiguration
        /// The certificate this peer presents, to clients and when it is the client.
        public let certificate: CertificateInfo
        /// The CAs whose certificates it accepts, in `ca.pem`'s order.
        public let trusted: [CertificateInfo]
    }

    public init(files: APITLSFiles) throws(AdminClientError) {
        self.files = files
        current = Mutex(try Self.load(files))
    }

    /// Reads and checks the files without using them: the key is the certificate's, and the
    /// certificate was issued by a CA of the bundle. Throws naming the file at fault.
    public static func load(_ files: APITLSFiles) throws(AdminClientError) -> Loaded {
        let cas = try AdminClient.read("CA certificate", files.caCertificatePath) { try NIOSSLCertificate.fromPEMFile($0) }
        let chain = try AdminClient.read("certificate", files.certificatePath) { try NIOSSLCertificate.fromPEMFile($0) }
        let key = try AdminClient.read("private key", files.privateKeyPath) { try NIOSSLPrivateKey(file: $0, format: .pem) }
        let trusted = try AdminClient.read("CA certificate", files.caCertificatePath) { try loadCertificates(path: $0) }
        let own = try AdminClient.read("certificate", files.certificatePath) { try loadCertificate(path: $0) }
        let ownKey = try AdminClient.read("private key", files.privateKeyPath) {
            try Certificate.PrivateKey(pemEncoded: try String(contentsOfFile: $0, encoding: .utf8))
        }
        guard ownKey.publicKey == own.publicKey else {
            throw .tls("\(files.privateKeyPath) is not the key of \(files.certificatePath)")
        }
        guard issuingCA(of: own, among: trusted) != nil else {
            throw .tls("\(files.certificatePath) is not issued by a CA of \(files.caCertificatePath) (issuer \(own.issuer))")
        }

        var server = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        server.minimumTLSVersion = .tlsv13
        server.trustRoots = .certificates(cas)
        // A client certificate, when offered, must chain to a cluster CA (the only trust roots).
        // Whether one was offered is checked per request (`authorize`): a request with neither a
        // certificate nor the admin token gets a clear 401, not a failed handshake.
        server.certificateVerification = .optionalVerification
        // A graceful stop closes the idle keep-alive connections (other members' pooled admin
        // clients) with a TLS close_notify; a pooled client that is not reading does not answer
        // it, and NIOSSL's default wait for that answer (5 s) would hold every stop that long.
        server.shutdownTimeout = .milliseconds(Int64(AdminServer.tlsShutdownTimeoutMillis))
        let serverContext: NIOSSLContext
        do { serverContext = try NIOSSLContext(configuration: server) } catch { throw .tls("\(error)") }
        let client = AdminClient.clientConfiguration(cas: cas, identity: (chain, key))
        return Loaded(
            serverContext: serverContext, clientConfiguration: client,
            certificate: CertificateInfo(own), trusted: trusted.map(CertificateInfo.init))
    }

    /// New connections and requests use `loaded` from now on.
    public func install(_ loaded: Loaded) {
        current.withLock { $0 = loaded }
        installs.add(1, ordering: .releasing)
    }

    var reloaded: Bool { installs.load(ordering: .acquiring) > 0 }

    public var loaded: Loaded { current.withLock { $0 } }
    var serverContext: NIOSSLContext { current.withLock { $0.serverContext } }
    var clientConfiguration: TLSConfiguration { current.withLock { $0.clientConfiguration } }
}

/// Hummingbird's `TLSChannel`, but the context is taken from `APITLS` as each connection is
/// accepted, so a reload applies to the next connection without a restart.
struct ReloadableTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let tls: APITLS

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let context = tls.serverContext
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
