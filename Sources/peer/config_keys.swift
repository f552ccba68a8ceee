import ArgumentParser
import PeerConfig

/// `peer config ...`: the cluster configuration file (docs/configuration.md).
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check a cluster configuration file, or list the keys one may hold (docs/configuration.md).",
        subcommands: [ConfigValidate.self, ConfigKeys.self]
    )
}

/// `peer config keys`: every key path the configuration file accepts, one per line, from the
/// same lists the loader refuses unknown keys with (`.ci/check-docs` holds the docs to it).
struct ConfigKeys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Print every key path a configuration file accepts (peers[i].api, timing.tickMs, ...).")

    func run() {
        for path in ClusterConfig.keyPaths { print(path) }
    }
}
