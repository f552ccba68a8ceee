@preconcurrency import Yams

/// Turns the composed YAML tree into a `ClusterConfig`, key by key, in the schema of
/// docs/configuration.md. Cross-field rules (unique ids and addresses, timing ratios) are in
/// `ClusterConfig+Validate.swift`; they use the lines this decoder records.
struct ConfigDecoder {
    let reader: YAMLReader
    /// Absolute: where relative paths in the file resolve (the file's own directory).
    let baseDirectory: String
    /// Line of each value read, by key path, for errors found after decoding.
    private(set) var lines: [String: Int] = [:]

    static let topKeys = ["cluster", "dataDir", "tlsDir", "runDir", "timing", "peers", "admin", "broker", "catalog", "components", "router", "limits", "providers", "balancer", "events"]
    static let timingKeys = ["tickMs", "electionTicks", "heartbeatTicks", "snapshotEveryEntries", "instanceLostAfterMs", "deadVoterRemoveAfterMs", "learnerStableMs"]
    static let peerKeys = ["id", "peer", "api", "router", "routerControl", "components"]
    static let adminKeys = ["tokenFile"]
    /// Where pid and log files go when `runDir` is not given: inside the data directory.
    static let runDirDefaultName = "run"

    init(reader: YAMLReader, baseDirectory: String) {
        self.reader = reader
        self.baseDirectory = baseDirectory
    }

    mutating func decode(_ root: Node, file: String?) throws(ConfigError) -> ClusterConfig {
        let top = try reader.mapping(root, at: "", allowed: Self.topKeys, what: "cluster settings (\(Self.topKeys.joined(separator: ", ")))")
        let cluster = try clusterID(try reader.required(top, "cluster"), at: "cluster")
        let dataDir = try path(try reader.required(top, "dataDir"), at: "dataDir")
        let tlsDir = try path(try reader.required(top, "tlsDir"), at: "tlsDir")
        let runDir = try top.value("runDir").map { (node) throws(ConfigError) in try path(node, at: "runDir") }
            ?? FilePath.join(dataDir, Self.runDirDefaultName)
        let timing = try top.value("timing").map { (node) throws(ConfigError) in try self.timing(node, at: "timing") } ?? .defaults
        let peers = try self.peers(try reader.required(top, "peers"), at: "peers")
        let admin = try top.value("admin").map { (node) throws(ConfigError) in try self.admin(node, at: "admin") }
            ?? ClusterConfig.Admin(tokenFile: nil)
        let broker = try broker(top.value("broker"), at: "broker", cluster: cluster, tlsDir: tlsDir)
        let catalog = try top.value("catalog").map { (node) throws(ConfigError) in try self.catalog(node, at: "catalog") }
            ?? ClusterConfig.Catalog.dreamFace
        let components = try top.value("components").map { (node) throws(ConfigError) in try self.componentCatalog(node, at: "components") }
            ?? ClusterConfig.demoComponents
        let router = try top.value("router").map { (node) throws(ConfigError) in try self.router(node, at: "router") }
            ?? ClusterConfig.RouterSettings.defaults
        let limits = try top.value("limits").map { (node) throws(ConfigError) in try self.limits(node, at: "limits") }
            ?? ClusterConfig.Limits.defaults
        let providers = try top.value("providers").map { (node) throws(ConfigError) in try self.providers(node, at: "providers", dataDir: dataDir) } ?? []
        let balancer = try top.value("balancer").map { (node) throws(ConfigError) in try self.balancer(node, at: "balancer", providers: providers) }
        let events = try top.value("events").map { (node) throws(ConfigError) in try self.events(node, at: "events") } ?? .defaults
        return ClusterConfig(
            cluster: cluster, dataDir: dataDir, tlsDir: tlsDir, runDir: runDir, timing: timing, peers: peers,
            admin: admin, broker: broker, catalog: catalog, components: components, router: router, limits: limits, providers: providers,
            balancer: balancer, events: events, file: file)
    }

    mutating func record(_ keyPath: String, _ node: Node) {
        if let line = node.mark?.line { lines[keyPath] = line }
    }

    /// 1-63 of `[a-z0-9-]`, starting and ending with a letter or digit: one DNS label, so the id
    /// is also valid in the certificate URI and in PeerCerts' wider name rule.
    private mutating func clusterID(_ node: Node, at keyPath: String) throws(ConfigError) -> String {
        record(keyPath, node)
        let id = try reader.string(node, at: keyPath)
        let allowed = id.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
        guard allowed, id.count <= ClusterConfig.clusterCharactersMax, !id.hasPrefix("-"), !id.hasSuffix("-") else {
            throw reader.error(keyPath, node, "invalid cluster id '\(id)': use 1-\(ClusterConfig.clusterCharactersMax) lower-case letters, digits and '-', starting and ending with a letter or digit")
        }
        return id
    }

    /// A directory or file path; relative ones resolve against the config file's directory.
    mutating func path(_ node: Node, at keyPath: String) throws(ConfigError) -> String {
        record(keyPath, node)
        let text = try reader.string(node, at: keyPath)
        if text.hasPrefix("~") {
            throw reader.error(keyPath, node, "'~' is not expanded; use an absolute path or one relative to the config file, got '\(text)'")
        }
        if text.contains("\0") { throw reader.error(keyPath, node, "a path cannot contain a NUL character") }
        return FilePath.resolve(text, against: baseDirectory)
    }

