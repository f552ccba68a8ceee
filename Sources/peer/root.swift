import ArgumentParser

/// The `peer` executable's root. Other engineers add their groups to `subcommands`.
@main
struct PeerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer",
        abstract: "Cluster controller: Raft peers, certificates and operations.",
        subcommands: [
            Init.self, RunCommand.self, UpCommand.self, DownCommand.self, StatusCommand.self, TenantsCommand.self, CertsCommand.self,
            BrokerCommand.self, ConfigCommand.self, BenchCommand.self, InstancesCommand.self, FailpointsCommand.self, EventsCommand.self,
            BalancerCommand.self, MembersCommand.self, LeaderCommand.self, SnapshotCommand.self, RecoverCommand.self, VersionCommand.self, UpgradeCommand.self, DowngradeCommand.self,
            HistoryCommand.self,
        ]
    )
}
