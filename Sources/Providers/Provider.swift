import Foundation

/// The provider (the seed's DFP): creates, lists and destroys the machines (or processes, or
/// containers) that run one `peer` each. The leader calls it only for intents already committed
/// to the Raft log; every call is idempotent by instance id, so a new leader can repeat the call
/// its predecessor may or may not have finished. docs/providers.md.
public protocol InstanceProvider: Sendable {
    /// `process`, `docker` or `exec`: in errors, logs and `peer status`.
    var kind: String { get }

    /// Starts instance `request.instanceID` of cluster `request.clusterID` with its bootstrap
    /// files. If it exists already and runs, returns it unchanged (same addresses); if it exists
    /// but has stopped, starts it again on the same addresses.
    func create(_ request: ProvisionRequest) async throws(ProviderError) -> ProvidedInstance

    /// Stops the instance (SIGTERM, then SIGKILL after the provider's stop timeout) and frees
    /// everything it held. An instance that does not exist is already destroyed: no error.
    func destroy(clusterID: String, instanceID: String) async throws(ProviderError)

    /// Every instance this provider holds for the cluster, running or stopped, sorted by id.
    func list(clusterID: String) async throws(ProviderError) -> [ProvidedInstance]

    /// Stops the instance gracefully and starts it again on the same data and addresses, with
    /// `executable` as its command's program from now on (a rolling upgrade, `peer upgrade`).
    /// Providers that cannot keep an instance's data across a new program refuse (the default).
    func restart(clusterID: String, instanceID: String, executable: String) async throws(ProviderError) -> ProvidedInstance
}

extension InstanceProvider {
    public func restart(clusterID: String, instanceID: String, executable: String) async throws(ProviderError) -> ProvidedInstance {
        let why = kind == "docker"
            ? "an instance's data lives in its container, so another image is another instance"
            : "it has no way to start an instance again with another program"
        throw ProviderError(kind, "restart", instance: instanceID, .refused,
                            "the \(kind) provider cannot upgrade an instance in place: \(why); replace it instead (peer instances add, then peer instances remove the old one)")
    }
}

/// What a new instance is started with.
public struct ProvisionRequest: Sendable, Hashable {
    public var clusterID: String
    public var instanceID: String
    /// Files handed to the instance (name → contents): the CA certificate, the join token, the
    /// join settings. Names are `[A-Za-z0-9._-]`, at most `Bootstrap.filesMax` files of at
    /// most `Bootstrap.bytesMax` bytes in all. The instance finds them in the directory its
    /// command's `{bootstrap}` names.
    public var bootstrap: [String: String]

    public init(clusterID: String, instanceID: String, bootstrap: [String: String] = [:]) {
        self.clusterID = clusterID
        self.instanceID = instanceID
        self.bootstrap = bootstrap
    }
}

/// Where a provided instance listens: `host:port` each.
public struct InstanceAddresses: Sendable, Hashable, Codable {
    public var peer: String
    public var api: String
    public var router: String?
    public var routerControl: String?
    /// The components' base address (a component listens at base + its port offset).
    public var components: String?

    public init(peer: String, api: String, router: String? = nil, routerControl: String? = nil, components: String? = nil) {
        self.peer = peer
        self.api = api
        self.router = router
        self.routerControl = routerControl
        self.components = components
    }
}

/// One instance as its provider sees it.
public struct ProvidedInstance: Sendable, Hashable, Codable {
    public enum State: String, Sendable, Hashable, Codable {
        case running
        /// It exists (its ports and data are kept) but its process or container has ended.
        case stopped
    }

    public var clusterID: String
    public var instanceID: String
    public var addresses: InstanceAddresses
    public var state: State
    /// The provider's own name for it: `pid 4242`, `container 3f2a…`, or what an exec script said.
    public var handle: String

    public init(clusterID: String, instanceID: String, addresses: InstanceAddresses, state: State, handle: String) {
        self.clusterID = clusterID
        self.instanceID = instanceID
        self.addresses = addresses
        self.state = state
        self.handle = handle
    }
}

/// Why a provider call failed. Every case names the provider, the operation and the instance,
/// and says what the operator can do.
public struct ProviderError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// A request the provider refuses before doing anything (bad id, bad bootstrap name).
        case invalidRequest
        /// Every port block of the configured range is taken.
        case portsExhausted
        /// The engine, script or program could not be reached or started.
        case unavailable
        /// The engine or script answered, and said no.
        case refused
        /// A script or engine took longer than its timeout.
        case timedOut
        /// The answer could not be understood.
        case badAnswer
        /// A file of the provider's own (its records, its lock) could not be read or written.
        case storage
    }

    public let provider: String
    public let operation: String
    public let instanceID: String?
    public let reason: Reason
    public let message: String

    public init(_ provider: String, _ operation: String, instance: String?, _ reason: Reason, _ message: String) {
        self.provider = provider
        self.operation = operation
        self.instanceID = instance
        self.reason = reason
        self.message = message
    }

    public var description: String {
        let subject = instanceID.map { " instance \($0)" } ?? ""
        return "\(provider) provider: \(operation)\(subject): \(message)"
    }
}

