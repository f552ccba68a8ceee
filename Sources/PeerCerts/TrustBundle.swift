import Crypto
import Foundation
import SwiftASN1
import X509

/// Reads every certificate in a PEM file, in order. `ca.pem` is a trust bundle: one CA normally,
/// the old and the new one side by side while `peer certs rotate --ca` replaces the CA
/// (docs/tls.md). Anything but certificates, or no certificate at all, is an error naming the file.
public func loadCertificates(path: String) throws -> [Certificate] {
    let pem = try CertificateFiles.read(path)
    let documents: [PEMDocument]
    do {
        documents = try PEMDocument.parseMultiple(pemString: pem)
    } catch {
        throw CertsError.malformedCertificate(path: path, reason: "\(error)")
    }
    guard !documents.isEmpty else { throw CertsError.malformedCertificate(path: path, reason: "it holds no certificate") }
    return try documents.enumerated().map { i, document in
        guard document.discriminator == "CERTIFICATE" else {
            throw CertsError.malformedCertificate(path: path, reason: "block \(i + 1) is a \(document.discriminator), not a CERTIFICATE")
        }
        do {
            return try Certificate(derEncoded: document.derBytes)
        } catch {
            throw CertsError.malformedCertificate(path: path, reason: "block \(i + 1): \(error)")
        }
    }
}

/// The PEM text of a trust bundle, certificates in the given order.
func bundlePEM(_ certificates: [Certificate]) throws -> String {
    try certificates.map { try $0.serializeAsPEM().pemString }.joined(separator: "\n") + "\n"
}

/// What a report says of one certificate (`GET /v1/tls`, `peer certs rotate`): enough to tell two
/// certificates apart and to see when one expires, nothing secret.
public struct CertificateInfo: Codable, Sendable, Hashable {
    public var subject: String
    public var issuer: String
    /// The serial number in hex.
    public var serial: String
    public var notAfterMs: Int64
    /// SHA-256 of the DER encoding, in hex: the certificate's fingerprint.
    public var sha256: String

    public init(subject: String, issuer: String, serial: String, notAfterMs: Int64, sha256: String) {
        self.subject = subject
        self.issuer = issuer
        self.serial = serial
        self.notAfterMs = notAfterMs
        self.sha256 = sha256
    }

    public init(_ certificate: Certificate) {
        var serializer = DER.Serializer()
        let der: [UInt8] = (try? serializer.serialize(certificate)).map { serializer.serializedBytes } ?? []
        self.init(
            subject: certificate.subject.description, issuer: certificate.issuer.description,
            serial: certificate.serialNumber.bytes.map { String(format: "%02x", $0) }.joined(),
            notAfterMs: Int64(certificate.notValidAfter.timeIntervalSince1970 * 1000),
            sha256: SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined())
    }
}

/// The issuer among `trusted` of `leaf`: the CA whose name is the leaf's issuer and whose key
/// signed it (two CAs of one cluster have different names, but the signature decides).
public func issuingCA(of leaf: Certificate, among trusted: [Certificate]) -> Certificate? {
    trusted.first { $0.subject == leaf.issuer && $0.publicKey.isValidSignature(leaf.signature, for: leaf) }
}
