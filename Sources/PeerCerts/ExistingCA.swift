import X509

/// The cluster CA as found in a directory: its certificate, and its signing half when `ca.key`
/// is there too (an operator may keep the key elsewhere once everything is issued, docs/tls.md).
public struct ExistingCA: Sendable {
    public let certificate: Certificate
    /// Every CA `ca.pem` holds: `certificate` alone, or the old and the new one during a rotation.
    public let trusted: [Certificate]
    /// The cluster the CA was made for (its certificate's Organization).
    public let clusterID: String
    /// The CA able to issue; nil when only `ca.pem` is in the directory.
    public let authority: CertificateAuthority?

    /// Reads the CA in `directory`: nil when neither `ca.pem` nor `ca.key` is there. A key
    /// without its certificate is an error (nothing can be checked or issued with it), and so is
    /// a certificate and key that do not belong together.
    public static func find(directory: String) throws -> ExistingCA? {
        let certPath = CertificateFiles.join(directory, CertificateFiles.caCertificate)
        let keyPath = CertificateFiles.join(directory, CertificateFiles.caPrivateKey)
        switch PairOnDisk(certificatePath: certPath, privateKeyPath: keyPath) {
        case .absent:
            return nil
        case .present:
            let authority = try CertificateAuthority.load(directory: directory)
            return ExistingCA(
                certificate: authority.certificate, trusted: try loadCertificates(path: certPath), clusterID: authority.clusterID,
                authority: authority)
        case .incomplete(let present, let missing):
            guard present == certPath else { throw CertsError.incompletePair(present: present, missing: missing) }
            let trusted = try loadCertificates(path: certPath)
            let certificate = trusted[trusted.count - 1]
            guard let clusterID = CertificateAuthority.clusterID(ofCA: certificate) else {
                throw CertsError.malformedCertificate(path: certPath, reason: "no cluster id in its Organization")
            }
            return ExistingCA(certificate: certificate, trusted: trusted, clusterID: clusterID, authority: nil)
        }
    }
}
