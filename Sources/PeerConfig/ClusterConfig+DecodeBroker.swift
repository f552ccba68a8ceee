@preconcurrency import Yams

// Decoding of `broker:` and `catalog:` (docs/configuration.md). Same rules as the rest of the
// file: unknown keys refused with a suggestion, one spelling per value, every bound checked.

extension ConfigDecoder {
    static let brokerKeys = ["username", "passwordHashFile", "passwordFile", "tenantURL", "instanceCapacity", "provisionTimeoutMs", "retryAfterSeconds", "driverIntervalMs"]
    static let catalogKeys = ["services"]
    static let serviceKeys = ["id", "name", "description", "tags", "plans"]
    static let planKeys = ["id", "name", "description", "components", "weight", "quotas", "free", "maintenanceVersion", "userTokens"]
    static let quotaKeys = ["requestsPerSecond", "connectionsMax"]

    typealias Broker = ClusterConfig.Broker
    typealias Catalog = ClusterConfig.Catalog

    /// `broker:` or its defaults when `node` is nil.
    mutating func broker(_ node: Node?, at keyPath: String, cluster: String, tlsDir: String) throws(ConfigError) -> Broker {
        let defaults = Broker(
            username: Broker.defaultUsername,
            passwordHashFile: FilePath.join(tlsDir, Broker.defaultPasswordHashFileName),
            passwordFile: FilePath.join(tlsDir, Broker.defaultPasswordFileName),
            tenantURL: "http://\(Broker.tenantPlaceholder).\(cluster).localhost",
            instanceCapacity: Broker.defaultInstanceCapacity, provisionTimeoutMs: Broker.defaultProvisionTimeoutMs,
            retryAfterSeconds: Broker.defaultRetryAfterSeconds, driverIntervalMs: 0)
        guard let node else { return defaults }
        let map = try reader.mapping(node, at: keyPath, allowed: Self.brokerKeys, what: "broker settings (\(Self.brokerKeys.joined(separator: ", ")))")
        let username = try map.value("username").map { (n) throws(ConfigError) in try self.username(n, at: map.path("username")) } ?? defaults.username
        let hashFile = try map.value("passwordHashFile").map { (n) throws(ConfigError) in try path(n, at: map.path("passwordHashFile")) } ?? defaults.passwordHashFile
        let passwordFile = try map.value("passwordFile").map { (n) throws(ConfigError) in try path(n, at: map.path("passwordFile")) } ?? defaults.passwordFile
        if hashFile == passwordFile {
            throw reader.error(map.path("passwordFile"), map.value("passwordFile"), "must differ from passwordHashFile: the password and its hash are two files")
        }
        let tenantURL = try map.value("tenantURL").map { (n) throws(ConfigError) in try self.tenantURL(n, at: map.path("tenantURL")) } ?? defaults.tenantURL
        func int(_ key: String, _ range: ClosedRange<Int>, _ fallback: Int) throws(ConfigError) -> Int {
            guard let value = map.value(key) else { return fallback }
            record(map.path(key), value)
            return try reader.integer(value, at: map.path(key), in: range)
        }
        return Broker(
            username: username, passwordHashFile: hashFile, passwordFile: passwordFile, tenantURL: tenantURL,
            instanceCapacity: try int("instanceCapacity", Broker.instanceCapacityRange, defaults.instanceCapacity),
            provisionTimeoutMs: try int("provisionTimeoutMs", Broker.provisionTimeoutMsRange, defaults.provisionTimeoutMs),
            retryAfterSeconds: try int("retryAfterSeconds", Broker.retryAfterSecondsRange, defaults.retryAfterSeconds),
            driverIntervalMs: try int("driverIntervalMs", Broker.driverIntervalMsRange, defaults.driverIntervalMs))
    }

