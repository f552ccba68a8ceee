import ArgumentParser
import PeerConfig

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
