import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A certificate written to disk: where, and what it says.
/// A certificate and its private key as PEM text, never written to disk here.
public struct IssuedPEM: Sendable {
    public var certificatePEM: String
    public var privateKeyPEM: String
    public var certificate: Certificate
}

public struct IssuedCertificate: Sendable {
    public var certificatePath: String
    public var privateKeyPath: String
    public var certificate: Certificate
}

/// The cluster's own certificate authority (ECDSA P-256). Only certificates it signed are trusted
/// by the peer transport, so it is created once per cluster and never overwritten.
public struct CertificateAuthority: Sendable {
    public let directory: String
    public let clusterID: String
    public let certificate: Certificate
    let privateKey: P256.Signing.PrivateKey

    public var certificatePath: String { CertificateFiles.join(directory, CertificateFiles.caCertificate) }

    /// Creates `ca.pem` and `ca.key` (0600) in `directory`. Fails if either exists.
    public static func create(
        directory: String, clusterID: String, validity: Validity = .days(Validity.caDaysDefault)
    ) throws -> CertificateAuthority {
        try create(directory: directory, clusterID: clusterID, validity: validity,
                   commonName: "peer cluster CA \(clusterID)",
                   certificateFile: CertificateFiles.caCertificate, keyFile: CertificateFiles.caPrivateKey)
    }

