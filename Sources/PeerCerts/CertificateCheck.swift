import Crypto
import Foundation
import X509

/// What is on disk where a certificate and its key should be.
public enum PairOnDisk: Sendable, Hashable {
    /// Neither file: the pair can be issued.
    case absent
    /// Both files.
    case present
    /// One without the other: nothing may be issued over it, nor can it be used.
    case incomplete(present: String, missing: String)

    public init(certificatePath: String, privateKeyPath: String) {
        switch (CertificateFiles.exists(certificatePath), CertificateFiles.exists(privateKeyPath)) {
        case (false, false): self = .absent
        case (true, true): self = .present
        case (true, false): self = .incomplete(present: certificatePath, missing: privateKeyPath)
        case (false, true): self = .incomplete(present: privateKeyPath, missing: certificatePath)
        }
    }
}

/// Checks that an existing peer pair is what `issuePeer` would have written for this cluster:
/// the key belongs to the certificate, the certificate is signed by `caCertificate`, names
/// `peer://<cluster>/node/<id>` and every given address, and has not expired. `peer init` calls
/// this instead of overwriting, so a re-run either accepts what is there or says why not.
public func checkPeerPair(
    certificatePath: String, privateKeyPath: String, caCertificate: Certificate, clusterID: String,
    nodeID: UInt64, ipAddresses: [String] = [], dnsNames: [String] = [], now: Date = Date()
) throws {
    try checkPeerPair(certificatePath: certificatePath, privateKeyPath: privateKeyPath, trustedCAs: [caCertificate],
                      clusterID: clusterID, nodeID: nodeID, ipAddresses: ipAddresses, dnsNames: dnsNames, now: now)
}

/// The same, against a trust bundle (`ca.pem` during a CA rotation holds two CAs).
public func checkPeerPair(
    certificatePath: String, privateKeyPath: String, trustedCAs: [Certificate], clusterID: String,
    nodeID: UInt64, ipAddresses: [String] = [], dnsNames: [String] = [], now: Date = Date()
) throws {
    let expected = try CertificateAuthority.peerNames(
        clusterID: clusterID, nodeID: nodeID, ipAddresses: ipAddresses, dnsNames: dnsNames)
    try checkPair(certificatePath: certificatePath, privateKeyPath: privateKeyPath, trustedCAs: trustedCAs,
                  expectedNames: expected, now: now)
}

/// The same check for a client pair (`peer://<cluster>/client/<name>`).
public func checkClientPair(
    certificatePath: String, privateKeyPath: String, caCertificate: Certificate, clusterID: String,
    name: String, now: Date = Date()
) throws {
    try checkClientPair(certificatePath: certificatePath, privateKeyPath: privateKeyPath, trustedCAs: [caCertificate],
                        clusterID: clusterID, name: name, now: now)
}

/// The same, against a trust bundle.
public func checkClientPair(
    certificatePath: String, privateKeyPath: String, trustedCAs: [Certificate], clusterID: String,
    name: String, now: Date = Date()
) throws {
    let expected = try CertificateAuthority.clientNames(clusterID: clusterID, name: name)
    try checkPair(certificatePath: certificatePath, privateKeyPath: privateKeyPath, trustedCAs: trustedCAs,
                  expectedNames: expected, now: now)
}

private func checkPair(
    certificatePath: String, privateKeyPath: String, trustedCAs: [Certificate], expectedNames: [GeneralName], now: Date
) throws {
    let cert = try loadCertificate(path: certificatePath)
    let key: P256.Signing.PrivateKey
    do {
        key = try P256.Signing.PrivateKey(pemRepresentation: try CertificateFiles.read(privateKeyPath))
    } catch let error as CertsError {
        throw error
    } catch {
        throw CertsError.malformedPrivateKey(path: privateKeyPath, reason: "\(error)")
    }
    func mismatch(_ reason: String) -> CertsError { .certificateMismatch(path: certificatePath, reason: reason) }
    guard cert.publicKey == Certificate.PublicKey(key.publicKey) else {
        throw mismatch("its key is not \(privateKeyPath)")
    }
    guard let caCertificate = trustedCAs.first(where: { $0.subject == cert.issuer }) else {
        throw mismatch("it is not signed by this cluster's CA: it was issued by \(cert.issuer), the CA is \(trustedCAs.map { "\($0.subject)" }.joined(separator: " or "))")
    }
    guard caCertificate.publicKey.isValidSignature(cert.signature, for: cert) else {
        throw mismatch("it is not signed by this cluster's CA: its issuer has the CA's name but another key (a CA made again for the same cluster?)")
    }
    let names = ((try? cert.extensions.subjectAlternativeNames) ?? nil).map { Array($0) } ?? []
    let missing = expectedNames.filter { !names.contains($0) }
    if !missing.isEmpty {
        throw mismatch("it does not name \(missing.map(describeName).joined(separator: ", ")) (it names \(names.map(describeName).joined(separator: ", "))); move the pair away to issue a new one (docs/tls.md)")
    }
    guard now < cert.notValidAfter else {
        throw mismatch("it expired at \(cert.notValidAfter); move the pair away to issue a new one (docs/tls.md)")
    }
}

/// A SAN as `peer certs list` shows it: `URI:...`, `DNS:...`, `IP:...`.
func describeName(_ name: GeneralName) -> String {
    switch name {
    case .dnsName(let s): return "DNS:\(s)"
    case .uniformResourceIdentifier(let s): return "URI:\(s)"
    case .rfc822Name(let s): return "email:\(s)"
    case .ipAddress(let octets):
        let b = Array(octets.bytes)
        if b.count == 4 { return "IP:" + b.map(String.init).joined(separator: ".") }
        if b.count == 16 {
            return "IP:" + stride(from: 0, to: 16, by: 2).map { String(UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        }
        return "IP:?"
    default: return "\(name)"
    }
}
