/// The `map` blocks that resolve a request to a tenant, an upstream and its limits.
extension NginxConfig {
    /// Matches a well-formed tenant id; a fixed pattern, never built from tenant ids.
    static let tenantIdPattern = "[a-z0-9][a-z0-9-]{0,62}"

    static func renderTenantMaps(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        let spec = valid.spec
        let tenants = spec.tenants.sorted { $0.id < $1.id }
        renderTenantResolution(domain: spec.domain, into: &out)

        out.line("# Known tenants: decides between 'unknown tenant' and 'unknown component'.")
        out.open("map $peer_tenant $peer_tenant_known")
        out.line("default 0;")
        for tenant in tenants { out.line("\(NginxNames.mapKey(tenant.id)) 1;") }
        out.close()
        out.blank()

        out.line("# Tenant and X-Component header -> upstream; no header -> the tenant's first component.")
        out.open("map \"$peer_tenant|$http_x_component\" $peer_upstream")
        out.line("default \"\";")
        for tenant in tenants {
            let first = tenant.components[0]
            out.line("\"\(tenant.id)|\" \(NginxNames.upstream(instance: tenant.instance, component: first));")
            for component in tenant.components.sorted() {
                out.line("\"\(tenant.id)|\(component)\" \(NginxNames.upstream(instance: tenant.instance, component: component));")
            }
        }
        out.close()
        out.blank()

        let upstreams = spec.upstreams.sorted { $0.name < $1.name }
        out.open("map $peer_upstream $peer_instance")
        out.line("default \"\";")
        for upstream in upstreams { out.line("\(upstream.name) \(NginxNames.quoted(upstream.instance));") }
        out.close()
        out.blank()
        out.open("map $peer_upstream $peer_component")
        out.line("default \"\";")
        for upstream in upstreams { out.line("\(upstream.name) \(NginxNames.quoted(upstream.component));") }
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

    static func renderUpstreams(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        for upstream in valid.spec.upstreams.sorted(by: { $0.name < $1.name }) {
            out.line("# instance \(upstream.instance), component \(upstream.component)")
            out.open("upstream \(upstream.name)")
            out.line("server \(upstream.address) max_fails=0;")
            out.line("keepalive \(upstreamKeepaliveConnections);")
            out.close()
            out.blank()
        }
    }

    /// The distinct non-zero request rates, ascending.
    static func requestRates(_ spec: RouterSpec) -> [UInt32] {
        Set(spec.tenants.map(\.requestsPerSecond)).subtracting([0]).sorted()
    }

    /// The distinct non-zero connection limits, ascending.
    static func connectionLimits(_ spec: RouterSpec) -> [UInt32] {
        Set(spec.tenants.map(\.connectionsMax)).subtracting([0]).sorted()
    }

    static func renderLimits(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        let tenants = valid.spec.tenants.sorted { $0.id < $1.id }
        let byRate = Dictionary(grouping: tenants.filter { $0.requestsPerSecond > 0 }, by: \.requestsPerSecond)
        let byConnections = Dictionary(grouping: tenants.filter { $0.connectionsMax > 0 }, by: \.connectionsMax)
        for rate in requestRates(valid.spec) {
            let members = byRate[rate] ?? []
            out.line("# \(rate) requests/s per tenant, burst \(rate) (one second's worth).")
            renderKeyMap(variable: "$peer_rate_\(rate)", members: members, into: &out)
            out.line("limit_req_zone $peer_rate_\(rate) zone=peer_rate_\(rate):\(zoneMiB(members.count))m rate=\(rate)r/s;")
            out.blank()
        }
        for limit in connectionLimits(valid.spec) {
            let members = byConnections[limit] ?? []
            out.line("# \(limit) concurrent connections per tenant.")
            renderKeyMap(variable: "$peer_conn_\(limit)", members: members, into: &out)
            out.line("limit_conn_zone $peer_conn_\(limit) zone=peer_conn_\(limit):\(zoneMiB(members.count))m;")
            out.blank()
        }
    }

    /// A map that yields the tenant id for `members` and "" (not counted) for everyone else.
    private static func renderKeyMap(variable: String, members: [TenantRoute], into out: inout ConfigWriter) {
        out.open("map $peer_tenant \(variable)")
        out.line("default \"\";")
        for tenant in members { out.line("\(NginxNames.mapKey(tenant.id)) \(NginxNames.quoted(tenant.id));") }
        out.close()
    }

    static func zoneMiB(_ tenants: Int) -> Int {
        max(1, (tenants + limitZoneTenantsPerMiB - 1) / limitZoneTenantsPerMiB)
    }

    static func renderAuthShared(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        guard let auth = valid.auth else { return }
        let tenants = valid.spec.tenants.sorted { $0.id < $1.id }
        out.line("# Tenants whose requests need a user token the local peer accepts.")
        out.open("map $peer_tenant $peer_requires_token")
        out.line("default 0;")
        for tenant in tenants where tenant.requiresToken { out.line("\(NginxNames.mapKey(tenant.id)) 1;") }
        out.close()
        out.blank()
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