    /// `commonName` differs between a cluster's successive CAs (`CARotation` names the new one
    /// after its creation time), so a trust bundle never holds two CAs of one name.
    static func create(
        directory: String, clusterID: String, validity: Validity, commonName: String, certificateFile: String, keyFile: String
    ) throws -> CertificateAuthority {
        guard PeerIdentity.isValidName(clusterID) else { throw CertsError.invalidClusterID(clusterID) }
        try validity.check()
        try CertificateFiles.ensureDirectory(directory)
        let certPath = CertificateFiles.join(directory, certificateFile)
        let keyPath = CertificateFiles.join(directory, keyFile)
        for path in [certPath, keyPath] where CertificateFiles.exists(path) {
            throw CertsError.caAlreadyExists(path: path)
        }
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            CommonName(commonName)
            OrganizationName(clusterID)
        }
        let publicKey = Certificate.PublicKey(key.publicKey)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: publicKey)
        }
        let cert = try Certificate(
            version: .v3, serialNumber: randomSerialNumber(), publicKey: publicKey,
            notValidBefore: validity.notBefore, notValidAfter: validity.notAfter,
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(key))
        // Key first: a crash between the two writes leaves a key without a certificate, which
        // `create` still refuses to overwrite, rather than a certificate whose key is lost.
        try CertificateFiles.writeNew(key.pemRepresentation, to: keyPath, mode: CertificateFiles.privateKeyMode)
        try CertificateFiles.writeNew(
            try cert.serializeAsPEM().pemString, to: certPath, mode: CertificateFiles.certificateMode)
        return CertificateAuthority(directory: directory, clusterID: clusterID, certificate: cert, privateKey: key)
    }

    /// Loads the CA from `directory` (needs both files: only the CA signs).
    public static func load(directory: String) throws -> CertificateAuthority {
        let certPath = CertificateFiles.join(directory, CertificateFiles.caCertificate)
        let keyPath = CertificateFiles.join(directory, CertificateFiles.caPrivateKey)
        guard CertificateFiles.exists(certPath), CertificateFiles.exists(keyPath) else {
            throw CertsError.caNotFound(directory: directory)
        }
        return try load(directory: directory, certificatePath: certPath, keyPath: keyPath)
    }

    /// Loads a CA from a key and the bundle holding its certificate (`ca.pem` may hold two CAs
    /// during a rotation: the key says which one signs).
    static func load(directory: String, certificatePath certPath: String, keyPath: String) throws -> CertificateAuthority {
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: try CertificateFiles.read(keyPath))
        } catch let error as CertsError {
            throw error
        } catch {
            throw CertsError.malformedPrivateKey(path: keyPath, reason: "\(error)")
        }
        guard let cert = try loadCertificates(path: certPath).first(where: { $0.publicKey == Certificate.PublicKey(key.publicKey) }) else {
            throw CertsError.caKeyMismatch(directory: directory)
        }
        guard let clusterID = organizationName(of: cert), PeerIdentity.isValidName(clusterID) else {
            throw CertsError.malformedCertificate(path: certPath, reason: "no cluster id in its Organization")
        }
        return CertificateAuthority(directory: directory, clusterID: clusterID, certificate: cert, privateKey: key)
    }

    /// Issues `peer-<id>.pem`/`.key` for a Raft peer: its identity URI plus its addresses as SANs,
    /// usable both to accept (server auth) and to dial (client auth).
    public func issuePeer(
        nodeID: UInt64, ipAddresses: [String] = [], dnsNames: [String] = [],
        validity: Validity = .days(Validity.leafDaysDefault), outputDirectory: String? = nil
    ) throws -> IssuedCertificate {
        let names = try Self.peerNames(clusterID: clusterID, nodeID: nodeID, ipAddresses: ipAddresses, dnsNames: dnsNames)
        return try issue(
            commonName: "peer-\(nodeID)", names: names, usages: [.serverAuth, .clientAuth], validity: validity,
            certificateFile: CertificateFiles.peerCertificate(nodeID: nodeID),
            keyFile: CertificateFiles.peerPrivateKey(nodeID: nodeID), outputDirectory: outputDirectory)
    }

    /// The SANs of a peer certificate: its identity URI, then its DNS names and IP addresses.
    /// `issuePeer` writes exactly these and `checkPeerPair` requires them, so the two agree.
    static func peerNames(clusterID: String, nodeID: UInt64, ipAddresses: [String], dnsNames: [String]) throws -> [GeneralName] {
        guard nodeID != 0 else { throw CertsError.invalidNodeID(nodeID) }
        var names: [GeneralName] = [
            .uniformResourceIdentifier(PeerIdentity(clusterID: clusterID, role: .node(nodeID)).uri)
        ]
        for dns in dnsNames {
            guard isValidDNSName(dns) else { throw CertsError.invalidDNSName(dns) }
            names.append(.dnsName(dns))
        }
        for ip in ipAddresses {
            names.append(.ipAddress(ASN1OctetString(contentBytes: try ipAddressBytes(ip)[...])))
        }
        return names
    }

    /// The SANs of a client certificate: its identity URI.
    static func clientNames(clusterID: String, name: String) throws -> [GeneralName] {
        guard PeerIdentity.isValidName(name) else { throw CertsError.invalidClientName(name) }
        return [.uniformResourceIdentifier(PeerIdentity(clusterID: clusterID, role: .client(name)).uri)]
    }

    /// Issues `client-<name>.pem`/`.key` for an operator or tool (client auth only).
    public func issueClient(
        name: String, validity: Validity = .days(Validity.leafDaysDefault), outputDirectory: String? = nil
    ) throws -> IssuedCertificate {
        return try issue(
            commonName: name, names: try Self.clientNames(clusterID: clusterID, name: name),
            usages: [.clientAuth], validity: validity,
            certificateFile: CertificateFiles.clientCertificate(name: name),
            keyFile: CertificateFiles.clientPrivateKey(name: name), outputDirectory: outputDirectory)
    }

    /// A peer certificate and its new private key, in memory (PEM): what a leader hands to an
    /// instance it provisions (docs/adr/0013-instances-join-and-leave.md). Names exactly what
    /// `issuePeer` would: the identity URI of `nodeID`, then `dnsNames` and `ipAddresses`.
    public func issuePeerPEM(
        nodeID: UInt64, ipAddresses: [String] = [], dnsNames: [String] = [], validity: Validity = .days(Validity.leafDaysDefault)
    ) throws -> IssuedPEM {
        let names = try Self.peerNames(clusterID: clusterID, nodeID: nodeID, ipAddresses: ipAddresses, dnsNames: dnsNames)
        let (key, cert) = try makeLeaf(commonName: "peer-\(nodeID)", names: names, usages: [.serverAuth, .clientAuth], validity: validity)
        return IssuedPEM(certificatePEM: try cert.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation, certificate: cert)
    }

    /// The CA certificate as PEM.
    public var certificatePEM: String {
        get throws { try certificate.serializeAsPEM().pemString }
    }

    /// What an instance this CA provisions must trust: `ca.pem` as it is, both CAs during a
    /// rotation (`CARotation`).
    public var trustBundlePEM: String {
        get throws { try CertificateFiles.read(certificatePath) }
    }

    /// A client certificate and its new key, in memory (`CARotation.renewLeaves`).
    public func issueClientPEM(name: String, validity: Validity = .days(Validity.leafDaysDefault)) throws -> IssuedPEM {
        let (key, cert) = try makeLeaf(
            commonName: name, names: try Self.clientNames(clusterID: clusterID, name: name), usages: [.clientAuth], validity: validity)
        return IssuedPEM(certificatePEM: try cert.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation, certificate: cert)
    }

    private func issue(
        commonName: String, names: [GeneralName], usages: [ExtendedKeyUsage.Usage], validity: Validity,
        certificateFile: String, keyFile: String, outputDirectory: String?
    ) throws -> IssuedCertificate {
        let outDir = outputDirectory ?? directory
        try CertificateFiles.ensureDirectory(outDir)
        let certPath = CertificateFiles.join(outDir, certificateFile)
        let keyPath = CertificateFiles.join(outDir, keyFile)
        for path in [certPath, keyPath] where CertificateFiles.exists(path) {
            throw CertsError.fileAlreadyExists(path: path)
        }
        let (key, cert) = try makeLeaf(commonName: commonName, names: names, usages: usages, validity: validity)
        try CertificateFiles.writeNew(key.pemRepresentation, to: keyPath, mode: CertificateFiles.privateKeyMode)
        try CertificateFiles.writeNew(
            try cert.serializeAsPEM().pemString, to: certPath, mode: CertificateFiles.certificateMode)
        return IssuedCertificate(certificatePath: certPath, privateKeyPath: keyPath, certificate: cert)
    }

    /// A new key and the leaf certificate this CA signs for it.
    private func makeLeaf(
        commonName: String, names: [GeneralName], usages: [ExtendedKeyUsage.Usage], validity: Validity
    ) throws -> (P256.Signing.PrivateKey, Certificate) {
        // A leaf never outlives the CA that signs it: peers would refuse it from the CA's expiry
        // on, while `peer certs list` showed it as still valid.
        var validity = validity
        validity.notAfter = min(validity.notAfter, certificate.notValidAfter)
        try validity.check()
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let subject = try DistinguishedName {
            CommonName(commonName)
            OrganizationName(clusterID)
        }
        let caKeyID = try certificate.extensions.subjectKeyIdentifier?.keyIdentifier
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage(usages)
            SubjectAlternativeNames(names)
            SubjectKeyIdentifier(hash: publicKey)
            AuthorityKeyIdentifier(keyIdentifier: caKeyID)
        }
        let cert = try Certificate(
            version: .v3, serialNumber: Self.randomSerialNumber(), publicKey: publicKey,
            notValidBefore: validity.notBefore, notValidAfter: validity.notAfter,
            issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(privateKey))
        return (key, cert)
    }

    /// 16 random bytes, top bit clear so the DER integer stays positive (RFC 5280 §4.1.2.2).
    static func randomSerialNumber() -> Certificate.SerialNumber {
        var rng = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes[0] = (bytes[0] & 0x7F) | 0x01
        return Certificate.SerialNumber(bytes: bytes)
    }

    static func ipAddressBytes(_ text: String) throws -> [UInt8] {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        throw CertsError.invalidIPAddress(text)
    }

    static func isValidDNSName(_ name: String) -> Bool {
        let dnsNameBytesMax = 253
        guard !name.isEmpty, name.utf8.count <= dnsNameBytesMax else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.utf8.allSatisfy { c in
                    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D
                }
        }
    }

    /// The cluster id a CA certificate was made for (its Organization), or nil when it has none
    /// that is a valid id. Lets a caller check `ca.pem` when `ca.key` is kept elsewhere.
    public static func clusterID(ofCA cert: Certificate) -> String? {
        organizationName(of: cert).flatMap { PeerIdentity.isValidName($0) ? $0 : nil }
    }

    static func organizationName(of cert: Certificate) -> String? {
        for rdn in cert.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.organizationName {
                return String(describing: attribute.value)
            }
        }
        return nil
    }
}

/// Reads one PEM certificate.
public func loadCertificate(path: String) throws -> Certificate {
    let pem = try CertificateFiles.read(path)
    do {
        return try Certificate(pemEncoded: pem)
    } catch {
        throw CertsError.malformedCertificate(path: path, reason: "\(error)")
    }
}
