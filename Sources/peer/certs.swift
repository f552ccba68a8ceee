import ArgumentParser

/// `peer certs ...`: the cluster's own certificate authority.
struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Create the cluster CA and issue peer and client certificates (docs/tls.md).",
        subcommands: [CertsInit.self, CertsIssuePeer.self, CertsIssueClient.self, CertsList.self]
    )
}
