@preconcurrency import Yams

extension ClusterConfig {
    /// One of `providers:`: how the leader creates and destroys instances (docs/providers.md).
    /// No providers: the cluster's instances are its config file's peers only, and
    /// `peer instances add` says so. The first is the default of `peer instances add`.
    public struct Provider: Sendable, Hashable {
        public enum Kind: String, Sendable, Hashable, CaseIterable {
            case process, docker, exec
        }

        /// What `peer instances add --provider` names and each instance records (default: the
        /// kind): 1-63 of `[a-z0-9-]`, unique in the file.
        public var name: String
        public var kind: Kind
        /// The host the new instances listen on (process, docker: host networking).
        public var host: String
        /// Ports handed out in blocks (peer, api, router, router control, components).
        public var ports: ClosedRange<Int>
        /// process: where each instance's directory lives; exec: where each call's request and
        /// answer files live (`<dataDir>/instances/<name>` by default).
        public var directory: String
        /// process, docker: the instance's command with placeholders; nil: the provider's default.
        public var command: [String]?
        /// docker: the Engine's socket and the image (`make image-load` imports `peer:dev`).
        public var socket: String
        public var image: String
        /// exec: the operator's scripts (argv), each speaking docs/providers.md's JSON.
        public var create: [String]
        public var destroy: [String]
        public var list: [String]
        /// An add not active after this long is undone.
        public var addTimeoutMs: Int

        public static let addTimeoutMsRange = 10_000...86_400_000
        public static let argvMax = 64
    }
}

extension ConfigDecoder {
    static let providerKeys = ["name", "kind", "host", "ports", "directory", "command", "socket", "image", "create", "destroy", "list", "addTimeoutMs"]

    /// `providers:`: a list of providers, names unique, port ranges of one host apart.
    mutating func providers(_ node: Node, at keyPath: String, dataDir: String) throws(ConfigError) -> [ClusterConfig.Provider] {
        record(keyPath, node)
        let items = try reader.sequence(node, at: keyPath, what: "providers (mappings)")
        guard (1...16).contains(items.count) else { throw reader.error(keyPath, node, "must list 1-16 providers, got \(items.count)") }
        var list: [ClusterConfig.Provider] = []
        for (i, item) in items.enumerated() {
            let path = "\(keyPath)[\(i)]"
            let p = try provider(item, at: path, dataDir: dataDir)
            if let other = list.first(where: { $0.name == p.name }) {
                throw reader.error(path, item, "name '\(p.name)' is used twice (\(other.kind.rawValue) and \(p.kind.rawValue)); give each provider its own name")
            }
            if let other = list.first(where: { $0.directory == p.directory }) {
                throw reader.error(path + ".directory", item, "\(p.directory) is provider '\(other.name)'s directory too; each provider keeps its own")
            }
            if p.kind != .exec, let other = list.first(where: { $0.kind != .exec && $0.host == p.host && $0.ports.overlaps(p.ports) }) {
                throw reader.error(path + ".ports", item, "\(p.ports.lowerBound)-\(p.ports.upperBound) overlaps provider '\(other.name)' (\(other.ports.lowerBound)-\(other.ports.upperBound)) on \(p.host)")
            }
            list.append(p)
        }
        return list
    }

    mutating func provider(_ node: Node, at keyPath: String, dataDir: String) throws(ConfigError) -> ClusterConfig.Provider {
        let map = try reader.mapping(node, at: keyPath, allowed: Self.providerKeys, what: "provider settings (\(Self.providerKeys.joined(separator: ", ")))")
        let kindNode = try reader.required(map, "kind")
        record(map.path("kind"), kindNode)
        let kindText = try reader.string(kindNode, at: map.path("kind"))
        guard let kind = ClusterConfig.Provider.Kind(rawValue: kindText) else {
            throw reader.error(map.path("kind"), kindNode, "must be process, docker or exec, got '\(kindText)'")
        }
        func text(_ key: String, _ fallback: String) throws(ConfigError) -> String {
            guard let n = map.value(key) else { return fallback }
            record(map.path(key), n)
            return try reader.string(n, at: map.path(key))
        }
        func argv(_ key: String) throws(ConfigError) -> [String]? {
            guard let n = map.value(key) else { return nil }
            record(map.path(key), n)
            let items = try reader.sequence(n, at: map.path(key), what: "command words (strings)")
            guard !items.isEmpty, items.count <= ClusterConfig.Provider.argvMax else {
                throw reader.error(map.path(key), n, "must hold 1-\(ClusterConfig.Provider.argvMax) words, got \(items.count)")
            }
            var words: [String] = []
            for (i, item) in items.enumerated() { words.append(try reader.string(item, at: "\(map.path(key))[\(i)]")) }
            return words
        }
        let host = try text("host", "127.0.0.1")
        guard let parsed = HostPort(host.contains(":") ? "[\(host)]:1" : "\(host):1"), parsed.kind != .dnsName else {
            throw reader.error(map.path("host"), map.value("host"), "must be an IP address (routers connect to the new instances' components by address), got '\(host)'")
        }
        let portsText = try text("ports", "32000-32999")
        let bounds = portsText.split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let low = Int(bounds[0]), let high = Int(bounds[1]), 1024 <= low, low < high, high <= 65535 else {
            throw reader.error(map.path("ports"), map.value("ports"), "must be LOW-HIGH with 1024 <= LOW < HIGH <= 65535, got '\(portsText)'")
        }
        let name = try text("name", kind.rawValue)
        guard (1...63).contains(name.utf8.count), name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) else {
            throw reader.error(map.path("name"), map.value("name"), "must be 1-63 of a-z, 0-9 and '-', got '\(name)'")
        }
        var directory = FilePath.join(FilePath.join(dataDir, "instances"), name)
        if let n = map.value("directory") { directory = try path(n, at: map.path("directory")) }
        var addTimeoutMs = 300_000
        if let n = map.value("addTimeoutMs") {
            record(map.path("addTimeoutMs"), n)
            addTimeoutMs = try reader.integer(n, at: map.path("addTimeoutMs"), in: ClusterConfig.Provider.addTimeoutMsRange)
        }
        let provider = ClusterConfig.Provider(
            name: name, kind: kind, host: host, ports: low...high, directory: directory, command: try argv("command"),
            socket: try text("socket", "/var/run/docker.sock"), image: try text("image", "peer:dev"),
            create: try argv("create") ?? [], destroy: try argv("destroy") ?? [], list: try argv("list") ?? [],
            addTimeoutMs: addTimeoutMs)
        if kind == .exec {
            for key in ["create", "destroy", "list"] where map.value(key) == nil {
                throw reader.error(keyPath, node, "kind exec needs `\(key)` (the script's argv)")
            }
        }
        return provider
    }
}
