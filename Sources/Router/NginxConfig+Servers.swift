/// The control server (reload confirmation, route-table updates) and the routing server.
extension NginxConfig {
    /// Internal location of the token-check subrequest (not reachable from outside).
    static let authLocation = "/_peer_auth"

    /// Named location a token tenant's request continues in (after `return 418`), where
    /// `auth_request` applies: requests of other tenants never make a subrequest.
    static let tokenLocation = "@peer_token"

    static func renderControlServer(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        out.line("# Only the peer knows the secret that lets it change the route table.")
        out.open("map $http_x_peer_control $peer_control_allowed")
        out.line("default 0;")
        out.line("\"\(valid.spec.controlToken!)\" 1;")
        out.close()
        out.blank()
        out.line("# Control server: only the local peer uses it. GET /config: the config's generation")
        out.line("# (confirms a reload); POST /routes: update the route table; GET /generation: its generation.")
        out.open("server")
        out.line("listen \(valid.spec.controlListen);")
        out.line("access_log off;")
        // A local client holding connections open idle, or sending slowly, is cut off soon.
        for directive in ["client_header_timeout", "client_body_timeout", "send_timeout", "keepalive_timeout"] {
            out.line("\(directive) \(valid.spec.controlTimeoutMs)ms;")
        }
        // Lua's answers have no length: sent unchunked, ended by the close (the peer's client
        // reads to the close and does not parse chunks).
        out.line("chunked_transfer_encoding off;")
        out.line("default_type text/plain;")
        out.line("location = /config { return 200 \"\(valid.spec.generation)\\n\"; }")
        out.open("location = /generation")
        out.lua("content_by_lua_block", NginxLua.generation)
        out.close()
        out.open("location = /routes")
        out.line("if ($peer_control_allowed = 0) { return 403 \"X-Peer-Control required\\n\"; }")
        out.line("client_max_body_size \(routesBodyMiBMax)m;")
        out.line("client_body_buffer_size \(routesBodyMiBMax)m;")
        out.lua("content_by_lua_block", NginxLua.update)
        out.close()
        out.line("location = /healthz { return 200 \"ok\\n\"; }")
        out.line("location / { return 404; }")
        out.close()
        out.blank()
    }

    static func renderRoutingServer(_ valid: ValidatedSpec, into out: inout ConfigWriter) {
        let spec = valid.spec
        out.line("# Routing server: every tenant's HTTP requests.")
        out.open("server")
        out.line("listen \(spec.listen);")
        out.line("server_name _;")
        if let statsAddress = spec.statsAddress {
            out.line("access_log syslog:server=\(statsAddress),tag=peer,severity=info peer_json;")
        } else {
            out.line("access_log off;")
        }
        out.line("default_type application/json;")
        out.line("recursive_error_pages on;")
        out.line("error_page 401 @peer_401;")
        out.line("error_page 403 @peer_403;")
        if valid.auth != nil { out.line("error_page 418 = \(tokenLocation);") }
        out.line("error_page 429 @peer_429;")
        out.line("error_page 500 @peer_500;")
        out.line("error_page 502 @peer_502;")
        out.line("error_page 504 @peer_504;")
        // The route variables exist only for requests that went through `location /`; the
        // access log of any other (an outside request for the internal token location) reads
        // them unset, which is not worth a warning per request.
        out.line("uninitialized_variable_warn off;")
        out.blank()
        out.open("location /")
        // Not at server level: the token subrequest shares its parent's variables and runs
        // the server's rewrite phase, so a server-level `set` would reset them mid-request.
        out.line("set $peer_tenant_known 0;")
        out.line("set $peer_rps 0;")
        out.line("set $peer_conn 0;")
        out.line("set $peer_requires_token 0;")
        out.lua("set_by_lua_block $peer_upstream", NginxLua.route)
        out.line("# Unknown tenant or component: answered here, before limits, auth or proxying.")
        out.line("if ($peer_upstream = \"\") { return 404 $peer_not_found_body; }")
        if valid.auth != nil { out.line("if ($peer_requires_token = 1) { return 418; }") }
        renderProxy(valid, auth: false, into: &out)
        out.close()
        out.blank()
        if let auth = valid.auth {
            out.open("location \(tokenLocation)")
            renderProxy(valid, auth: true, into: &out)
            out.close()
            out.blank()
            renderAuthLocation(auth, into: &out)
        }
        renderErrorLocations(into: &out)
        out.close()
    }

