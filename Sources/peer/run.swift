import ArgumentParser
import Failpoints
import Foundation
import Logging
import PeerConfig

/// `peer run --config FILE --id ID`: one peer in the foreground. `peer run --join DIR ...`: an
/// instance a provider started, from the files the leader handed it (docs/providers.md).
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one peer of the cluster in the foreground (SIGTERM or Ctrl-C stops it gracefully).")

    @Option(help: "The cluster configuration file (docs/configuration.md).")
    var config: String?

    @Option(help: "This peer's id in the configuration.")
    var id: UInt64?

    @Option(help: "Join a running cluster from this directory of join files (a provider's {bootstrap}); needs --data, --peer and --api.")
    var join: String?

    @Option(help: "With --join: this instance's data directory (a provider's {dir}).")
    var data: String?

    @Option(help: "With --join: this instance's peer-to-peer address, host:port.")
    var peer: String?

    @Option(help: "With --join: this instance's admin API address, host:port.")
    var api: String?

    @Option(help: "With --join: where this instance's NGINX listens, host:port.")
    var router: String?

    @Option(help: "With --join: the router's control address (default 127.0.0.1 at the router's port + 1000).")
    var routerControl: String?

    @Option(help: "With --join: the components' host and base port.")
    var components: String?

    @Flag(help: "This configured peer joins the running cluster instead of founding it: with no log in its data directory it starts with no configuration and waits to be added (`peer members add ID`). For a new host, or one whose data was lost (docs/operations.md §Recovery).")
    var existing = false

    @Option(help: "When stderr is a file (`peer up` appends to runDir/peer-ID.log), keep it under this many MiB: copied to .1 and truncated (0: never).")
    var logMaxMb: Int = 64

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error, critical")
        }
        if let unknown = Failpoint.unknownSetting {
            throw ValidationError("\(Failpoint.environmentVariable)=\(unknown) names no failpoint; `peer failpoints` lists them")
        }
        if case .failure(let e) = PeerVersion.range { throw ValidationError(e.description) }
        guard (0...65_536).contains(logMaxMb) else { throw ValidationError("--log-max-mb must be 0...65536, got \(logMaxMb)") }
        var settings = try resolve()
        settings.logBytesMax = Int64(logMaxMb) << 20
        let id = settings.selfID
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

    func resolve() throws -> RuntimeSettings {
        if let join {
            guard !existing else { throw ValidationError("--existing is for a configured peer (--config, --id); an instance started with --join always joins") }
            guard config == nil, id == nil else { throw ValidationError("--join takes the config and the id from its join files: drop --config and --id") }
            guard let data else { throw ValidationError("--join needs --data DIR (the instance's data directory)") }
            func address(_ flag: String, _ value: String?) throws -> HostPort? {
                guard let value else { return nil }
                guard let h = HostPort(value) else { throw ValidationError("--\(flag) \(value): \(HostPort.reasonInvalid(value) ?? "not host:port")") }
                return h
            }
            guard let peer = try address("peer", peer), let api = try address("api", api) else {
                throw ValidationError("--join needs --peer HOST:PORT and --api HOST:PORT")
            }
            let addresses = JoinFiles.Addresses(
                peer: peer, api: api, router: try address("router", router), routerControl: try address("router-control", routerControl),
                components: try address("components", components))
            return try JoinFiles.settings(directory: join, dataDirectory: data, addresses: addresses)
        }
        guard let config, let id else { throw ValidationError("peer run needs --config FILE --id ID (or --join DIR)") }
        for (flag, value) in [("data", data), ("peer", peer), ("api", api), ("router", router), ("router-control", routerControl), ("components", components)] where value != nil {
            throw ValidationError("--\(flag) is for --join; a configured peer takes its addresses from --config")
        }
        var settings = try ClusterContext(configPath: config).settings(for: id)
        settings.existing = existing
        return settings
    }
}
