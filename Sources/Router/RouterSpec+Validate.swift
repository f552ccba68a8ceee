/// A spec that passed `RouterSpec.validate()`, with the parts the renderer derives from it.
struct ValidatedSpec {
    let spec: RouterSpec
    /// Set when `authURL` is: the token check is part of the config whether or not a tenant
    /// needs it yet, so the first tenant that does needs no reload.
    let auth: AuthTarget?
}

/// The token-check endpoint, parsed from `authURL`.
struct AuthTarget: Equatable {
    /// `host:port` for the `upstream peer_auth` block.
    let address: String
    /// Verified against the peer's certificate and sent as SNI.
    let serverName: String
    let caFile: String
    let cacheSeconds: Int
    /// The bundle's digest, rendered as a comment: when it changes, so does the config, and
    /// NGINX reloads and reads the file again.
    let caVersion: String?
}

extension RouterSpec {
    /// Checks every field against the rules nginx needs (no config syntax can get through)
    /// and `RouterLimits`, and the cross-field rules: unique tenants and upstreams, every
    /// tenant's (instance, component) has an upstream, auth settings present when a tenant
    /// requires a token. Throws the first violation found.
    public func validate() throws(RouterSpecError) {
        _ = try validated()
    }

    func validated() throws(RouterSpecError) -> ValidatedSpec {
        try SpecCheck.absolutePath(prefix, field: "prefix")
        let (_, listenPort) = try SpecCheck.hostPort(listen, field: "listen")
        let (controlHost, controlPort) = try SpecCheck.hostPort(controlListen, field: "controlListen")
        guard SpecCheck.isLoopbackIPv4(controlHost) else {
            throw RouterSpecError(field: "controlListen", reason: "must be on 127.0.0.0/8, got \(SpecCheck.shown(controlListen))")
        }
        guard let controlToken, (32...128).contains(controlToken.utf8.count),
              controlToken.utf8.allSatisfy({ NginxNames.isAlphanumeric($0) }) else {
            throw RouterSpecError(field: "controlToken", reason: "required: 32-128 of [A-Za-z0-9] (NginxRouter sets it)")
        }
        guard listenPort != controlPort else {
            throw RouterSpecError(field: "controlListen", reason: "must use another port than listen (\(listenPort))")
        }
        guard (1...RouterLimits.workerProcessesMax).contains(workerProcesses) else {
            throw RouterSpecError(field: "workerProcesses", reason: "must be 1...\(RouterLimits.workerProcessesMax), got \(workerProcesses)")
        }
        if let domain { try SpecCheck.domain(domain, field: "domain") }
        try SpecCheck.absolutePath(moduleDirectory, field: "moduleDirectory")
        guard (1...RouterLimits.routeTableMiBMax).contains(routeTableMiB) else {
            throw RouterSpecError(field: "routeTableMiB", reason: "must be 1...\(RouterLimits.routeTableMiBMax), got \(routeTableMiB)")
        }
        if let statsAddress { _ = try SpecCheck.hostPort(statsAddress, field: "statsAddress") }
        try checkUpstreams()
        try checkTenants()
        return ValidatedSpec(spec: self, auth: try checkAuth())
    }

    private func checkUpstreams() throws(RouterSpecError) {
        guard upstreams.count <= RouterLimits.upstreamsMax else {
            throw RouterSpecError(field: "upstreams", reason: "\(upstreams.count) upstreams, max \(RouterLimits.upstreamsMax)")
        }
        var names = Set<String>()
        for (index, upstream) in upstreams.enumerated() {
            let field = "upstreams[\(index)]"
            try SpecCheck.name(upstream.instance, field: field + ".instance")
            try SpecCheck.name(upstream.component, field: field + ".component")
            let (host, _) = try SpecCheck.hostPort(upstream.address, field: field + ".address")
            // The balancer sets the peer per request by address; it resolves no names.
            guard host.hasPrefix("[") || SpecCheck.isIPv4(host) else {
                throw RouterSpecError(field: field + ".address", reason: "must be an IP address and port (NGINX's per-request balancer resolves no names), got \(SpecCheck.shown(upstream.address))")
            }
            guard names.insert(upstream.name).inserted else {
                throw RouterSpecError(field: field, reason: "duplicate upstream for instance \(upstream.instance) component \(upstream.component)")
            }
        }
    }

