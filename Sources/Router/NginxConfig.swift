/// Renders `nginx.conf` from a `RouterSpec` (ARCHITECTURE §10, ADR 0008). A pure function:
/// no I/O, no clock; the output depends only on the spec's content, not on the order of its
/// arrays (everything is sorted), so equal specs give byte-identical files.
///
/// The config holds what changes rarely: listen addresses, one upstream per (instance,
/// component), limit zones per rate, the token check. Tenants are not in it: their routes and
/// limits live in the route table (`NginxRoutes`), updated at run time through the control
/// server, so creating, deleting or moving a tenant never reloads nginx (a reload makes the
/// old workers close idle client connections, which a client that just sent a request on one
/// sees as an error).
///
/// How a request is routed:
/// 1. `$peer_tenant`: the `X-Tenant-ID` header, else the `<tenant>` of host
///    `<tenant>.<domain>`; kept only if it is a well-formed tenant id (it is echoed in JSON
///    bodies and the access log), else empty.
/// 2. `$peer_upstream` and the tenant's limits: `NginxLua.route` looks the tenant (and its
///    `X-Component` header) up in the route table; empty for an unknown tenant or component → 404.
/// 3. `$peer_instance` and `$peer_component` from `$peer_upstream`, for the access log.
/// 4. Limits: per rate a map from `$peer_rps` yields the tenant id only for tenants of that
///    rate (an empty key is not counted); the same for connections.
/// 5. Tenants that need a user token continue in `@peer_token`, which adds `auth_request`.
public enum NginxConfig {
    /// The token-check cache: keys zone (1 MiB ≈ 8,000 keys) and files on disk.
    public static let authCacheKeysZoneMiB = 1
    public static let authCacheBytesMaxMiB = 16
    /// Cached answers not used for this long are deleted (they are stale long before).
    public static let authCacheInactiveSeconds = 60
    /// Client request bodies above this are refused with 413.
    public static let clientBodyMiBMax = 64
    /// Idle keepalive connections each worker keeps to the components, over all of them
    /// (pooled by address).
    public static let upstreamKeepaliveConnections = 256
    public static let workerConnections = 4096
    /// Each proxied request needs two descriptors (client and upstream), plus logs and spares.
    public static let workerOpenFilesMax = 16_384
    /// Old workers finishing in-flight requests after a reload are closed after this.
    public static let workerShutdownSeconds = 60
    /// `map_hash_bucket_size`: must hold the longest key, `<tenant>|<component>`
    /// (63 + 1 + 64 bytes) with nginx's per-entry overhead.
    static let mapHashBucketBytes = 256
    /// Bound on a `POST /routes` body: a full table of `RouterLimits.tenantsMax` tenants of 3
    /// components is about 20 MiB.
    public static let routesBodyMiBMax = 64

    /// The config text for `spec`, starting `# generation N, rendered by peer; do not edit`.
    /// Throws `RouterSpecError` (from `RouterSpec.validate()`) for a spec that could inject
    /// nginx syntax or breaks a `RouterLimits` bound; nothing is rendered then.
    public static func render(_ spec: RouterSpec) throws(RouterSpecError) -> String {
        let valid = try spec.validated()
        var out = ConfigWriter()
        renderMain(valid, into: &out)
        out.open("http")
        renderHTTPSettings(valid, into: &out)
        renderTenantMaps(valid, into: &out)
        renderUpstreams(valid, into: &out)
        renderLimits(valid, into: &out)
        renderAuthShared(valid, into: &out)
        renderControlServer(valid, into: &out)
        renderRoutingServer(valid, into: &out)
        out.close()
        return out.text
    }