    private static func renderProxy(_ valid: ValidatedSpec, auth: Bool, into out: inout ConfigWriter) {
        for rate in requestRates(valid.spec) {
            out.line("limit_req zone=peer_rate_\(rate) burst=\(rate) nodelay;")
        }
        for limit in connectionLimits(valid.spec) {
            out.line("limit_conn peer_conn_\(limit) \(limit);")
        }
        if auth { out.line("auth_request \(authLocation);") }
        out.line("proxy_pass http://\(dynamicUpstream);")
        out.line("proxy_http_version 1.1;")
        out.line("proxy_set_header Connection \"\";")
        out.line("proxy_set_header Host $host;")
        out.line("proxy_set_header X-Tenant-ID $peer_tenant;")
        out.line("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")
    }

    /// `GET <authURL>/v1/auth/tenant/<tenant>` with the client's Authorization header, over
    /// verified TLS, answers cached `authCacheSeconds` per (tenant, Authorization).
    private static func renderAuthLocation(_ auth: AuthTarget, into out: inout ConfigWriter) {
        out.open("location = \(authLocation)")
        out.line("internal;")
        out.line("proxy_pass https://peer_auth/v1/auth/tenant/$peer_tenant;")
        out.line("proxy_method GET;")
        out.line("proxy_pass_request_body off;")
        out.line("proxy_http_version 1.1;")
        out.line("proxy_set_header Content-Length \"\";")
        out.line("proxy_set_header Connection \"\";")
        out.line("proxy_set_header Host \(auth.serverName);")
        out.line("proxy_ssl_server_name on;")
        out.line("proxy_ssl_name \(auth.serverName);")
        out.line("proxy_ssl_verify on;")
        // The peer's API speaks TLS 1.3 only; nginx 1.22 offers up to 1.2 unless told.
        out.line("proxy_ssl_protocols TLSv1.3;")
        out.line("proxy_ssl_verify_depth 3;")
        if let version = auth.caVersion { out.line("# the CA bundle's sha256: \(version)") }
        out.line("proxy_ssl_trusted_certificate \(auth.caFile);")
        out.line("proxy_connect_timeout 2s;")
        out.line("proxy_read_timeout 5s;")
        out.line("proxy_cache peer_auth;")
        out.line("proxy_cache_key \"$peer_tenant|$http_authorization\";")
        out.line("proxy_cache_valid 200 204 401 403 \(auth.cacheSeconds)s;")
        // Our validity, not the peer's cache headers, decides how long an answer is reused.
        out.line("proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;")
        out.close()
        out.blank()
    }

    /// JSON bodies for the statuses nginx itself produces. Only the validated tenant id is
    /// echoed, so the bodies are always valid JSON.
    private static func renderErrorLocations(into out: inout ConfigWriter) {
        let errors: [(name: String, status: Int, error: String)] = [
            ("peer_401", 401, "unauthorized"),
            ("peer_403", 403, "forbidden"),
            ("peer_429", 429, "too many requests"),
            ("peer_500", 500, "internal error"),
            ("peer_502", 502, "upstream unavailable"),
            ("peer_504", 504, "upstream timed out"),
        ]
        for entry in errors {
            out.line("location @\(entry.name) { return \(entry.status) '{\"error\":\"\(entry.error)\",\"tenant\":\"$peer_tenant\"}'; }")
        }
    }
}