    private func checkTenants() throws(RouterSpecError) {
        guard tenants.count <= RouterLimits.tenantsMax else {
            throw RouterSpecError(field: "tenants", reason: "\(tenants.count) tenants, max \(RouterLimits.tenantsMax)")
        }
        let upstreamNames = Set(upstreams.map(\.name))
        var ids = Set<String>()
        for (index, tenant) in tenants.enumerated() {
            let field = "tenants[\(index)]"
            try SpecCheck.tenantId(tenant.id, field: field + ".id")
            guard ids.insert(tenant.id).inserted else {
                throw RouterSpecError(field: field + ".id", reason: "duplicate tenant \(tenant.id)")
            }
            try SpecCheck.name(tenant.instance, field: field + ".instance")
            try checkComponents(of: tenant, field: field, upstreamNames: upstreamNames)
            guard tenant.requestsPerSecond <= RouterLimits.requestsPerSecondMax else {
                throw RouterSpecError(field: field + ".requestsPerSecond", reason: "max \(RouterLimits.requestsPerSecondMax), got \(tenant.requestsPerSecond)")
            }
            guard tenant.connectionsMax <= RouterLimits.connectionsMax else {
                throw RouterSpecError(field: field + ".connectionsMax", reason: "max \(RouterLimits.connectionsMax), got \(tenant.connectionsMax)")
            }
        }
        for (index, rate) in requestRates.enumerated() where rate > RouterLimits.requestsPerSecondMax {
            throw RouterSpecError(field: "requestRates[\(index)]", reason: "max \(RouterLimits.requestsPerSecondMax), got \(rate)")
        }
        for (index, limit) in connectionLimits.enumerated() where limit > RouterLimits.connectionsMax {
            throw RouterSpecError(field: "connectionLimits[\(index)]", reason: "max \(RouterLimits.connectionsMax), got \(limit)")
        }
        let rates = NginxConfig.requestRates(self)
        guard rates.count <= RouterLimits.distinctRequestRatesMax else {
            throw RouterSpecError(field: "tenants", reason: "\(rates.count) distinct request rates (tenants' and requestRates), max \(RouterLimits.distinctRequestRatesMax)")
        }
        let connections = NginxConfig.connectionLimits(self)
        guard connections.count <= RouterLimits.distinctConnectionLimitsMax else {
            throw RouterSpecError(field: "tenants", reason: "\(connections.count) distinct connection limits (tenants' and connectionLimits), max \(RouterLimits.distinctConnectionLimitsMax)")
        }
    }

    private func checkComponents(of tenant: TenantRoute, field: String, upstreamNames: Set<String>) throws(RouterSpecError) {
        guard !tenant.components.isEmpty, tenant.components.count <= RouterLimits.componentsPerTenantMax else {
            throw RouterSpecError(field: field + ".components", reason: "must hold 1...\(RouterLimits.componentsPerTenantMax) components, got \(tenant.components.count)")
        }
        var seen = Set<String>()
        for (index, component) in tenant.components.enumerated() {
            try SpecCheck.name(component, field: field + ".components[\(index)]")
            guard seen.insert(component).inserted else {
                throw RouterSpecError(field: field + ".components[\(index)]", reason: "duplicate component \(component)")
            }
            guard upstreamNames.contains(NginxNames.upstream(instance: tenant.instance, component: component)) else {
                throw RouterSpecError(field: field + ".components[\(index)]", reason: "no upstream for instance \(tenant.instance) component \(component)")
            }
        }
    }

