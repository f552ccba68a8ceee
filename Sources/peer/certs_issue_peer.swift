import ArgumentParser
import PeerCerts

/// `peer certs issue-peer`: a certificate for one Raft peer.
struct CertsIssuePeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue-peer",
        abstract: "Issue peer-<ID>.pem/.key signed by the CA in DIR (SAN: peer://<cluster>/node/<ID>, IPs, DNS names).")

    @Option(help: "Directory holding the CA; the new files are written there unless --out is given.")
    var dir: String

    @Option(name: .customLong("node-id"), help: "The peer's Raft node id (>= 1).")
    var nodeID: UInt64

    @Option(name: .customLong("ip"), help: "An IP address the peer is reached at (repeatable).")
    var ips: [String] = []

    @Option(name: .customLong("dns"), help: "A DNS name the peer is reached at (repeatable).")
    var dnsNames: [String] = []

    @Option(help: "Validity in days.")
    var days: Int = Validity.leafDaysDefault

    @Option(help: "Directory for the new files (default: DIR).")
    var out: String?

    func run() throws {
        guard days > 0 else { throw ValidationError("--days must be positive") }
        let issued = try runReportingCertsError {
            let ca = try CertificateAuthority.load(directory: dir)
            return try ca.issuePeer(nodeID: nodeID, ipAddresses: ips, dnsNames: dnsNames, validity: .days(days), outputDirectory: out)
        }
        print("issued \(issued.certificatePath) and \(issued.privateKeyPath) (0600), valid until \(issued.certificate.notValidAfter)")
    }
}
