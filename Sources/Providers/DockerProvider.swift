import Foundation
import LoopbackHTTP
import NIOHTTP1

/// The seed's provider: each instance is a container of a Docker Engine, spoken to through the
/// Engine's HTTP API on its Unix socket (API 1.41, Engine 20.10+; no CLI). Host networking, so
/// the instance's ports come from this host's `PortPlan` like the process provider's; an init
/// process as PID 1 (`Init: true`), so SIGTERM reaches `peer` and `stop` does not wait out its
/// timeout. Every container is named `peer-<cluster>-<instance>` and labelled with the cluster,
/// the instance and its addresses, so any leader lists what exists from the engine alone. The
/// bootstrap files are copied into the created container before it starts (never in its
/// environment, which `docker inspect` shows).
public struct DockerProvider: InstanceProvider {
    public struct Settings: Sendable, Hashable {
        /// The engine's socket.
        public var socketPath: String = "/var/run/docker.sock"
        /// An image holding `peer` and what it runs (`make image` builds one from this tree).
        public var image: String
        public var ports: PortPlan
        /// The container's argv; placeholders as `CommandTemplate` (`{bootstrap}` is
        /// `/bootstrap`, `{dir}` is `/data`, both inside the container).
        public var command: CommandTemplate
        /// `stop` sends SIGTERM, waits this long, then SIGKILL.
        public var stopTimeoutSeconds: Int = 10
        /// Each Engine call (but `stop`) must answer within this.
        public var requestTimeout: Duration = .seconds(30)

        public init(image: String, ports: PortPlan, command: CommandTemplate) {
            self.image = image
            self.ports = ports
            self.command = command
        }
    }

    public static let clusterLabel = "io.peer.cluster"
    public static let instanceLabel = "io.peer.instance"
    public static let addressesLabel = "io.peer.addresses"
    static let bootstrapDirectory = "/bootstrap"
    static let dataDirectory = "/data"

    public let kind = "docker"
    public let settings: Settings
    let engine: DockerEngine

    public init(_ settings: Settings) {
        self.settings = settings
        engine = DockerEngine(socketPath: settings.socketPath, timeout: settings.requestTimeout)
    }

    static func containerName(_ clusterID: String, _ instanceID: String) -> String { "peer-\(clusterID)-\(instanceID)" }

    public func create(_ request: ProvisionRequest) async throws(ProviderError) -> ProvidedInstance {
        try Bootstrap.validate(request, provider: kind)
        let name = Self.containerName(request.clusterID, request.instanceID)
        let op = Operation(provider: kind, name: "create", instance: request.instanceID)
        if let existing = try await inspect(name, op) {
            if existing.state == .running { return existing }
            try await upload(request.bootstrap, to: name, op)
            try await start(name, op)
            return ProvidedInstance(clusterID: existing.clusterID, instanceID: existing.instanceID, addresses: existing.addresses, state: .running, handle: existing.handle)
        }
        let taken = try await containers(label: Self.clusterLabel, op).reduce(into: Set<Int>()) { $0.formUnion(settings.ports.ports(of: $1.addresses)) }
        let base = try settings.ports.allocate(taken: taken, provider: kind, instance: request.instanceID)
        let addresses = settings.ports.addresses(base: base)
        let argv = settings.command.argv(
            cluster: request.clusterID, id: request.instanceID, bootstrap: Self.bootstrapDirectory, dir: Self.dataDirectory,
            host: settings.ports.host, addresses: addresses)
        let labels = [
            Self.clusterLabel: request.clusterID, Self.instanceLabel: request.instanceID,
            Self.addressesLabel: String(decoding: (try? JSONEncoder.sorted.encode(addresses)) ?? Data(), as: UTF8.self),
        ]
        let body: [String: Any] = [
            "Image": settings.image, "Cmd": argv, "Labels": labels, "StopTimeout": settings.stopTimeoutSeconds,
            "HostConfig": ["NetworkMode": "host", "Init": true] as [String: Any],
        ]
        let reply = try await engine.call(.POST, "/containers/create?name=\(name)", json: body, op)
        switch reply.status {
        case 201:
            break
        case 404:
            throw op.error(.refused, "image \"\(settings.image)\" does not exist in the engine at \(settings.socketPath); `make image` builds it and `make image-load` loads it")
        case 409:
            // Created meanwhile by another call for the same id: that one is the instance.
            break
        default:
            throw op.error(.refused, "creating container \(name): \(DockerEngine.message(reply))")
        }
        try await upload(request.bootstrap, to: name, op)
        try await start(name, op)
        guard let created = try await inspect(name, op) else {
            throw op.error(.refused, "container \(name) vanished right after it was started")
        }
        return created
    }