    private func checkAuth() throws(RouterSpecError) -> AuthTarget? {
        guard (0...3_600).contains(clientKeepaliveSeconds) else {
            throw RouterSpecError(field: "clientKeepaliveSeconds", reason: "must be 0...3600, got \(clientKeepaliveSeconds)")
        }
        guard (100...600_000).contains(controlTimeoutMs) else {
            throw RouterSpecError(field: "controlTimeoutMs", reason: "must be 100...600000, got \(controlTimeoutMs)")
        }
        guard (1...RouterLimits.authCacheSecondsMax).contains(authCacheSeconds) else {
            throw RouterSpecError(field: "authCacheSeconds", reason: "must be 1...\(RouterLimits.authCacheSecondsMax), got \(authCacheSeconds)")
        }
        if let authCAFile { try SpecCheck.absolutePath(authCAFile, field: "authCAFile") }
        if let authCAVersion, authCAVersion.isEmpty || authCAVersion.count > 64 || !authCAVersion.allSatisfy({ $0.isHexDigit && $0.isASCII }) {
            throw RouterSpecError(field: "authCAVersion", reason: "must be 1-64 hex digits, got \"\(authCAVersion.prefix(80))\"")
        }
        if let authServerName { try SpecCheck.host(authServerName, field: "authServerName") }
        var target: (address: String, host: String)?
        if let authURL { target = try SpecCheck.httpsURL(authURL, field: "authURL") }
        guard let target else {
            if let index = tenants.firstIndex(where: \.requiresToken) {
                throw RouterSpecError(field: "authURL", reason: "required: tenants[\(index)] (\(tenants[index].id)) requires a token")
            }
            return nil
        }
        guard let authCAFile else {
            throw RouterSpecError(field: "authCAFile", reason: "required with authURL (the peer's certificate is verified)")
        }
        return AuthTarget(address: target.address, serverName: authServerName ?? target.host, caFile: authCAFile, cacheSeconds: authCacheSeconds, caVersion: authCAVersion)
    }
}

