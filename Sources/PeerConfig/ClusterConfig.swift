/// One cluster's configuration file (docs/configuration.md): which peers exist, where each
/// listens, where the data, certificates and run files live, and the Raft timings.
///
/// A value is only ever made by `load(path:)` or `parse(yaml:baseDirectory:file:)`, which refuse
/// anything doubtful with a `ConfigError`; so every value in hand is valid: at least one peer,
/// unique ids, no address used twice, timings that make sense, and absolute, normalized paths.
public struct ClusterConfig: Sendable, Hashable {
    /// The cluster id: 1-63 of `[a-z0-9-]`, starting and ending with a letter or digit. It is in
    /// every certificate's identity (`peer://<cluster>/node/<id>`) and in each peer's data.
    public let cluster: String
    /// Absolute. Each peer keeps its state in `<dataDir>/<id>` (`dataDirectory(for:)`).
    public let dataDir: String
    /// Absolute. The cluster CA and every certificate and key (names from `PeerCerts`).
    public let tlsDir: String
    /// Absolute. Pid and log files of peers started in the background by `peer up`.
    public let runDir: String
    public let timing: Timing
    /// In the order of the file. Never empty; ids unique.
    public let peers: [Peer]
    public let admin: Admin
    /// The Open Service Broker API's settings (defaults when the file has no `broker:`).
    public let broker: Broker
    /// The services and plans the broker offers (the DreamFace editions when absent).
    public let catalog: Catalog
    /// How the agent runs each component type (the demo catalog when the file has none). In
    /// the order of the file: a tenant's requests go to its first component in this order.
    public let components: [Component]
    /// The local NGINX's settings (defaults when the file has no `router:`).
    public let router: RouterSettings
    /// Connection caps and timeouts of the API and peer listeners (defaults when absent).
    public let limits: Limits
    /// How the leader creates and destroys instances, the first by default; none: instances are
    /// the file's peers only.
    public let providers: [Provider]
    /// The balancer's marks, windows and bounds; nil (no `balancer:` section): no balancer.
    public let balancer: Balancer?
    /// What the state keeps of the balancer's decisions (`events.retain`).
    public let events: Events
    /// The absolute path of the file this came from; nil for text given to `parse`.
    public let file: String?

    /// The longest a cluster id may be: one DNS label.
    public static let clusterCharactersMax = 63
    /// Peer ids are 1...2^63-1: 0 is "no peer" in Raft, and ids must survive signed 64-bit
    /// storage (SQLite INTEGER, JSON readers that use Int64).
    public static let peerIDRange: ClosedRange<UInt64> = 1...UInt64(Int64.max)
    /// The initial members a file may list. Voter sets are 3 or 5; the rest are learners.
    public static let peersMax = 256
    /// A configuration file larger than this is refused unread.
    public static let fileBytesMax = 1 << 20

    /// One peer: its Raft id and the addresses it serves.
    public struct Peer: Sendable, Hashable {
        /// The Raft node id (YAML `id`), 1...2^63-1, unique in the cluster.
        public let id: UInt64
        /// YAML `peer`: the mutual-TLS peer-to-peer address. Other peers dial it, so it is never
        /// the unspecified address (`0.0.0.0`, `[::]`).
        public let peerAddress: HostPort
        /// YAML `api`: the admin HTTPS API address (the CLI dials it; never unspecified).
        public let apiAddress: HostPort
        /// YAML `router`: where this peer's NGINX listens; may be `0.0.0.0:PORT`. Nil when absent.
        public let routerAddress: HostPort?
        /// YAML `routerControl`: the loopback address where this peer's NGINX answers the peer's
        /// own requests (`/config` to confirm a reload, `POST /routes` to update the route table). Set whenever `router` is; by
        /// default 127.0.0.1 at the router's port + 1000.
        public let routerControlAddress: HostPort?
        /// YAML `components`: where this instance's components listen: host and base port (a
        /// component listens at base + its `portOffset`). Nil: this peer runs no components.
        public let componentAddress: HostPort?

        /// The address of one component on this instance, if it runs components.
        public func address(of component: Component) -> HostPort? {
            componentAddress.flatMap { $0.offset(by: component.portOffset) }
        }

        /// IP addresses to name in this peer's certificate: the hosts of `peer` and `api`.
        public var certificateIPAddresses: [String] {
            uniqueHosts.filter { $0.kind != .dnsName }.map(\.host)
        }

