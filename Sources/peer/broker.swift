import ArgumentParser

/// `peer broker ...`: the Open Service Broker API's operator commands.
struct BrokerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "The Open Service Broker API (/v2): what a platform needs to register this cluster (docs/broker.md).",
        subcommands: [BrokerCredentials.self]
    )
}
