import ArgumentParser
import Foundation
import PeerCerts

/// `peer certs list`: every certificate in DIR with its SANs and expiry.
struct CertsList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List certificates in DIR: subject, SANs, expiry (expired ones marked).")

    @Option(help: "Directory to list.")
    var dir: String

    @Option(help: "Output format: table or json.")
    var output: OutputFormat = .table

    enum OutputFormat: String, ExpressibleByArgument { case table, json }

    func run() throws {
        let now = Date()
        let summaries = try runReportingCertsError { try listCertificates(directory: dir) }
        let iso = ISO8601DateFormatter()
        switch output {
        case .json:
            let rows: [[String: Any]] = summaries.map { s in
                ["file": s.file, "subject": s.subject, "sans": s.subjectAlternativeNames, "ca": s.isCertificateAuthority,
                 "notBefore": iso.string(from: s.notBefore), "notAfter": iso.string(from: s.notAfter),
                 "expired": s.isExpired(at: now), "daysLeft": s.daysLeft(at: now)]
            }
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        case .table:
            let header = ["FILE", "SUBJECT", "SANS", "NOT AFTER", "STATUS"]
            let rows = summaries.map { s -> [String] in
                let status = s.isExpired(at: now) ? "EXPIRED" : "\(s.daysLeft(at: now))d left"
                return [s.file, s.subject, s.subjectAlternativeNames.isEmpty ? "-" : s.subjectAlternativeNames.joined(separator: ","),
                        iso.string(from: s.notAfter), s.isCertificateAuthority ? "\(status) (CA)" : status]
            }
            printTable(header: header, rows: rows)
            print("\(summaries.count) certificate(s) in \(dir), as of \(iso.string(from: now))")
        }
    }
}