/// Field rules. Each admits only bytes that are inert in an nginx config (no quote, `;`,
/// brace, space, `$`, `\`, `#` or control character can pass any of them).
enum SpecCheck {
    static func tenantId(_ value: String, field: String) throws(RouterSpecError) {
        let bytes = Array(value.utf8)
        guard (1...RouterLimits.tenantIdBytesMax).contains(bytes.count),
              isLowerAlnum(bytes[0]),
              bytes.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: "-") })
        else { throw RouterSpecError(field: field, reason: "tenant id must match [a-z0-9][a-z0-9-]{0,62}, got \(shown(value))") }
    }

    /// Instance and component names: 1-64 of `A-Za-z0-9._-`.
    static func name(_ value: String, field: String) throws(RouterSpecError) {
        let bytes = Array(value.utf8)
        guard (1...RouterLimits.nameBytesMax).contains(bytes.count),
              bytes.allSatisfy({ NginxNames.isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") })
        else { throw RouterSpecError(field: field, reason: "must be 1-\(RouterLimits.nameBytesMax) of A-Za-z0-9._-, got \(shown(value))") }
    }

    /// `host:port`: host is `[IPv6]`, or an IPv4 address or DNS name (`A-Za-z0-9.-`);
    /// port 1...65535.
    static func hostPort(_ value: String, field: String) throws(RouterSpecError) -> (host: String, port: UInt16) {
        guard let colon = value.lastIndex(of: ":") else {
            throw RouterSpecError(field: field, reason: "must be host:port, got \(shown(value))")
        }
        let host = String(value[..<colon])
        guard let port = port(String(value[value.index(after: colon)...])) else {
            throw RouterSpecError(field: field, reason: "port must be 1...65535, got \(shown(value))")
        }
        if host.hasPrefix("[") {
            let inner = host.utf8.dropFirst().dropLast()
            guard host.hasSuffix("]"), (2...45).contains(inner.count),
                  inner.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") })
            else { throw RouterSpecError(field: field, reason: "bad IPv6 host in \(shown(value))") }
        } else {
            try self.host(host, field: field)
        }
        return (host, port)
    }

    /// An IPv4 address or DNS name: 1-253 of `A-Za-z0-9.-`, not starting with `-` or `.`.
    static func host(_ value: String, field: String) throws(RouterSpecError) {
        let bytes = Array(value.utf8)
        guard (1...RouterLimits.hostBytesMax).contains(bytes.count),
              NginxNames.isAlphanumeric(bytes[0]),
              bytes.allSatisfy({ NginxNames.isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else { throw RouterSpecError(field: field, reason: "host must be an IPv4 address or DNS name, got \(shown(value))") }
    }

    /// Four decimal numbers 0-255 joined by dots.
    static func isIPv4(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in (1...3).contains(p.count) && p.allSatisfy { $0.isASCII && $0.isNumber } && Int(p)! <= 255 }
    }

    static func port(_ text: String) -> UInt16? {
        let bytes = Array(text.utf8)
        guard (1...5).contains(bytes.count), bytes.allSatisfy(isDigit), let value = Int(text), (1...65535).contains(value) else { return nil }
        return UInt16(value)
    }

    static func isLoopbackIPv4(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { part in
            (1...3).contains(part.utf8.count) && part.utf8.allSatisfy(isDigit) && (Int(part) ?? 256) <= 255
        }
    }

    /// Absolute, normalized (no `.`/`..`/empty component, no trailing `/`), `A-Za-z0-9/._-`.
    static func absolutePath(_ value: String, field: String) throws(RouterSpecError) {
        let bytes = Array(value.utf8)
        guard (2...RouterLimits.pathBytesMax).contains(bytes.count), bytes[0] == UInt8(ascii: "/"),
              bytes.allSatisfy({ NginxNames.isAlphanumeric($0) || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") })
        else { throw RouterSpecError(field: field, reason: "must be an absolute path of A-Za-z0-9/._- (2-\(RouterLimits.pathBytesMax) bytes), got \(shown(value))") }
        let components = value.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw RouterSpecError(field: field, reason: "must be normalized (no empty, . or .. component), got \(shown(value))")
        }
    }

    /// Lowercase DNS name whose labels are `[a-z0-9]([a-z0-9-]*[a-z0-9])?` of 1-63 bytes, short
    /// enough that `<tenant>.<domain>` is a valid host name.
    static func domain(_ value: String, field: String) throws(RouterSpecError) {
        let labels = value.split(separator: ".", omittingEmptySubsequences: false)
        let fits = value.utf8.count <= RouterLimits.hostBytesMax - RouterLimits.tenantIdBytesMax - 1
        let wellFormed = labels.allSatisfy { label in
            let bytes = Array(label.utf8)
            return (1...63).contains(bytes.count) && isLowerAlnum(bytes[0]) && isLowerAlnum(bytes[bytes.count - 1])
                && bytes.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
        }
        guard fits, wellFormed else {
            throw RouterSpecError(field: field, reason: "must be a lowercase DNS name of at most \(RouterLimits.hostBytesMax - RouterLimits.tenantIdBytesMax - 1) bytes, got \(shown(value))")
        }
    }

    /// `https://host[:port][/]`; returns the upstream address (port defaults to 443) and host.
    static func httpsURL(_ value: String, field: String) throws(RouterSpecError) -> (address: String, host: String) {
        guard value.hasPrefix("https://") else {
            throw RouterSpecError(field: field, reason: "must be https://host[:port], got \(shown(value))")
        }
        var rest = String(value.dropFirst("https://".count))
        if rest.hasSuffix("/") { rest.removeLast() }
        let hasPort = rest.hasPrefix("[") ? rest.contains("]:") : rest.contains(":")
        let address = hasPort ? rest : rest + ":443"
        let (host, _) = try hostPort(address, field: field)
        let bareHost = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        return (address, bareHost)
    }

    /// The value as a Swift debug string (quotes and escapes made visible), cut to 80 bytes.
    static func shown(_ value: String) -> String {
        let cut = value.utf8.count > 80 ? String(decoding: value.utf8.prefix(80), as: UTF8.self) + "…" : value
        return String(reflecting: cut)
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    static func isLowerAlnum(_ byte: UInt8) -> Bool { isDigit(byte) || (byte >= 0x61 && byte <= 0x7A) }
    static func isHexDigit(_ byte: UInt8) -> Bool { isDigit(byte) || (byte >= 0x61 && byte <= 0x66) || (byte >= 0x41 && byte <= 0x46) }
}
