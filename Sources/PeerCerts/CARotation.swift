import Foundation
import X509

/// Replacing the cluster CA and renewing certificates in a certificate directory, in three
/// phases that each leave every peer able to talk to every other (docs/tls.md §Rotation):
///
/// 1. `trust`: a new CA (`ca-next.pem`, `ca-next.key`) is made and `ca.pem` becomes the bundle
///    of the old CA and the new one. Peers that reload trust both; nobody presents the new yet.
/// 2. `renewLeaves`: every peer's and client's certificate in the directory is issued again,
///    with the same names, by the newest CA (the new one during a rotation, else the current).
/// 3. `finish`: `ca.pem` holds the new CA alone and `ca-next.key` becomes `ca.key`. Refused while
///    a certificate in the directory is still the old CA's.
///
/// Between phases the caller reloads every peer (`POST /v1/tls/reload`) and checks its answer:
/// that gate, not this file, is what makes a phase safe for certificates kept on other hosts.
/// A phase that crashed half-way is run again; each step is an atomic rename.
public enum CARotation {
    public static let nextCertificate = "ca-next.pem"
    public static let nextPrivateKey = "ca-next.key"

    /// What a directory holds.
    public struct State: Sendable {
        /// `ca.pem`, in order.
        public var trusted: [Certificate]
        /// The CA that issues: the new one once `ca.pem` trusts it, else the current one.
        public var signer: Certificate
        /// The new CA while a rotation is in progress.
        public var next: Certificate?
    }

    /// A certificate issued again.
    public struct Renewed: Sendable {
        public var file: String
        public var certificate: Certificate
    }

    static func paths(_ directory: String) -> (ca: String, caKey: String, next: String, nextKey: String) {
        (CertificateFiles.join(directory, CertificateFiles.caCertificate), CertificateFiles.join(directory, CertificateFiles.caPrivateKey),
         CertificateFiles.join(directory, nextCertificate), CertificateFiles.join(directory, nextPrivateKey))
    }

    public static func state(directory: String) throws -> State {
        let p = paths(directory)
        let trusted = try loadCertificates(path: p.ca)
        let signer = try signing(directory: directory)
        let next = CertificateFiles.exists(p.next) ? try loadCertificate(path: p.next) : nil
        return State(trusted: trusted, signer: signer.certificate, next: next)
    }

    /// The CA that signs in `directory`: the new one once `ca.pem` trusts it (phase 1 done),
    /// else `ca.key`'s. The leader uses it for the instances it provisions, so an instance
    /// made during a rotation already holds a certificate that outlives the old CA.
    public static func signing(directory: String) throws -> CertificateAuthority {
        let p = paths(directory)
        if CertificateFiles.exists(p.nextKey), CertificateFiles.exists(p.ca),
           let next = try? CertificateAuthority.load(directory: directory, certificatePath: p.ca, keyPath: p.nextKey) {
            return next
        }
        return try CertificateAuthority.load(directory: directory)
    }

    /// Phase 1. Needs `ca.pem`, not the old `ca.key`. Run again after a crash, it completes
    /// the bundle with the same new CA; refused when `ca-next.*` are there but do not belong
    /// together.
    @discardableResult
    public static func trust(directory: String, validity: Validity = .days(Validity.caDaysDefault)) throws -> Certificate {
        let p = paths(directory)
        // The old CA's key is not needed (it may be lost): the new CA signs everything after.
        guard let current = try ExistingCA.find(directory: directory) else { throw CertsError.caNotFound(directory: directory) }
        if CertificateFiles.exists(p.next) || CertificateFiles.exists(p.nextKey) {
            // A crash after making the new CA and before the bundle: write the bundle again.
            if let next = try? CertificateAuthority.load(directory: directory, certificatePath: p.next, keyPath: p.nextKey) {
                let trusted = try loadCertificates(path: p.ca)
                if !trusted.contains(next.certificate) {
                    try CertificateFiles.replace(try bundlePEM(trusted + [next.certificate]), at: p.ca, mode: CertificateFiles.certificateMode)
                }
                return next.certificate
            }
            throw CertsError.rotationInProgress(directory: directory)
        }
        let stamp = ISO8601DateFormatter().string(from: validity.notBefore.addingTimeInterval(Validity.clockSkewSeconds))
        let next = try CertificateAuthority.create(
            directory: directory, clusterID: current.clusterID, validity: validity,
            commonName: "peer cluster CA \(current.clusterID) \(stamp)",
            certificateFile: nextCertificate, keyFile: nextPrivateKey)
        let trusted = try loadCertificates(path: p.ca)
        try CertificateFiles.replace(try bundlePEM(trusted + [next.certificate]), at: p.ca, mode: CertificateFiles.certificateMode)
        return next.certificate
    }

