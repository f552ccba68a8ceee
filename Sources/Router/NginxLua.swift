/// The Lua code in the rendered config (Debian's `libnginx-mod-http-lua`, ADR 0008): the
/// per-request route lookup and the control server's route-table update. Fixed text: no
/// spec value is ever spliced into it.
///
/// The route table is the shared-memory dict `peer_routes` (one per nginx, shared by its
/// workers, kept across reloads). Its entries are `NginxRoutes.table`:
/// - `<tenant>` → `<requests/s> <connections> <token 0|1> <target of the first component>`
/// - `<tenant>|<component>` → `<target>` (`<instance>/<component>@<ip>:<port>`)
/// - `#generation` → the generation of the last complete update (absent while one runs).
enum NginxLua {
    /// The dict's name in `lua_shared_dict`.
    static let dict = "peer_routes"

    /// `set_by_lua_block $peer_upstream`: the request's upstream ("" for an unknown tenant or
    /// component) and, for the limits, token check and 404 body, `$peer_tenant_known`,
    /// `$peer_rps`, `$peer_conn` and `$peer_requires_token`. Two dict reads at most (a
    /// shared-memory lookup each); no allocation beyond the component key.
    static let route: [String] = [
        "local tenant = ngx.var.peer_tenant",
        "local routes = ngx.shared.peer_routes",
        "local route = tenant ~= \"\" and routes:get(tenant)",
        "local rps, conn, token, upstream",
        "if route then rps, conn, token, upstream = route:match(\"^(%d+) (%d+) ([01]) (%S+)$\") end",
        "if not upstream then",
        "    ngx.var.peer_tenant_known = route and \"1\" or \"0\"",
        "    return \"\"",
        "end",
        "ngx.var.peer_tenant_known = \"1\"",
        "ngx.var.peer_rps = rps",
        "ngx.var.peer_conn = conn",
        "ngx.var.peer_requires_token = token",
        "local component = ngx.var.http_x_component",
        "if component and component ~= \"\" then",
        "    return routes:get(tenant .. \"|\" .. component) or \"\"",
        "end",
        "return upstream",
    ]

    /// `balancer_by_lua_block` of the one upstream (`peer_dynamic`): connects to the address
    /// at the end of the request's target (`$peer_upstream`). An IPv6 address comes bracketed.
    static let balancer: [String] = [
        "local balancer = require \"ngx.balancer\"",
        "local host, port = ngx.var.peer_upstream:match(\"@%[?([^%]@]+)%]?:(%d+)$\")",
        "if not host then",
        "    ngx.log(ngx.ERR, \"peer: no address in the route target \", ngx.var.peer_upstream)",
        "    return ngx.exit(500)",
        "end",
        "local ok, err = balancer.set_current_peer(host, tonumber(port))",
        "if not ok then",
        "    ngx.log(ngx.ERR, \"peer: cannot send to \", host, \":\", port, \": \", err)",
        "    return ngx.exit(500)",
        "end",
    ]

    /// `content_by_lua_block` of the control server's `POST /routes` (body: `NginxRoutes.Push`).
    /// Answers 200 with the new generation; 409 with the table's generation (or `none`) when a
    /// delta's base is not the table's; 400 for a malformed body (nothing changed); 507 when
    /// the table is full (entries already set stay, but the table's generation is gone, so
    /// the next push must be full).
    static let update: [String] = [
        "if ngx.req.get_method() ~= \"POST\" then ngx.status = 405; ngx.say(\"POST only\"); return end",
        "ngx.req.read_body()",
        "local body = ngx.req.get_body_data()",
        "if not body then",
        "    local path = ngx.req.get_body_file()",
        "    local file = path and io.open(path, \"rb\")",
        "    if file then body = file:read(\"*a\"); file:close() end",
        "end",
        "if not body then ngx.status = 400; ngx.say(\"no body\"); return end",
        "local mode, base, generation, rest = body:match(\"^peer%-routes 1\\n(%l+) ?(%d*)\\ngeneration (%d+)\\n(.*)$\")",
        "if not mode or (mode ~= \"full\" and mode ~= \"delta\") or (mode == \"delta\") == (base == \"\") then",
        "    ngx.status = 400; ngx.say(\"malformed header\"); return",
        "end",
        "if rest:sub(-4) ~= \"end\\n\" then ngx.status = 400; ngx.say(\"truncated: no end line\"); return end",
        "local routes = ngx.shared.peer_routes",
        "local live = routes:get(\"#generation\")",
        "if mode == \"delta\" and live ~= base then ngx.status = 409; ngx.say(live or \"none\"); return end",
        "local sets, deletes, line_number = {}, {}, 3",
        "for line in rest:sub(1, -5):gmatch(\"([^\\n]*)\\n\") do",
        "    line_number = line_number + 1",
        "    local key, value = line:match(\"^s (%S+) (.+)$\")",
        "    if key then",
        "        sets[#sets + 1] = key; sets[#sets + 1] = value",
        "    else",
        "        key = line:match(\"^d (%S+)$\")",
        "        if not key then ngx.status = 400; ngx.say(\"line \", line_number, \": malformed\"); return end",
        "        deletes[#deletes + 1] = key",
        "    end",
        "end",
        "routes:delete(\"#generation\")",
        "for i = 1, #sets, 2 do",
        "    local ok, err = routes:safe_set(sets[i], sets[i + 1])",
        "    if not ok then",
        "        ngx.status = 507",
        "        ngx.say(\"route table full after \", (i - 1) / 2, \" of \", #sets / 2, \" entries: \", err)",
        "        return",
        "    end",
        "end",
        "for _, key in ipairs(deletes) do routes:delete(key) end",
        "if mode == \"full\" then",
        "    local wanted = {}",
        "    for i = 1, #sets, 2 do wanted[sets[i]] = true end",
        "    for _, key in ipairs(routes:get_keys(0)) do",
        "        if not wanted[key] then routes:delete(key) end",
        "    end",
        "end",
        "local ok, err = routes:safe_set(\"#generation\", generation)",
        "if not ok then ngx.status = 507; ngx.say(\"route table full: \", err); return end",
        "ngx.say(generation)",
    ]

    /// `content_by_lua_block` of `GET /generation`: the table's generation, `none` before the
    /// first complete update.
    static let generation: [String] = [
        "ngx.say(ngx.shared.peer_routes:get(\"#generation\") or \"none\")",
    ]
}
