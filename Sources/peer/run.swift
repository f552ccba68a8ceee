import ArgumentParser
import Failpoints
import Foundation
import Logging

/// `peer run --config FILE --id ID`: one peer in the foreground.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one peer of the cluster in the foreground (SIGTERM or Ctrl-C stops it gracefully).")

    @Option(help: "The cluster configuration file (docs/configuration.md).")
    var config: String

    @Option(help: "This peer's id in the configuration.")
    var id: UInt64

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error, critical")
        }
        if let unknown = Failpoint.unknownSetting {
            throw ValidationError("\(Failpoint.environmentVariable)=\(unknown) names no failpoint; `peer failpoints` lists them")
        }
        let ctx = try ClusterContext(configPath: config)
        let settings = try ctx.settings(for: id)
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var logger = Logger(label: "peer")
        logger[metadataKey: "node"] = "\(id)"
        do {
            try await PeerRuntime.run(settings, logger: logger)
        } catch {
            logger.critical("peer \(id) cannot run: \(error)")
            throw ExitCode(1)
        }
    }
}
