/// Everything the local router (NGINX) needs to route this cluster's tenants: the peer computes
/// it from the applied cluster state (ARCHITECTURE §10) and hands it to `NginxConfig.render` /
/// `NginxRouter.apply`. A plain value: no I/O, compared and hashed as a whole.
///
/// Every string here ends up in an nginx config file, so `validate()` refuses anything that
/// could carry nginx syntax (quotes, `;`, braces, spaces, `$`, control characters); see
/// `RouterSpecError` and `RouterLimits` for the exact rules.
public struct RouterSpec: Sendable, Hashable {
    /// Increases with every config the peer applies (the peer uses the Raft applied index).
    /// The control server answers it on `GET /config` for the config it was rendered into
    /// (how a reload is confirmed) and on `GET /generation` for the route table.
    public var generation: UInt64
    /// `host:port` of the routing server (e.g. `127.0.0.1:7301` or `0.0.0.0:7301`).
    public var listen: String
    /// `host:port` on loopback (127.0.0.0/8) of the control server, used only by the peer:
    /// `GET /config` (the config's generation, text/plain), `POST /routes` (route table updates,
    /// `NginxRoutes.Push`), `GET /generation` (the table's generation) and `GET /healthz`.
    public var controlListen: String
    /// Absolute directory nginx may write to: pid file, error log, temp and cache directories.
    /// Must equal the `NginxRouter`'s prefix.
    public var prefix: String
    /// nginx `worker_processes` (1...`RouterLimits.workerProcessesMax`).
    public var workerProcesses: Int
    /// When set, the host `<tenant>.<domain>` also selects the tenant (the `X-Tenant-ID`
    /// request header wins when present). Lowercase DNS name.
    public var domain: String?
    /// One per (instance, component) a tenant routes to. Order does not matter.
    public var upstreams: [Upstream]
    /// The tenants this router routes. Order does not matter; ids are unique.
    public var tenants: [TenantRoute]
    /// `host:port` of the local agent's syslog (UDP) receiver for the JSON access log, or nil
    /// for no access log.
    public var statsAddress: String?
    /// Base URL of the local peer's HTTPS API for tenant user token checks
    /// (`https://host[:port]`, no path), e.g. `https://127.0.0.1:7201`. Required when a
    /// tenant has `requiresToken`.
    public var authURL: String?
    /// Absolute path of the cluster CA (PEM) that verifies the peer's certificate. Required
    /// with `authURL`.
    public var authCAFile: String?
    /// Names the contents of `authCAFile` (its SHA-256 in hex): NGINX reads that file only when
    /// it starts or reloads, so a new value, written into the config, makes it reload and trust
    /// the CAs the file holds now (a CA rotation, docs/tls.md).
    public var authCAVersion: String?
    /// The name the peer's certificate is verified against (and sent as SNI); nil means the
    /// host of `authURL`. nginx checks DNS names only, so set this when `authURL` is an IP.
    public var authServerName: String?
    /// How long a token check's answer is cached, in seconds (1...`authCacheSecondsMax`):
    /// a revoked token stops working within this time.
    public var authCacheSeconds: Int
    /// How long an idle client connection stays open between requests, in seconds; 0 closes
    /// every client connection after its response (`Connection: close`). A reload makes the old
    /// workers close their idle keepalive connections at once, and a client that had just sent
    /// its next request on one sees the connection drop (a client that does not retry, like
    /// wrk, counts an error). With 0 no connection is ever idle, so a reload costs no request.
    public var clientKeepaliveSeconds: Int = 65
    /// The control server's timeouts, in ms: for a request's head, between two reads of its
    /// body, between two writes of the answer, and for an idle keep-alive connection. Only the
    /// peer talks to it, in milliseconds; a local client that holds a connection open is cut
    /// off after this long (100...600000).
    public var controlTimeoutMs: Int = 5_000
    /// Request rates (requests/s) the config has a `limit_req` zone for besides the tenants'
    /// own: the plans' rates. The zones are part of the config, the tenants are not (see
    /// `NginxRoutes`), so a tenant whose rate already has a zone is routed without a reload.
    public var requestRates: [UInt32] = []
    /// As `requestRates`, for `limit_conn` (concurrent connections).
    public var connectionLimits: [UInt32] = []
    /// Size of the shared-memory route table (`lua_shared_dict peer_routes`), in MiB
    /// (1...`RouterLimits.routeTableMiBMax`). A tenant takes one entry plus one per component,
    /// about 128 bytes each: 32 MiB held 65,143 tenants of 3 components (measured with nginx
    /// 1.22 and lua-nginx-module 0.10.23), so the default 128 MiB (about 260,000 such tenants)
    /// holds more than `RouterLimits.tenantsMax`. nginx maps the zone lazily (64 MiB touch about
    /// 0.4 MiB of page descriptors until used). A push that does not fit fails (`RouterError.routesNotApplied`):
    /// no route is evicted, and the next push resends the whole table.
    /// Changing it restarts the table: nginx allocates a new zone on reload.
    public var routeTableMiB: Int = 128
    /// The secret the control server requires (header `X-Peer-Control`) before it changes the
    /// route table: any local user can reach a loopback port. 32-128 of `[A-Za-z0-9]`.
    /// `NginxRouter.apply` sets its own (random per router), so callers leave it nil; the
    /// renderer refuses a spec without one.
    public var controlToken: String?
    /// Directory of Debian's dynamic nginx modules: `ndk_http_module.so` and
    /// `ngx_http_lua_module.so` (package `libnginx-mod-http-lua`) are loaded from here.
    public var moduleDirectory: String = "/usr/lib/nginx/modules"

