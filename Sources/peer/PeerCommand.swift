import ArgumentParser

/// The `peer` executable's root. Other engineers add their groups to `subcommands`.
@main
struct PeerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer",
        abstract: "Cluster controller: Raft peers, certificates and operations.",
        subcommands: [
            Init.self, RunCommand.self, UpCommand.self, DownCommand.self, StatusCommand.self, TenantsCommand.self, CertsCommand.self,
            BrokerCommand.self, ConfigCommand.self, BenchCommand.self,
        ]
    )
}

/// `peer certs ...`: the cluster's own certificate authority.
struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Create the cluster CA and issue peer and client certificates (docs/tls.md).",
        subcommands: [CertsInit.self, CertsIssuePeer.self, CertsIssueClient.self, CertsList.self]
    )
}
