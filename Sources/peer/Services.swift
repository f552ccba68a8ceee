import ChildProcesses
import Leader
import Logging
import PeerAPI
import PeerNode
import PeerTransport
import ServiceLifecycle

// The long-running parts of `peer run`, each a swift-service-lifecycle `Service`. `PeerRuntime`
// starts them in one `ServiceGroup` in the order transport, node, data plane, leader, API; on
// SIGTERM or SIGINT the group shuts them down gracefully in the reverse order, each after the
// one above it finished: the API stops accepting and finishes the requests in flight (against a
// live node), the leader's loops stop, the components and NGINX stop gracefully, the node's
// thread stops (what still waits fails with a clear error), the transport closes. If one of
// them fails (the API cannot bind its port), the group cancels the others and `peer run` exits
// non-zero with the cause.

/// The transport: reports unreachable peers to the node until shutdown, then closes.
struct TransportService: Service, CustomStringConvertible {
    let transport: PeerTransport
    let node: PeerNode
    let logger: Logger
    var description: String { "transport" }

    func run() async throws {
        let transport = self.transport, node = self.node
        await cancelWhenGracefulShutdown {
            for await event in transport.events {
                if case .peerUnreachable(let id, _) = event { node.reportUnreachable(id) }
            }
        }
        await transport.shutdown()
        logger.info("stopped: transport")
    }
}

/// The node's Ready loop (started before the group): stops on shutdown.
struct NodeService: Service, CustomStringConvertible {
    let node: PeerNode
    let logger: Logger
    var description: String { "node" }

    func run() async throws {
        try? await gracefulShutdown()
        await node.stop()
        logger.info("stopped: node")
    }
}

/// This instance's components and NGINX, reconciled to the applied state until shutdown; then
/// they stop gracefully (requests in flight finish).
struct DataPlaneService: Service, CustomStringConvertible {
    let dataPlane: DataPlane
    let node: PeerNode
    let logger: Logger
    var description: String { "data plane" }

    func run() async throws {
        let dataPlane = self.dataPlane, node = self.node
        if !dataPlane.isEmpty {
            await cancelWhenGracefulShutdown { await dataPlane.run(node: node) }
        } else {
            try? await gracefulShutdown()
        }
        await dataPlane.stop()
        logger.info("stopped: data plane")
    }
}

/// The leader's loops (ADR 0010): they act while this peer leads; cancelled on shutdown.
struct LeaderService: Service, CustomStringConvertible {
    let leader: Leader
    let logger: Logger
    var description: String { "leader" }

    func run() async throws {
        let leader = self.leader
        await cancelWhenGracefulShutdown { await leader.run() }
        logger.info("stopped: leader loops")
    }
}

/// The admin and broker HTTPS API: serves until shutdown, then finishes what is in flight. A
/// failure to serve (its port taken) fails the group.
struct APIService: Service, CustomStringConvertible {
    let api: AdminServer
    /// `host:port` from the configuration, named when serving fails.
    let address: String
    let logger: Logger
    var description: String { "admin API" }

    func run() async throws {
        let api = self.api
        do {
            try await withGracefulShutdownHandler {
                try await api.run()
            } onGracefulShutdown: {
                Task { await api.shutdown() }
            }
        } catch {
            throw CLIError("the admin API cannot serve on \(address) (the config's api address): \(error)")
        }
        logger.info("stopped: admin API")
    }
}

/// Keeps this peer's own log bounded when stderr is a file (`peer up` appends each peer's
/// output to `runDir/peer-ID.log`): every 10 s, past `maxBytes` it is copied to `.1` and
/// truncated. Under systemd stderr is the journal's pipe and this does nothing.
struct LogBoundService: Service, CustomStringConvertible {
    let maxBytes: Int64
    let logger: Logger
    var description: String { "log bound" }

    func run() async throws {
        // A service that returns stops the whole group (ServiceGroup's default): with nothing
        // to bound (stderr a pipe or a terminal, or no bound), it waits for the shutdown.
        guard maxBytes > 0, let path = LogRotation.regularFile(ofDescriptor: 2) else {
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if let why = LogRotation.copyTruncateIfLarger(path: path, maxBytes: maxBytes) {
                    logger.warning("cannot rotate this peer's log \(path): \(why)")
                }
                try? await Task.sleep(for: .seconds(10))
            }
        }
    }
}