    public func destroy(clusterID: String, instanceID: String) async throws(ProviderError) {
        try Bootstrap.validateIDs(clusterID: clusterID, instanceID: instanceID, provider: kind, operation: "destroy")
        let name = Self.containerName(clusterID, instanceID)
        let op = Operation(provider: kind, name: "destroy", instance: instanceID)
        let stop = try await engine.call(.POST, "/containers/\(name)/stop?t=\(settings.stopTimeoutSeconds)", op, timeout: .seconds(Int64(settings.stopTimeoutSeconds) + 30))
        guard [204, 304, 404].contains(stop.status) else { throw op.error(.refused, "stopping \(name): \(DockerEngine.message(stop))") }
        let remove = try await engine.call(.DELETE, "/containers/\(name)?force=true&v=true", op)
        guard [204, 404].contains(remove.status) else { throw op.error(.refused, "removing \(name): \(DockerEngine.message(remove))") }
    }

    public func list(clusterID: String) async throws(ProviderError) -> [ProvidedInstance] {
        try Bootstrap.validateIDs(clusterID: clusterID, instanceID: nil, provider: kind, operation: "list")
        return try await containers(label: "\(Self.clusterLabel)=\(clusterID)", Operation(provider: kind, name: "list", instance: nil))
            .sorted { instanceIDOrder($0.instanceID, $1.instanceID) }
    }

    // MARK: - Engine calls

    struct Operation {
        let provider: String
        let name: String
        let instance: String?
        func error(_ reason: ProviderError.Reason, _ message: String) -> ProviderError { ProviderError(provider, name, instance: instance, reason, message) }
    }

    private func upload(_ files: [String: String], to name: String, _ op: Operation) async throws(ProviderError) {
        var tar = TarArchive()
        tar.addDirectory(String(Self.bootstrapDirectory.dropFirst()))
        tar.addDirectory(String(Self.dataDirectory.dropFirst()))
        for (file, contents) in files.sorted(by: { $0.key < $1.key }) {
            tar.addFile(String(Self.bootstrapDirectory.dropFirst()) + "/" + file, contents: Array(contents.utf8))
        }
        let reply = try await engine.call(.PUT, "/containers/\(name)/archive?path=/", body: tar.finished, contentType: "application/x-tar", op)
        guard reply.status == 200 else { throw op.error(.refused, "copying the bootstrap files into \(name): \(DockerEngine.message(reply))") }
    }

    private func start(_ name: String, _ op: Operation) async throws(ProviderError) {
        let reply = try await engine.call(.POST, "/containers/\(name)/start", op)
        guard reply.status == 204 || reply.status == 304 else { throw op.error(.refused, "starting \(name): \(DockerEngine.message(reply))") }
    }

    private func inspect(_ name: String, _ op: Operation) async throws(ProviderError) -> ProvidedInstance? {
        let reply = try await engine.call(.GET, "/containers/\(name)/json", op)
        if reply.status == 404 { return nil }
        guard reply.status == 200 else { throw op.error(.refused, "inspecting \(name): \(DockerEngine.message(reply))") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any],
              let config = object["Config"] as? [String: Any], let state = object["State"] as? [String: Any], let id = object["Id"] as? String
        else { throw op.error(.badAnswer, "the engine's description of \(name) has no Id, Config or State") }
        return try instance(id: id, labels: config["Labels"] as? [String: String] ?? [:], running: state["Running"] as? Bool ?? false, op)
    }

    /// The containers carrying `label` (`key` or `key=value`), running or not.
    private func containers(label: String, _ op: Operation) async throws(ProviderError) -> [ProvidedInstance] {
        let filters = String(decoding: (try? JSONEncoder.sorted.encode(["label": [label]])) ?? Data(), as: UTF8.self)
        let query = filters.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let reply = try await engine.call(.GET, "/containers/json?all=true&filters=\(query)", op)
        guard reply.status == 200 else { throw op.error(.refused, "listing containers: \(DockerEngine.message(reply))") }
        guard let items = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [[String: Any]] else {
            throw op.error(.badAnswer, "the engine's container list is not a JSON array")
        }
        var instances: [ProvidedInstance] = []
        for item in items {
            guard let id = item["Id"] as? String else { throw op.error(.badAnswer, "a listed container has no Id") }
            instances.append(try instance(id: id, labels: item["Labels"] as? [String: String] ?? [:], running: (item["State"] as? String) == "running", op))
        }
        return instances
    }