        /// DNS names to name in this peer's certificate: the hosts of `peer` and `api`, and
        /// `localhost` when the API listens on loopback: the local NGINX checks the peer's token
        /// check over TLS and verifies DNS names only (never IP SANs), as `localhost`.
        public var certificateDNSNames: [String] {
            var names = uniqueHosts.filter { $0.kind == .dnsName }.map(\.host)
            if apiAddress.isLoopback, !names.contains("localhost") { names.append("localhost") }
            return names
        }

        private var uniqueHosts: [HostPort] {
            apiAddress.host == peerAddress.host ? [peerAddress] : [peerAddress, apiAddress]
        }
    }

    /// Raft timings. Time is counted in ticks (ARCHITECTURE.md §6: the core has no clock); the
    /// peer ticks its core every `tickMs`.
    public struct Timing: Sendable, Hashable {
        /// Milliseconds per tick. Default 100.
        public var tickMs: Int
        /// Election timeout in ticks (a follower waits this long, plus a random extra of up to
        /// the same, before it campaigns). Default 10. At least 3 x `heartbeatTicks`, so two
        /// heartbeats can be lost without an election.
        public var electionTicks: Int
        /// The leader sends a heartbeat every this many ticks. Default 1.
        public var heartbeatTicks: Int
        /// Take a snapshot and compact the log after this many applied entries. Default 10,000.
        public var snapshotEveryEntries: Int
        /// The failure detector: the leader treats an instance as lost once it has had neither
        /// its data-plane report nor any answer from it for this long (ms). Default 5,000.
        public var instanceLostAfterMs: Int = 5_000
        /// Autopilot: a voter lost for this long (ms), and silent to Raft, leaves the Raft
        /// configuration once a replacement keeps the voters at `voters_target`. 0: never.
        /// Default 120,000; at least `instanceLostAfterMs` when set.
        public var deadVoterRemoveAfterMs: Int = 120_000
        /// Autopilot: a learner is promoted only after it has been caught up this long (ms).
        /// Default 10,000.
        public var learnerStableMs: Int = 10_000

        public static let tickMsRange = 1...10_000
        public static let electionTicksRange = 3...100_000
        public static let heartbeatTicksRange = 1...10_000
        public static let snapshotEveryEntriesRange = 1...1_000_000_000
        public static let instanceLostAfterMsRange = 1_000...3_600_000
        public static let deadVoterRemoveAfterMsRange = 0...604_800_000
        public static let learnerStableMsRange = 0...3_600_000
        /// `electionTicks >= electionToHeartbeatRatioMin * heartbeatTicks`.
        public static let electionToHeartbeatRatioMin = 3

        public init(
            tickMs: Int = 100, electionTicks: Int = 10, heartbeatTicks: Int = 1,
            snapshotEveryEntries: Int = 100_000
        ) {
            self.tickMs = tickMs
            self.electionTicks = electionTicks
            self.heartbeatTicks = heartbeatTicks
            self.snapshotEveryEntries = snapshotEveryEntries
        }

        /// The defaults: 100 ms ticks, 1 s election timeout, heartbeats every 100 ms.
        public static let defaults = Timing()
    }

    /// Who may use the admin API besides holders of a cluster client certificate.
    public struct Admin: Sendable, Hashable {
        /// Absolute path of a file holding a bearer token; nil means client certificates only.
        public let tokenFile: String?
    }

    /// The client name of the CLI's admin certificate (`client-admin.pem`), made by `peer init`.
    public static let adminClientName = "admin"

    /// The peer with this id, or nil when the file lists none.
    public func peer(id: UInt64) -> Peer? {
        peers.first { $0.id == id }
    }
}

extension ClusterConfig.Peer {
    /// A peer that is not in the file: an instance a provider started, from its join file.
    /// `routerControlAddress` defaults as the file's does (127.0.0.1 at the router's port + 1000).
    public static func provisioned(id: UInt64, peerAddress: HostPort, apiAddress: HostPort, routerAddress: HostPort?, routerControlAddress: HostPort?, componentAddress: HostPort?) -> Self {
        Self(
            id: id, peerAddress: peerAddress, apiAddress: apiAddress, routerAddress: routerAddress,
            routerControlAddress: routerControlAddress ?? routerAddress.flatMap { r in HostPort("127.0.0.1:\(Int(r.port) + 1000)") },
            componentAddress: componentAddress)
    }
}
