import ArgumentParser

/// `peer certs ...`: the cluster's own certificate authority.
struct CertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Create the cluster CA, issue, list and rotate peer and client certificates (docs/tls.md).",
        subcommands: [CertsInit.self, CertsIssuePeer.self, CertsIssueClient.self, CertsList.self, CertsRotate.self]
    )
}