    private mutating func timing(_ node: Node, at keyPath: String) throws(ConfigError) -> ClusterConfig.Timing {
        let map = try reader.mapping(node, at: keyPath, allowed: Self.timingKeys, what: "Raft timings")
        var timing = ClusterConfig.Timing.defaults
        typealias T = ClusterConfig.Timing
        try read(map, "tickMs", T.tickMsRange, into: &timing.tickMs)
        try read(map, "electionTicks", T.electionTicksRange, into: &timing.electionTicks)
        try read(map, "heartbeatTicks", T.heartbeatTicksRange, into: &timing.heartbeatTicks)
        try read(map, "snapshotEveryEntries", T.snapshotEveryEntriesRange, into: &timing.snapshotEveryEntries)
        try read(map, "instanceLostAfterMs", T.instanceLostAfterMsRange, into: &timing.instanceLostAfterMs)
        try read(map, "deadVoterRemoveAfterMs", T.deadVoterRemoveAfterMsRange, into: &timing.deadVoterRemoveAfterMs)
        try read(map, "learnerStableMs", T.learnerStableMsRange, into: &timing.learnerStableMs)
        return timing
    }

    private mutating func peers(_ node: Node, at keyPath: String) throws(ConfigError) -> [ClusterConfig.Peer] {
        record(keyPath, node)
        let items = try reader.sequence(node, at: keyPath, what: "peers (each with id, peer, api)")
        guard !items.isEmpty else { throw reader.error(keyPath, node, "at least one peer is required") }
        guard items.count <= ClusterConfig.peersMax else {
            throw reader.error(keyPath, node, "\(items.count) peers is more than the \(ClusterConfig.peersMax) a file may list")
        }
        var peers: [ClusterConfig.Peer] = []
        for (i, item) in items.enumerated() {
            peers.append(try peer(item, at: "\(keyPath)[\(i)]"))
        }
        return peers
    }

    private mutating func peer(_ node: Node, at keyPath: String) throws(ConfigError) -> ClusterConfig.Peer {
        record(keyPath, node)
        let map = try reader.mapping(node, at: keyPath, allowed: Self.peerKeys, what: "peer settings (\(Self.peerKeys.joined(separator: ", ")))")
        let idNode = try reader.required(map, "id")
        record(map.path("id"), idNode)
        let id: UInt64 = try reader.integer(idNode, at: map.path("id"), in: ClusterConfig.peerIDRange)
        let peerAddress = try address(try reader.required(map, "peer"), at: map.path("peer"), dialled: true)
        let apiAddress = try address(try reader.required(map, "api"), at: map.path("api"), dialled: true)
        let routerAddress = try map.value("router").map { (node) throws(ConfigError) in
            try address(node, at: map.path("router"), dialled: false)
        }
        var routerControl = try map.value("routerControl").map { (node) throws(ConfigError) in
            try address(node, at: map.path("routerControl"), dialled: true)
        }
        if routerControl != nil, routerAddress == nil {
            throw reader.error(map.path("routerControl"), map.value("routerControl"), "routerControl needs a router address on this peer")
        }
        if routerControl == nil, let r = routerAddress {
            guard let control = HostPort(host: "127.0.0.1", kind: .ipv4, port: 0).offset(by: Int(r.port) + ClusterConfig.routerControlPortOffset) else {
                throw reader.error(map.path("router"), map.value("router"), "router port \(r.port) + \(ClusterConfig.routerControlPortOffset) is past 65535; give routerControl explicitly")
            }
            record(map.path("routerControl"), map.value("router")!)
            routerControl = control
        }
        if let control = routerControl, !control.isLoopback {
            throw reader.error(map.path("routerControl"), map.value("routerControl"), "must be a loopback address (127.0.0.1 or [::1]): only the peer itself asks it")
        }
        let componentAddress = try map.value("components").map { (node) throws(ConfigError) in
            try address(node, at: map.path("components"), dialled: true)
        }
        return ClusterConfig.Peer(
            id: id, peerAddress: peerAddress, apiAddress: apiAddress, routerAddress: routerAddress,
            routerControlAddress: routerControl, componentAddress: componentAddress)
    }

    /// `host:port`. A `dialled` address is one other processes connect to, so it must name a
    /// host, not "every address" (`0.0.0.0`, `[::]`).
    mutating func address(_ node: Node, at keyPath: String, dialled: Bool) throws(ConfigError) -> HostPort {
        record(keyPath, node)
        guard case .scalar = node else {
            // `peer: [::1]:7101` unquoted is YAML flow syntax, not a string.
            throw reader.error(keyPath, node, "must be a string host:port, got \(reader.describe(node)) (quote an IPv6 address: \"[::1]:7101\")")
        }
        let text = try reader.string(node, at: keyPath)
        switch HostPort.parse(text) {
        case .failure(let problem):
            throw reader.error(keyPath, node, problem.reason)
        case .success(let address):
            if dialled && address.isUnspecified {
                throw reader.error(keyPath, node, "\(address) means every address of the machine, which no one can dial; give this peer's own address")
            }
            return address
        }
    }

    private mutating func admin(_ node: Node, at keyPath: String) throws(ConfigError) -> ClusterConfig.Admin {
        let map = try reader.mapping(node, at: keyPath, allowed: Self.adminKeys, what: "admin API settings")
        let tokenFile = try map.value("tokenFile").map { (node) throws(ConfigError) in try path(node, at: map.path("tokenFile")) }
        return ClusterConfig.Admin(tokenFile: tokenFile)
    }
}