    private func instance(id: String, labels: [String: String], running: Bool, _ op: Operation) throws(ProviderError) -> ProvidedInstance {
        guard let cluster = labels[Self.clusterLabel], let instance = labels[Self.instanceLabel], let raw = labels[Self.addressesLabel],
              let addresses = try? JSONDecoder().decode(InstanceAddresses.self, from: Data(raw.utf8))
        else { throw op.error(.badAnswer, "container \(id.prefix(12)) lacks the labels \(Self.clusterLabel), \(Self.instanceLabel) and \(Self.addressesLabel) this provider sets") }
        return ProvidedInstance(clusterID: cluster, instanceID: instance, addresses: addresses, state: running ? .running : .stopped, handle: "container \(id.prefix(12))")
    }
}

/// The Docker Engine API over its Unix socket, through the one loopback client.
public struct DockerEngine: Sendable {
    public static let apiVersion = "v1.41"
    static let responseBytesMax = 8 << 20

    public let socketPath: String
    public let timeout: Duration

    public init(socketPath: String, timeout: Duration = .seconds(30)) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    func call(
        _ method: HTTPMethod, _ path: String, json: [String: Any]? = nil, body: [UInt8] = [], contentType: String? = nil,
        _ op: DockerProvider.Operation, timeout: Duration? = nil
    ) async throws(ProviderError) -> LoopbackHTTPReply {
        var bytes = body
        var headers: [(String, String)] = []
        if let json {
            guard let data = try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]) else {
                throw op.error(.invalidRequest, "cannot encode the request to the engine")
            }
            bytes = Array(data)
            headers.append(("Content-Type", "application/json"))
        }
        if let contentType { headers.append(("Content-Type", contentType)) }
        do {
            return try await LoopbackHTTPClient.shared.request(
                .unixSocket(socketPath), method: method, path: "/\(Self.apiVersion)\(path)", headers: headers, body: bytes,
                timeout: timeout ?? self.timeout, responseBytesMax: Self.responseBytesMax)
        } catch {
            switch error {
            case .connect:
                throw op.error(.unavailable, "cannot reach the Docker engine at unix://\(socketPath) (\(error)); start dockerd, or set provider.docker.socket")
            case .timedOut:
                throw op.error(.timedOut, "the Docker engine at unix://\(socketPath) did not answer \(method.rawValue) \(path.prefix(80)) within \(timeout ?? self.timeout)")
            case .responseTooLarge, .protocolError:
                throw op.error(.badAnswer, "the Docker engine at unix://\(socketPath): \(error)")
            }
        }
    }

    /// The engine's `{"message": ...}` or the status.
    static func message(_ reply: LoopbackHTTPReply) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any], let message = object["message"] as? String {
            return "HTTP \(reply.status): \(message)"
        }
        return "HTTP \(reply.status)"
    }

    /// Whether the engine answers `/_ping`; the reason when it does not.
    public func ping() async -> String? {
        let op = DockerProvider.Operation(provider: "docker", name: "ping", instance: nil)
        do {
            let reply = try await call(.GET, "/_ping", op)
            return reply.status == 200 ? nil : "the engine answered /_ping with HTTP \(reply.status)"
        } catch {
            return error.message
        }
    }

    /// `docker import`: makes image `repository:tag` of a root file system tarball.
    public func importImage(rootFileSystemTar: [UInt8], repository: String, tag: String) async throws(ProviderError) {
        let op = DockerProvider.Operation(provider: "docker", name: "import image", instance: nil)
        let reply = try await call(.POST, "/images/create?fromSrc=-&repo=\(repository)&tag=\(tag)", body: rootFileSystemTar, contentType: "application/x-tar", op, timeout: .seconds(300))
        guard reply.status == 200, !reply.bodyText.contains("\"error\"") else {
            throw op.error(.refused, "importing \(repository):\(tag): \(DockerEngine.message(reply)) \(reply.bodyText.prefix(300))")
        }
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }
}
