import Foundation
import X509

/// One certificate file as `peer certs list` shows it.
public struct CertificateSummary: Sendable {
    public var file: String
    public var subject: String
    public var subjectAlternativeNames: [String]
    public var notBefore: Date
    public var notAfter: Date
    public var isCertificateAuthority: Bool

    public func isExpired(at now: Date) -> Bool { now >= notAfter }

    /// Whole days until expiry, negative once expired.
    public func daysLeft(at now: Date) -> Int { Int((notAfter.timeIntervalSince(now) / 86_400).rounded(.down)) }
}

/// Lists every `*.pem` certificate in `directory`, sorted by file name. A file that does not
/// parse is an error naming it: a listing that skipped it would hide the problem.
public func listCertificates(directory: String) throws -> [CertificateSummary] {
    let names: [String]
    do {
        names = try FileManager.default.contentsOfDirectory(atPath: directory)
    } catch {
        throw CertsError.unreadableFile(path: directory, reason: "\(error.localizedDescription)")
    }
    // A bundle (`ca.pem` during a CA rotation) shows each of its certificates as `FILE#N`.
    return try names.filter { $0.hasSuffix(".pem") }.sorted().flatMap { name in
        let certificates = try loadCertificates(path: CertificateFiles.join(directory, name))
        return certificates.enumerated().map { (i, cert) in (certificates.count == 1 ? name : "\(name)#\(i + 1)", cert) }
    }.map { name, cert in
        CertificateSummary(
            file: name, subject: cert.subject.description,
            subjectAlternativeNames: (try? cert.extensions.subjectAlternativeNames)??.map(describeName) ?? [],
            notBefore: cert.notValidBefore, notAfter: cert.notValidAfter,
            isCertificateAuthority: isCA(cert))
    }
}

private func isCA(_ cert: Certificate) -> Bool {
    if case .isCertificateAuthority = (try? cert.extensions.basicConstraints) ?? nil { return true }
    return false
}