    /// Phase 2 (and, outside a rotation, the renewal of every certificate before it expires):
    /// each `peer-<id>.pem` and `client-<name>.pem` with its key beside it, issued again by the
    /// signing CA with the names it had, the key first and then the certificate.
    public static func renewLeaves(directory: String, validity: Validity = .days(Validity.leafDaysDefault)) throws -> [Renewed] {
        let signer = try signing(directory: directory)
        var renewed: [Renewed] = []
        for (file, keyFile) in try leafFiles(directory) {
            let path = CertificateFiles.join(directory, file)
            let old = try loadCertificate(path: path)
            let names = ((try? old.extensions.subjectAlternativeNames) ?? nil).map { Array($0) } ?? []
            let identities = names.compactMap { name -> PeerIdentity? in
                if case .uniformResourceIdentifier(let uri) = name { return PeerIdentity(uri: uri) }
                return nil
            }
            guard identities.count == 1, let identity = identities.first, identity.clusterID == signer.clusterID else {
                throw CertsError.certificateMismatch(path: path, reason: "it names no single identity of cluster \(signer.clusterID); not renewed")
            }
            let issued: IssuedPEM
            if let node = identity.nodeID {
                var ips: [String] = [], dns: [String] = []
                for name in names {
                    switch name {
                    case .dnsName(let d): dns.append(d)
                    case .ipAddress(let bytes): ips.append(ipAddressText(Array(bytes.bytes)))
                    default: break
                    }
                }
                issued = try signer.issuePeerPEM(nodeID: node, ipAddresses: ips, dnsNames: dns, validity: validity)
            } else if let client = identity.clientName {
                issued = try signer.issueClientPEM(name: client, validity: validity)
            } else {
                continue
            }
            try CertificateFiles.replace(issued.privateKeyPEM, at: CertificateFiles.join(directory, keyFile), mode: CertificateFiles.privateKeyMode)
            try CertificateFiles.replace(issued.certificatePEM, at: path, mode: CertificateFiles.certificateMode)
            renewed.append(Renewed(file: file, certificate: issued.certificate))
        }
        return renewed
    }

    /// Phase 3. Refused when no rotation is in progress, and while a certificate in the
    /// directory is not the new CA's (run phase 2 first).
    @discardableResult
    public static func finish(directory: String) throws -> Certificate {
        let p = paths(directory)
        guard CertificateFiles.exists(p.next) else { throw CertsError.noRotationInProgress(directory: directory) }
        let next = try loadCertificate(path: p.next)
        for (file, _) in try leafFiles(directory) {
            let leaf = try loadCertificate(path: CertificateFiles.join(directory, file))
            guard issuingCA(of: leaf, among: [next]) != nil else {
                throw CertsError.issuedByOldCA(path: CertificateFiles.join(directory, file))
            }
        }
        if CertificateFiles.exists(p.nextKey) {
            // The key is checked against the new certificate before anything is replaced.
            _ = try CertificateAuthority.load(directory: directory, certificatePath: p.next, keyPath: p.nextKey)
            try CertificateFiles.replace(try bundlePEM([next]), at: p.ca, mode: CertificateFiles.certificateMode)
            try CertificateFiles.renameDurably(p.nextKey, to: p.caKey)
        } else {
            // A finish that crashed after moving the key: what is left is removing ca-next.pem.
            _ = try CertificateAuthority.load(directory: directory)
            guard try loadCertificates(path: p.ca) == [next] else { throw CertsError.caKeyMismatch(directory: directory) }
        }
        unlink(p.next)
        return next
    }

    /// `(certificate, key)` file names of the peer and client pairs in `directory`, sorted.
    static func leafFiles(_ directory: String) throws -> [(String, String)] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw CertsError.unreadableFile(path: directory, reason: "\(error.localizedDescription)")
        }
        let present = Set(names)
        return names.filter { ($0.hasPrefix("peer-") || $0.hasPrefix("client-")) && $0.hasSuffix(".pem") }.sorted().compactMap { file in
            let key = String(file.dropLast(".pem".count)) + ".key"
            return present.contains(key) ? (file, key) : nil
        }
    }

    static func ipAddressText(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var address = in6_addr()
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafeMutableBytes(of: &address) { raw in for (i, b) in bytes.prefix(16).enumerated() { raw[i] = b } }
        guard inet_ntop(AF_INET6, &address, &text, socklen_t(text.count)) != nil else { return "" }
        return String(cString: text)
    }
}
