/// The `map` blocks that resolve a request to a tenant, and the upstreams and limit zones.
/// None of them lists tenants: a tenant's route and limits come from the route table
/// (`NginxRoutes`, looked up per request by `NginxLua.route`).
extension NginxConfig {
    /// Matches a well-formed tenant id; a fixed pattern, never built from tenant ids.
    static let tenantIdPattern = "[a-z0-9][a-z0-9-]{0,62}"
    /// The one upstream block every tenant's requests go through.
    static let dynamicUpstream = "peer_dynamic"

    static func renderTenantMaps(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        let spec = valid.spec
        renderTenantResolution(domain: spec.domain, into: &out)

        out.line("# For the access log: the instance and component of the route's target (instance/component@address).")
        out.open("map $peer_upstream $peer_instance")
        out.line("default \"\";")
        out.line("\"~^([^/]+)/\" $1;")
        out.close()
        out.blank()
        out.open("map $peer_upstream $peer_component")
        out.line("default \"\";")
        out.line("\"~^[^/]+/([^@]+)@\" $1;")
        out.close()
        out.blank()

        out.open("map $peer_tenant_known $peer_not_found_body")
        out.line("default '{\"error\":\"unknown tenant\",\"tenant\":\"$peer_tenant\"}';")
        out.line("1 '{\"error\":\"unknown component\",\"tenant\":\"$peer_tenant\"}';")
        out.close()
        out.blank()
    }

    /// `$peer_tenant`: the header wins; the host is used only when the header is absent or
    /// empty; anything that is not a well-formed tenant id becomes "".
    private static func renderTenantResolution(domain: String?, into out: inout ConfigWriter) {
        out.line("# The tenant: X-Tenant-ID header, else the host <tenant>.<domain>; only well-formed ids.")
        var source = "$http_x_tenant_id"
        if let domain {
            let escapedDomain = domain.split(separator: ".").joined(separator: "\\.")
            out.open("map $host $peer_host_tenant")
            out.line("default \"\";")
            out.line("\"~^(\(tenantIdPattern))\\.\(escapedDomain)$\" $1;")
            out.close()
            out.blank()
            out.open("map $http_x_tenant_id $peer_tenant_candidate")
            out.line("default $http_x_tenant_id;")
            out.line("\"\" $peer_host_tenant;")
            out.close()
            out.blank()
            source = "$peer_tenant_candidate"
        }
        out.open("map \(source) $peer_tenant")
        out.line("default \"\";")
        out.line("\"~^\(tenantIdPattern)$\" \(source);")
        out.close()
        out.blank()
    }

    /// One upstream for every component of every instance: the per-request balancer connects
    /// to the address in the route's target, and its idle keep-alive connections are pooled by
    /// address. Nothing here depends on which instances exist.
    static func renderUpstreams(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        out.line("# Every component of every instance: the balancer picks the address per request.")
        out.open("upstream \(dynamicUpstream)")
        out.line("server 127.0.0.1:9 max_fails=0;  # never used: the balancer sets the peer")
        out.lua("balancer_by_lua_block", NginxLua.balancer)
        out.line("keepalive \(upstreamKeepaliveConnections);")
        out.close()
        out.blank()
    }

    /// The distinct non-zero request rates of the tenants and `requestRates`, ascending.
    static func requestRates(_ spec: RouterSpec) -> [UInt32] {
        Set(spec.tenants.map(\.requestsPerSecond) + spec.requestRates).subtracting([0]).sorted()
    }

    /// The distinct non-zero connection limits of the tenants and `connectionLimits`, ascending.
    static func connectionLimits(_ spec: RouterSpec) -> [UInt32] {
        Set(spec.tenants.map(\.connectionsMax) + spec.connectionLimits).subtracting([0]).sorted()
    }

    /// One zone per distinct value. `$peer_rps`/`$peer_conn` hold the request's tenant's values
    /// (set from the route table); each zone's key is the tenant id for the tenants of its
    /// value and "" (not counted) for everyone else.
    static func renderLimits(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        let zone = limitZoneMiB(valid.spec)
        for rate in requestRates(valid.spec) {
            out.line("# \(rate) requests/s per tenant, burst \(rate) (one second's worth).")
            renderKeyMap(source: "$peer_rps", value: rate, variable: "$peer_rate_\(rate)", into: &out)
            out.line("limit_req_zone $peer_rate_\(rate) zone=peer_rate_\(rate):\(zone)m rate=\(rate)r/s;")
            out.blank()
        }
        for limit in connectionLimits(valid.spec) {
            out.line("# \(limit) concurrent connections per tenant.")
            renderKeyMap(source: "$peer_conn", value: limit, variable: "$peer_conn_\(limit)", into: &out)
            out.line("limit_conn_zone $peer_conn_\(limit) zone=peer_conn_\(limit):\(zone)m;")
            out.blank()
        }
    }

    private static func renderKeyMap(source: String, value: UInt32, variable: String, into out: inout ConfigWriter) {
        out.open("map \(source) \(variable)")
        out.line("default \"\";")
        out.line("\"\(value)\" $peer_tenant;")
        out.close()
    }

    /// Each limit zone holds the states of the tenants recently seen at its value: sized with
    /// the route table (a quarter of it, at least 1 MiB), not with the tenant count, so that a
    /// new tenant never changes the config.
    static func limitZoneMiB(_ spec: RouterSpec) -> Int {
        max(1, spec.routeTableMiB / 4)
    }

    static func renderAuthShared(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        guard let auth = valid.auth else { return }
        out.line("# The local peer's token check (HTTPS).")
        out.open("upstream peer_auth")
        out.line("server \(auth.address) max_fails=0;")
        out.line("keepalive 8;")
        out.close()
        out.blank()
        // The cache key holds the Authorization header and nginx writes keys into the cache
        // files: the directory is created 0700 for the worker user, entries live
        // `authCacheInactiveSeconds` at most.
        out.line("proxy_cache_path \(valid.spec.prefix)/auth_cache levels=1:2 keys_zone=peer_auth:\(authCacheKeysZoneMiB)m max_size=\(authCacheBytesMaxMiB)m inactive=\(authCacheInactiveSeconds)s use_temp_path=off;")
        out.blank()
    }
}