    /// Basic auth puts `user:password` in one header: no `:` in the user, printable ASCII only.
    private mutating func username(_ node: Node, at keyPath: String) throws(ConfigError) -> String {
        record(keyPath, node)
        let text = try reader.string(node, at: keyPath)
        guard text.count <= Broker.usernameCharactersMax,
              text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != ":" })
        else {
            throw reader.error(keyPath, node, "must be 1-\(Broker.usernameCharactersMax) printable ASCII characters without spaces or ':'")
        }
        return text
    }

    private mutating func tenantURL(_ node: Node, at keyPath: String) throws(ConfigError) -> String {
        record(keyPath, node)
        let text = try reader.string(node, at: keyPath)
        guard text.hasPrefix("http://") || text.hasPrefix("https://") else {
            throw reader.error(keyPath, node, "must start with http:// or https://, got '\(text)'")
        }
        guard text.contains(Broker.tenantPlaceholder) else {
            throw reader.error(keyPath, node, "must contain \(Broker.tenantPlaceholder) where the tenant id goes, e.g. https://\(Broker.tenantPlaceholder).apps.example.com")
        }
        guard text.utf8.count <= Broker.tenantURLBytesMax, text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw reader.error(keyPath, node, "must be at most \(Broker.tenantURLBytesMax) printable ASCII characters without spaces")
        }
        return text
    }

    mutating func catalog(_ node: Node, at keyPath: String) throws(ConfigError) -> Catalog {
        let map = try reader.mapping(node, at: keyPath, allowed: Self.catalogKeys, what: "the service catalog (services)")
        let servicesNode = try reader.required(map, "services")
        let items = try reader.sequence(servicesNode, at: map.path("services"), what: "services (each with id, name, description, plans)")
        guard !items.isEmpty, items.count <= Catalog.servicesMax else {
            throw reader.error(map.path("services"), servicesNode, "must list 1 to \(Catalog.servicesMax) services, got \(items.count)")
        }
        var services: [Catalog.Service] = []
        var serviceIds: [String: String] = [:], serviceNames: [String: String] = [:], planIds: [String: String] = [:]
        for (i, item) in items.enumerated() {
            let servicePath = "\(map.path("services"))[\(i)]"
            let service = try self.service(item, at: servicePath)
            if let first = serviceIds[service.id] {
                throw reader.error("\(servicePath).id", line: lines["\(servicePath).id"], "duplicate service id '\(service.id)' (also \(first))")
            }
            if let first = serviceNames[service.name] {
                throw reader.error("\(servicePath).name", line: lines["\(servicePath).name"], "duplicate service name '\(service.name)' (also \(first))")
            }
            serviceIds[service.id] = servicePath
            serviceNames[service.name] = servicePath
            for (j, plan) in service.plans.enumerated() {
                let planPath = "\(servicePath).plans[\(j)]"
                if let first = planIds[plan.id] {
                    throw reader.error("\(planPath).id", line: lines["\(planPath).id"], "duplicate plan id '\(plan.id)' (also \(first)): plan ids are unique across the catalog")
                }
                planIds[plan.id] = planPath
            }
            services.append(service)
        }
        return Catalog(services: services)
    }

    private mutating func service(_ node: Node, at keyPath: String) throws(ConfigError) -> Catalog.Service {
        record(keyPath, node)
        let map = try reader.mapping(node, at: keyPath, allowed: Self.serviceKeys, what: "service settings (\(Self.serviceKeys.joined(separator: ", ")))")
        let id = try catalogId(try reader.required(map, "id"), at: map.path("id"))
        let name = try catalogName(try reader.required(map, "name"), at: map.path("name"))
        let description = try catalogDescription(try reader.required(map, "description"), at: map.path("description"))
        let tags = try map.value("tags").map { (n) throws(ConfigError) in try self.tags(n, at: map.path("tags")) } ?? []
        let plansNode = try reader.required(map, "plans")
        let items = try reader.sequence(plansNode, at: map.path("plans"), what: "plans (each with id, name, description, components)")
        guard !items.isEmpty, items.count <= Catalog.plansPerServiceMax else {
            throw reader.error(map.path("plans"), plansNode, "must list 1 to \(Catalog.plansPerServiceMax) plans, got \(items.count)")
        }
        var plans: [Catalog.Plan] = []
        var names: [String: String] = [:]
        for (j, item) in items.enumerated() {
            let planPath = "\(map.path("plans"))[\(j)]"
            let plan = try self.plan(item, at: planPath)
            if let first = names[plan.name] {
                throw reader.error("\(planPath).name", line: lines["\(planPath).name"], "duplicate plan name '\(plan.name)' in this service (also \(first))")
            }
            names[plan.name] = planPath
            plans.append(plan)
        }
        return Catalog.Service(id: id, name: name, description: description, tags: tags, plans: plans)
    }

    private mutating func plan(_ node: Node, at keyPath: String) throws(ConfigError) -> Catalog.Plan {
        record(keyPath, node)
        let map = try reader.mapping(node, at: keyPath, allowed: Self.planKeys, what: "plan settings (\(Self.planKeys.joined(separator: ", ")))")
        let id = try catalogId(try reader.required(map, "id"), at: map.path("id"))
        let name = try catalogName(try reader.required(map, "name"), at: map.path("name"))
        let description = try catalogDescription(try reader.required(map, "description"), at: map.path("description"))
        let components = try self.components(try reader.required(map, "components"), at: map.path("components"))
        var weight = 1
        if let value = map.value("weight") {
            record(map.path("weight"), value)
            weight = try reader.integer(value, at: map.path("weight"), in: Catalog.weightRange)
        }
        var requestsPerSecond = 0, connectionsMax = 0
        if let quotas = map.value("quotas") {
            let q = try reader.mapping(quotas, at: map.path("quotas"), allowed: Self.quotaKeys, what: "quotas (requestsPerSecond, connectionsMax)")
            if let v = q.value("requestsPerSecond") { requestsPerSecond = try reader.integer(v, at: q.path("requestsPerSecond"), in: Catalog.quotaRange) }
            if let v = q.value("connectionsMax") { connectionsMax = try reader.integer(v, at: q.path("connectionsMax"), in: Catalog.quotaRange) }
        }
        let free = try map.value("free").map { (n) throws(ConfigError) in try reader.boolean(n, at: map.path("free")) } ?? true
        let maintenance = try map.value("maintenanceVersion").map { (n) throws(ConfigError) -> String in
            let text = try reader.string(n, at: map.path("maintenanceVersion"))
            guard text.count <= Catalog.idCharactersMax, text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                throw reader.error(map.path("maintenanceVersion"), n, "must be a semantic version (e.g. 1.2.0) of at most \(Catalog.idCharactersMax) characters")
            }
            return text
        }
        var plan = Catalog.Plan(
            id: id, name: name, description: description, components: components, weight: weight,
            requestsPerSecond: requestsPerSecond, connectionsMax: connectionsMax, free: free, maintenanceVersion: maintenance)
        if let n = map.value("userTokens") {
            plan.userTokens = try reader.boolean(n, at: map.path("userTokens"))
        }
        return plan
    }

    /// OSB recommends GUIDs; we allow 1-64 of `A-Za-z0-9._-`, safe in URLs and in the state.
    private mutating func catalogId(_ node: Node, at keyPath: String) throws(ConfigError) -> String {
        record(keyPath, node)
        let text = try reader.string(node, at: keyPath)
        guard text.count <= Catalog.idCharactersMax,
              text.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." || $0 == "_" })
        else {
            throw reader.error(keyPath, node, "invalid id '\(text)': use 1-\(Catalog.idCharactersMax) of A-Z, a-z, 0-9, '-', '.', '_' (a GUID is recommended)")
        }
        return text
    }

    /// OSB "CLI-friendly": alphanumerics, periods and hyphens, no spaces.
    private mutating func catalogName(_ node: Node, at keyPath: String) throws(ConfigError) -> String {
        record(keyPath, node)
        let text = try reader.string(node, at: keyPath)
        guard text.count <= Catalog.nameCharactersMax,
              text.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." })
        else {
            throw reader.error(keyPath, node, "invalid name '\(text)': use 1-\(Catalog.nameCharactersMax) of A-Z, a-z, 0-9, '-', '.' (CLI-friendly)")
        }
        return text
    }

    private mutating func catalogDescription(_ node: Node, at keyPath: String) throws(ConfigError) -> String {
        record(keyPath, node)
        let text = try reader.string(node, at: keyPath)
        guard text.utf8.count <= Catalog.descriptionBytesMax, !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw reader.error(keyPath, node, "must be one line of at most \(Catalog.descriptionBytesMax) bytes")
        }
        return text
    }

    private mutating func tags(_ node: Node, at keyPath: String) throws(ConfigError) -> [String] {
        record(keyPath, node)
        let items = try reader.sequence(node, at: keyPath, what: "tags (strings)")
        guard items.count <= Catalog.tagsMax else { throw reader.error(keyPath, node, "at most \(Catalog.tagsMax) tags, got \(items.count)") }
        var tags: [String] = []
        for (i, item) in items.enumerated() {
            let text = try reader.string(item, at: "\(keyPath)[\(i)]")
            guard text.count <= Catalog.nameCharactersMax, !text.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
                throw reader.error("\(keyPath)[\(i)]", item, "a tag is at most \(Catalog.nameCharactersMax) characters on one line")
            }
            tags.append(text)
        }
        return tags
    }

    /// Component types: 1-16, each 1-64 of `a-z0-9-_.` (they name processes and nginx upstreams).
    private mutating func components(_ node: Node, at keyPath: String) throws(ConfigError) -> [String] {
        record(keyPath, node)
        let items = try reader.sequence(node, at: keyPath, what: "component types (e.g. dfx-dev, dfc)")
        guard !items.isEmpty, items.count <= Catalog.componentsMax else {
            throw reader.error(keyPath, node, "must list 1 to \(Catalog.componentsMax) component types, got \(items.count)")
        }
        var seen: Set<String> = []
        for (i, item) in items.enumerated() {
            let text = try reader.string(item, at: "\(keyPath)[\(i)]")
            guard text.count <= Catalog.idCharactersMax,
                  text.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." || $0 == "_" })
            else {
                throw reader.error("\(keyPath)[\(i)]", item, "invalid component type '\(text)': use 1-\(Catalog.idCharactersMax) of a-z, 0-9, '-', '.', '_'")
            }
            guard seen.insert(text).inserted else { throw reader.error("\(keyPath)[\(i)]", item, "component type '\(text)' is listed twice") }
        }
        return seen.sorted()
    }
}
