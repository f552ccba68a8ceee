import ArgumentParser
import PeerCerts

/// `peer certs issue-client`: a client-auth-only certificate for an operator or tool.
struct CertsIssueClient: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue-client",
        abstract: "Issue client-<NAME>.pem/.key signed by the CA in DIR (SAN: peer://<cluster>/client/<NAME>).")

    @Option(help: "Directory holding the CA; the new files are written there unless --out is given.")
    var dir: String

    @Option(help: "Client name: 1-63 of [A-Za-z0-9._-].")
    var name: String

    @Option(help: "Validity in days.")
    var days: Int = Validity.leafDaysDefault

    @Option(help: "Directory for the new files (default: DIR).")
    var out: String?

    func run() throws {
        guard days > 0 else { throw ValidationError("--days must be positive") }
        let issued = try runReportingCertsError {
            let ca = try CertificateAuthority.load(directory: dir)
            return try ca.issueClient(name: name, validity: .days(days), outputDirectory: out)
        }
        print("issued \(issued.certificatePath) and \(issued.privateKeyPath) (0600), valid until \(issued.certificate.notValidAfter)")
    }
}
