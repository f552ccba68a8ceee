import ArgumentParser
import Foundation
import PeerConfig

/// `peer broker credentials --config FILE [--output json]`: the URL, user, password and CA a
/// platform registers the broker with (e.g. `cf create-service-broker`). It reads the password
/// file `peer init` wrote; it prints the password, so it is for the operator's terminal or a
/// secret store, never a log.
struct BrokerCredentials: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credentials",
        abstract: "Print the broker URL, username, password and CA file for FILE's cluster.")

    @Option(help: ArgumentHelp("The cluster configuration file (YAML).", valueName: "file"))
    var config: String

    @Option(help: "table or json.")
    var output: OutputFormat = .table

    func run() throws {
        let cluster: ClusterConfig
        do {
            cluster = try ClusterConfig.load(path: config)
        } catch {
            throw CLIError("\(error)")
        }
        let broker = cluster.broker
        guard FileManager.default.fileExists(atPath: broker.passwordFile) else {
            throw CLIError("broker.passwordFile \(broker.passwordFile) does not exist: run `peer init --config \(config)`, or read it where it was moved to")
        }
        let password = try BrokerFiles.readPrivate(broker.passwordFile, what: "broker.passwordFile")
        let urls = cluster.peers.map { "https://\($0.apiAddress)" }
        switch output {
        case .json:
            let object: [String: Any] = [
                "url": urls[0], "urls": urls, "username": broker.username, "password": password, "caFile": cluster.caCertificatePath,
                "apiVersion": "2.17",
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        case .table:
            printTable(header: ["KEY", "VALUE"], rows: [
                ["url", urls[0]], ["urls", urls.joined(separator: ",")], ["username", broker.username],
                ["password", password], ["caFile", cluster.caCertificatePath],
            ])
        }
    }
}
