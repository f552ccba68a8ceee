import Dispatch
import Foundation
import Logging
import PeerAPI
import PeerTransport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Reloads this peer's TLS files in place (docs/tls.md §Rotation): on SIGHUP and on `POST
/// /v1/tls/reload`. Both the transport and the admin API read the files first; if either
/// refuses them (a key that is not the certificate's, a certificate no CA of `ca.pem` issued,
/// one that does not name this node), nothing changes and the answer says why. Otherwise new
/// connections use them from then on; open connections stay open with the keys they agreed on.
/// Last, NGINX reloads when the CA bundle changed (its token checks verify the API with it).
final class TLSReloader: Sendable {
    let selfID: UInt64
    let transport: PeerTransport
    let api: APITLS
    let dataPlane: DataPlane
    let logger: Logger
    private let loadedAtMs = Mutex<Int64>(Int64(Date().timeIntervalSince1970 * 1000))

    init(selfID: UInt64, transport: PeerTransport, api: APITLS, dataPlane: DataPlane, logger: Logger) {
        self.selfID = selfID
        self.transport = transport
        self.api = api
        self.dataPlane = dataPlane
        self.logger = logger
    }

    func report() -> TLSReport {
        let loaded = api.loaded
        let transportTLS = transport.currentTLS
        return TLSReport(
            id: selfID, api: TLSReport.Side(certificate: loaded.certificate, trusted: loaded.trusted),
            transport: transportTLS.map { TLSReport.Side(certificate: $0.certificate, trusted: $0.trusted) },
            peerConnectionsEstablished: transport.connectionsEstablished,
            routerTrustSHA256: dataPlane.routerTrustSHA256,
            loadedAtMs: loadedAtMs.withLock { $0 })
    }

    func reload() async -> Result<TLSReport, APIError> {
        let forTransport: LoadedTLS?
        do {
            forTransport = try transport.loadTLS()
        } catch TransportSetupError.plaintext {
            forTransport = nil
        } catch {
            return refuse("the peer transport refuses the files: \(error)")
        }
        let forAPI: APITLS.Loaded
        do {
            forAPI = try APITLS.load(api.files)
        } catch {
            return refuse("the admin API refuses the files: \(error)")
        }
        if let forTransport { transport.installTLS(forTransport) }
        api.install(forAPI)
        loadedAtMs.withLock { $0 = Int64(Date().timeIntervalSince1970 * 1000) }
        logger.notice("TLS reloaded", metadata: [
            "certificate": "\(forAPI.certificate.serial)", "not_after_ms": "\(forAPI.certificate.notAfterMs)",
            "trusted": "\(forAPI.trusted.map(\.subject))",
        ])
        if case .failure(let why) = await dataPlane.reloadTrust() {
            logger.error("TLS reloaded, but the router's trust did not follow: \(why)")
            return .failure(APIError("unavailable", "the certificates are reloaded, but \(why)", retryable: true))
        }
        return .success(report())
    }

    private func refuse(_ why: String) -> Result<TLSReport, APIError> {
        logger.error("TLS reload refused, the running certificates are kept: \(why)")
        return .failure(APIError("unprocessable", "\(why); nothing changed"))
    }

    /// Reloads on each SIGHUP until the returned source is cancelled (SIGHUP no longer ends
    /// the process).
    func reloadOnHangup() -> any DispatchSourceSignal {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler { [self] in
            logger.notice("SIGHUP: reloading the TLS files")
            Task { _ = await self.reload() }
        }
        source.resume()
        return source
    }
}