    private static func renderMain(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        let spec = valid.spec
        out.line("# generation \(spec.generation), rendered by peer; do not edit")
        out.line("# tenants and their upstreams' addresses are in the route table (NginxRoutes)")
        out.blank()
        out.line("load_module \(spec.moduleDirectory)/ndk_http_module.so;")
        out.line("load_module \(spec.moduleDirectory)/ngx_http_lua_module.so;")
        out.line("worker_processes \(spec.workerProcesses);")
        out.line("worker_rlimit_nofile \(workerOpenFilesMax);")
        out.line("worker_shutdown_timeout \(workerShutdownSeconds)s;")
        out.line("pid \(spec.prefix)/nginx.pid;")
        out.line("error_log \(spec.prefix)/error.log warn;")
        out.blank()
        out.open("events")
        out.line("worker_connections \(workerConnections);")
        out.close()
        out.blank()
    }

    private static func renderHTTPSettings(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        let prefix = valid.spec.prefix
        out.line("server_tokens off;")
        out.line("sendfile on;")
        out.line("tcp_nopush on;")
        out.line("tcp_nodelay on;")
        out.line("keepalive_timeout \(valid.spec.clientKeepaliveSeconds)s;")
        out.line("keepalive_requests 1000;")
        out.line("client_header_timeout 30s;")
        out.line("client_body_timeout 60s;")
        out.line("send_timeout 60s;")
        out.line("client_max_body_size \(clientBodyMiBMax)m;")
        out.line("default_type application/octet-stream;")
        out.line("client_body_temp_path \(prefix)/client_body_temp;")
        out.line("proxy_temp_path \(prefix)/proxy_temp;")
        out.line("fastcgi_temp_path \(prefix)/fastcgi_temp;")
        out.line("uwsgi_temp_path \(prefix)/uwsgi_temp;")
        out.line("scgi_temp_path \(prefix)/scgi_temp;")
        out.line("map_hash_bucket_size \(mapHashBucketBytes);")
        out.line("map_hash_max_size \(mapHashMaxSize(valid.spec));")
        out.line("lua_shared_dict \(NginxLua.dict) \(valid.spec.routeTableMiB)m;")
        // A moved tenant's request must fail visibly, not be retried on another server.
        out.line("proxy_next_upstream off;")
        out.line("proxy_connect_timeout 5s;")
        out.line("proxy_send_timeout 60s;")
        out.line("proxy_read_timeout 60s;")
        // Rejections are expected traffic, not errors: keep them out of error.log (level warn).
        out.line("limit_req_status 429;")
        out.line("limit_conn_status 429;")
        out.line("limit_req_log_level info;")
        out.line("limit_conn_log_level info;")
        out.line("access_log off;")
        out.blank()
        out.line("log_format peer_json escape=json '{\"time\":\"$msec\",\"tenant\":\"$peer_tenant\",\"instance\":\"$peer_instance\",\"component\":\"$peer_component\",\"status\":$status,\"request_time\":$request_time,\"upstream_time\":\"$upstream_response_time\",\"bytes\":$bytes_sent}';")
        out.blank()
    }

    /// nginx grows each map's hash up to this size. No map lists instances or tenants any more
    /// (their routes and addresses are in the route table), so one size fits every cluster.
    static func mapHashMaxSize(_ spec: RouterSpec) -> Int { 2048 }
}

/// Builds the config text with four-space indentation per block.
struct ConfigWriter {
    private(set) var text = ""
    private var depth = 0
    private var indent = ""

    mutating func line(_ content: String) {
        text += indent
        text += content
        text += "\n"
    }

    mutating func blank() { text += "\n" }

    /// `directive { <lua lines> }`, the Lua indented one level deeper.
    mutating func lua(_ directive: String, _ code: [String]) {
        open(directive)
        for codeLine in code { line(codeLine) }
        close()
    }

    mutating func open(_ header: String) {
        line(header + " {")
        depth += 1
        indent = String(repeating: "    ", count: depth)
    }

    mutating func close() {
        precondition(depth > 0, "ConfigWriter: close without open")
        depth -= 1
        indent = String(repeating: "    ", count: depth)
        line("}")
    }
}
