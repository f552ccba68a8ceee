@preconcurrency import Yams

extension ClusterConfig {
    /// What each listener allows its clients (YAML `limits`, docs/operations.md §Limits). Every
    /// value has a default and a range; 0, a negative value or one above the range is refused
    /// at load with the file, line and reason.
    public struct Limits: Sendable, Hashable {
        /// The admin and broker HTTPS API (one listener per peer).
        public struct API: Sendable, Hashable {
            public var connectionsMax = 1024
            public var connectionsPerAddressMax = 256
            public var handshakeTimeoutMs = 10_000
            public var idleTimeoutMs = 60_000
            public var bodyTimeoutMs = 30_000
            public var headerBytesMax = 64 * 1024
            public var bodyBytesMax = 64 * 1024

            public static let connectionsMaxRange = 16...65_536
            public static let connectionsPerAddressMaxRange = 1...65_536
            public static let handshakeTimeoutMsRange = 100...600_000
            public static let idleTimeoutMsRange = 100...3_600_000
            public static let bodyTimeoutMsRange = 100...600_000
            public static let headerBytesMaxRange = 1024...(1 << 20)
            public static let bodyBytesMaxRange = 1024...(16 << 20)
        }

        /// The peer-to-peer transport's listener.
        public struct Transport: Sendable, Hashable {
            /// Accepted connections still in the TLS handshake or the hello.
            public var handshakingConnectionsMax = 64
            /// Of those, from one client address.
            public var handshakingPerAddressMax = 16
            /// From accept to a finished TLS handshake and hello.
            public var helloTimeoutMs = 5_000
            /// Established inbound connections kept per authenticated peer.
            public var inboundConnectionsPerPeerMax = 2

            public static let handshakingConnectionsMaxRange = 1...4096
            public static let handshakingPerAddressMaxRange = 1...4096
            public static let helloTimeoutMsRange = 100...60_000
            public static let inboundConnectionsPerPeerMaxRange = 1...16
        }

        /// The local NGINX's control server (loopback; only the peer talks to it).
        public struct RouterControl: Sendable, Hashable {
            /// For a request's head, between two reads of its body or two writes of its answer,
            /// and for an idle keep-alive connection.
            public var timeoutMs = 5_000

            public static let timeoutMsRange = 100...600_000
        }

        public var api = API()
        public var transport = Transport()
        public var routerControl = RouterControl()

        public static let defaults = Limits()

        /// Descriptors a peer needs besides its listeners' connections: its store, logs, the
        /// agent's and router's sockets and pipes, outbound connections.
        public static let openFilesReserve = 256

        /// Connections per member its admin clients may hold to another member (a forwarding
        /// pool and the leader's poll pool, 64 each).
        public static let adminConnectionsPerMember = 128

        /// Open files a peer of a cluster of `peerCount` members may need at its limits: every API
        /// connection from clients, and from the members (kept apart, so a flood cannot take
        /// theirs: 128 per member and 64 for an operator), its own admin connections to the
        /// others, every peer connection in and out, and the reserve.
        public func openFilesNeeded(peerCount: Int) -> Int {
            api.connectionsMax + (peerCount * Self.adminConnectionsPerMember + 64)
                + (peerCount - 1) * Self.adminConnectionsPerMember
                + transport.handshakingConnectionsMax + peerCount * (transport.inboundConnectionsPerPeerMax + 1)
                + Self.openFilesReserve
        }
    }
}

extension ConfigDecoder {
    static let limitsKeys = ["api", "transport", "routerControl"]
    static let routerControlLimitsKeys = ["timeoutMs"]
    static let apiLimitsKeys = ["connectionsMax", "connectionsPerAddressMax", "handshakeTimeoutMs", "idleTimeoutMs", "bodyTimeoutMs", "headerBytesMax", "bodyBytesMax"]
    static let transportLimitsKeys = ["handshakingConnectionsMax", "handshakingPerAddressMax", "helloTimeoutMs", "inboundConnectionsPerPeerMax"]

