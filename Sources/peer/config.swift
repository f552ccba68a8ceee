import ArgumentParser

/// `peer config ...`: the cluster configuration file (docs/configuration.md).
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check a cluster configuration file, or list the keys one may hold (docs/configuration.md).",
        subcommands: [ConfigValidate.self, ConfigKeys.self]
    )
}