    public init(
        generation: UInt64,
        listen: String,
        controlListen: String,
        prefix: String,
        workerProcesses: Int = 1,
        domain: String? = nil,
        upstreams: [Upstream] = [],
        tenants: [TenantRoute] = [],
        statsAddress: String? = nil,
        authURL: String? = nil,
        authCAFile: String? = nil,
        authServerName: String? = nil,
        authCacheSeconds: Int = 5
    ) {
        self.generation = generation
        self.listen = listen
        self.controlListen = controlListen
        self.prefix = prefix
        self.workerProcesses = workerProcesses
        self.domain = domain
        self.upstreams = upstreams
        self.tenants = tenants
        self.statsAddress = statsAddress
        self.authURL = authURL
        self.authCAFile = authCAFile
        self.authServerName = authServerName
        self.authCacheSeconds = authCacheSeconds
    }
}

/// Where one component of one instance listens: becomes the nginx block
/// `upstream i_<instance>__<component>` (see `NginxNames.upstream`).
public struct Upstream: Sendable, Hashable {
    /// The instance (machine) that runs the component: 1-64 of `A-Za-z0-9._-`.
    public var instance: String
    /// The component type, e.g. `dfx-dev`: 1-64 of `A-Za-z0-9._-`.
    public var component: String
    /// `host:port` the component listens on (IPv4, `[IPv6]` or DNS name).
    public var address: String

    public init(instance: String, component: String, address: String) {
        self.instance = instance
        self.component = component
        self.address = address
    }

    /// The nginx upstream block name: injective in (instance, component).
    public var name: String { NginxNames.upstream(instance: instance, component: component) }
}

/// How one tenant is routed and limited.
public struct TenantRoute: Sendable, Hashable {
    /// `[a-z0-9][a-z0-9-]{0,62}`: a DNS label, since `<tenant>.<domain>` is a host name.
    public var id: String
    /// The instance that serves the tenant (its active placement).
    public var instance: String
    /// The tenant's components in routing priority order: a request with `X-Component: <c>`
    /// goes to `c`, any other to the first. Unique, non-empty.
    public var components: [String]
    /// Requests per second allowed (burst of one second's worth); 0 = no limit.
    public var requestsPerSecond: UInt32
    /// Concurrent connections allowed; 0 = no limit.
    public var connectionsMax: UInt32
    /// Requests must carry a user token that the local peer accepts (`auth_request`).
    public var requiresToken: Bool

    public init(
        id: String,
        instance: String,
        components: [String],
        requestsPerSecond: UInt32 = 0,
        connectionsMax: UInt32 = 0,
        requiresToken: Bool = false
    ) {
        self.id = id
        self.instance = instance
        self.components = components
        self.requestsPerSecond = requestsPerSecond
        self.connectionsMax = connectionsMax
        self.requiresToken = requiresToken
    }
}