    mutating func limits(_ node: Node, at keyPath: String) throws(ConfigError) -> ClusterConfig.Limits {
        let map = try reader.mapping(node, at: keyPath, allowed: Self.limitsKeys, what: "limits (\(Self.limitsKeys.joined(separator: ", ")))")
        var limits = ClusterConfig.Limits.defaults
        if let api = map.value("api") {
            let m = try reader.mapping(api, at: map.path("api"), allowed: Self.apiLimitsKeys, what: "API limits (\(Self.apiLimitsKeys.joined(separator: ", ")))")
            typealias A = ClusterConfig.Limits.API
            try read(m, "connectionsMax", A.connectionsMaxRange, into: &limits.api.connectionsMax)
            try read(m, "connectionsPerAddressMax", A.connectionsPerAddressMaxRange, into: &limits.api.connectionsPerAddressMax)
            try read(m, "handshakeTimeoutMs", A.handshakeTimeoutMsRange, into: &limits.api.handshakeTimeoutMs)
            try read(m, "idleTimeoutMs", A.idleTimeoutMsRange, into: &limits.api.idleTimeoutMs)
            try read(m, "bodyTimeoutMs", A.bodyTimeoutMsRange, into: &limits.api.bodyTimeoutMs)
            try read(m, "headerBytesMax", A.headerBytesMaxRange, into: &limits.api.headerBytesMax)
            try read(m, "bodyBytesMax", A.bodyBytesMaxRange, into: &limits.api.bodyBytesMax)
            try requireAtMost(m, ("connectionsPerAddressMax", limits.api.connectionsPerAddressMax), ("connectionsMax", limits.api.connectionsMax))
        }
        if let transport = map.value("transport") {
            let m = try reader.mapping(transport, at: map.path("transport"), allowed: Self.transportLimitsKeys, what: "transport limits (\(Self.transportLimitsKeys.joined(separator: ", ")))")
            typealias T = ClusterConfig.Limits.Transport
            try read(m, "handshakingConnectionsMax", T.handshakingConnectionsMaxRange, into: &limits.transport.handshakingConnectionsMax)
            try read(m, "handshakingPerAddressMax", T.handshakingPerAddressMaxRange, into: &limits.transport.handshakingPerAddressMax)
            try read(m, "helloTimeoutMs", T.helloTimeoutMsRange, into: &limits.transport.helloTimeoutMs)
            try read(m, "inboundConnectionsPerPeerMax", T.inboundConnectionsPerPeerMaxRange, into: &limits.transport.inboundConnectionsPerPeerMax)
            try requireAtMost(
                m, ("handshakingPerAddressMax", limits.transport.handshakingPerAddressMax),
                ("handshakingConnectionsMax", limits.transport.handshakingConnectionsMax))
        }
        if let control = map.value("routerControl") {
            let m = try reader.mapping(control, at: map.path("routerControl"), allowed: Self.routerControlLimitsKeys, what: "router control limits (timeoutMs)")
            try read(m, "timeoutMs", ClusterConfig.Limits.RouterControl.timeoutMsRange, into: &limits.routerControl.timeoutMs)
        }
        return limits
    }

    /// A per-address cap above its listener's total: refused at the per-address key if the file
    /// sets it, else at the total's.
    private func requireAtMost(_ map: YAMLReader.Mapping, _ part: (key: String, value: Int), _ whole: (key: String, value: Int)) throws(ConfigError) {
        guard part.value > whole.value, let node = map.value(part.key) ?? map.value(whole.key) else { return }
        let key = map.value(part.key) != nil ? part.key : whole.key
        throw reader.error(map.path(key), node, "\(part.key) (\(part.value)) is more than \(whole.key) (\(whole.value))")
    }

    /// An integer key of `map` within `range`, into `field` (left at its default when absent).
    mutating func read(_ map: YAMLReader.Mapping, _ key: String, _ range: ClosedRange<Int>, into field: inout Int) throws(ConfigError) {
        guard let value = map.value(key) else { return }
        record(map.path(key), value)
        field = try reader.integer(value, at: map.path(key), in: range)
    }
}
