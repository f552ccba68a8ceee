import ArgumentParser
import PeerCerts

/// `peer certs init`: creates ca.pem and ca.key; never replaces an existing CA.
struct CertsInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Create the cluster CA (ECDSA P-256) in DIR. Refuses to overwrite one.")

    @Option(help: "Directory for ca.pem and ca.key (created 0700 if missing).")
    var dir: String

    @Option(name: .customLong("cluster-id"), help: "Cluster id: 1-63 of [A-Za-z0-9._-].")
    var clusterID: String

    @Option(help: "Validity in days.")
    var days: Int = Validity.caDaysDefault

    func run() throws {
        guard days > 0 else { throw ValidationError("--days must be positive") }
        let ca = try runReportingCertsError { try CertificateAuthority.create(directory: dir, clusterID: clusterID, validity: .days(days)) }
        print("created cluster CA for \(ca.clusterID): \(ca.certificatePath) (key \(CertificateFiles.caPrivateKey), mode 0600)")
        print("valid until \(ca.certificate.notValidAfter)")
    }
}

/// Runs a certificate operation. `CertsError` is CustomStringConvertible, so ArgumentParser
/// prints it as one "Error: ..." line and exits 1, without the usage text a ValidationError adds
/// (the arguments were fine; the files or values were not).
func runReportingCertsError<T>(_ body: () throws -> T) throws -> T {
    try body()
}
