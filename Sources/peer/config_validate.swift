import ArgumentParser
import PeerConfig

/// `peer config validate --config FILE`: loads FILE exactly as `peer run` does, without starting
/// anything; exits 1 with the file, line, key path and reason of the first problem.
struct ConfigValidate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check FILE as every peer would read it; print its first problem with the line and key path.")

    @Option(help: ArgumentHelp("The cluster configuration file (YAML).", valueName: "file"))
    var config: String

    func run() throws {
        let cluster: ClusterConfig
        do {
            cluster = try ClusterConfig.load(path: config)
        } catch {
            throw CLIError("\(error)")
        }
        let routers = cluster.peers.filter { $0.routerAddress != nil }.count
        let supervised = cluster.peers.filter { $0.componentAddress != nil }.count
        let plans = cluster.catalog.services.reduce(0) { $0 + $1.plans.count }
        print("\(config): valid: cluster \(cluster.cluster), \(cluster.peers.count) peers (\(routers) with a router, \(supervised) with components), \(cluster.components.count) component types, \(plans) plans")
    }
}