/// The limits every provider applies to a request before acting on it.
public enum Bootstrap {
    public static let filesMax = 16
    public static let bytesMax = 256 * 1024
    /// Cluster and instance ids: what the cluster model accepts, and safe in a path, a
    /// container name and a label.
    public static let idCharactersMax = 63

    static func validate(_ request: ProvisionRequest, provider: String) throws(ProviderError) {
        try validateIDs(clusterID: request.clusterID, instanceID: request.instanceID, provider: provider, operation: "create")
        guard request.bootstrap.count <= filesMax else {
            throw ProviderError(provider, "create", instance: request.instanceID, .invalidRequest, "\(request.bootstrap.count) bootstrap files; at most \(filesMax)")
        }
        let total = request.bootstrap.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        guard total <= bytesMax else {
            throw ProviderError(provider, "create", instance: request.instanceID, .invalidRequest, "bootstrap files hold \(total) bytes; at most \(bytesMax)")
        }
        for name in request.bootstrap.keys {
            guard isFileName(name) else {
                throw ProviderError(provider, "create", instance: request.instanceID, .invalidRequest, "bootstrap file name \"\(name)\" is not 1-64 of [A-Za-z0-9._-] (and not . or ..)")
            }
        }
    }

    static func validateIDs(clusterID: String, instanceID: String?, provider: String, operation: String) throws(ProviderError) {
        guard isID(clusterID) else {
            throw ProviderError(provider, operation, instance: instanceID, .invalidRequest, "cluster id \"\(clusterID)\" is not 1-\(idCharactersMax) of [a-z0-9-]")
        }
        if let instanceID, !isID(instanceID) {
            throw ProviderError(provider, operation, instance: nil, .invalidRequest, "instance id \"\(instanceID)\" is not 1-\(idCharactersMax) of [a-z0-9-]")
        }
    }

    static func isID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= idCharactersMax && id.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
    }

    static func isFileName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 64, name != ".", name != ".." else { return false }
        return name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F }
    }
}

/// How an instance is started: an argv whose elements may hold placeholders, filled in per
/// instance: `{cluster}`, `{id}`, `{bootstrap}` (the directory of the bootstrap files),
/// `{host}`, `{peerPort}`, `{apiPort}`, `{routerPort}`, `{routerControlPort}`, `{componentsPort}`,
/// `{dir}` (a directory of the instance's own, where the process provider keeps it).
public struct CommandTemplate: Sendable, Hashable {
    public let argv: [String]
    public static let placeholders = ["cluster", "id", "bootstrap", "dir", "host", "peerPort", "apiPort", "routerPort", "routerControlPort", "componentsPort"]

    /// Refuses an empty argv or an unknown `{name}`.
    public init(_ argv: [String]) throws(ProviderError) {
        guard let first = argv.first, !first.isEmpty else {
            throw ProviderError("provider", "configure", instance: nil, .invalidRequest, "the command is empty")
        }
        for element in argv {
            var rest = Substring(element)
            while let open = rest.firstIndex(of: "{") {
                guard let close = rest[open...].firstIndex(of: "}") else { break }
                let name = String(rest[rest.index(after: open)..<close])
                guard Self.placeholders.contains(name) else {
                    throw ProviderError("provider", "configure", instance: nil, .invalidRequest,
                                        "the command names {\(name)}; known: \(Self.placeholders.map { "{\($0)}" }.joined(separator: ", "))")
                }
                rest = rest[rest.index(after: close)...]
            }
        }
        self.argv = argv
    }

    /// The argv for one instance: every placeholder filled from its ids, paths and addresses.
    func argv(cluster: String, id: String, bootstrap: String, dir: String, host: String, addresses a: InstanceAddresses) -> [String] {
        func port(_ address: String?) -> String { address.flatMap(PortPlan.port(of:)).map(String.init) ?? "" }
        return fill([
            "cluster": cluster, "id": id, "bootstrap": bootstrap, "dir": dir, "host": host,
            "peerPort": port(a.peer), "apiPort": port(a.api), "routerPort": port(a.router),
            "routerControlPort": port(a.routerControl), "componentsPort": port(a.components),
        ])
    }

    func fill(_ values: [String: String]) -> [String] {
        argv.map { element in
            var filled = element
            for (name, value) in values { filled = filled.replacingOccurrences(of: "{\(name)}", with: value) }
            return filled
        }
    }
}

/// Instance ids in numeric order when they are numbers (9 before 10), then by text.
func instanceIDOrder(_ a: String, _ b: String) -> Bool {
    a.count != b.count ? a.count < b.count : a < b
}
