@preconcurrency import Yams

// Decoding of `components:` and `router:` (docs/configuration.md). Same rules as the rest of the
// file: unknown keys refused with a suggestion, one spelling per value, every bound checked.

extension ConfigDecoder {
    static let componentKeys = ["name", "command", "args", "env", "portOffset", "healthPath", "reloadSignal", "stopTimeoutMs"]
    static let routerKeys = ["domain", "nginx", "workerProcesses", "authCacheSeconds", "confirmTimeoutMs", "moveTimeoutMs", "clientKeepaliveSeconds", "routeTableMiB"]
    static let componentsMax = 64

    typealias Component = ClusterConfig.Component
    typealias RouterSettings = ClusterConfig.RouterSettings

    mutating func componentCatalog(_ node: Node, at keyPath: String) throws(ConfigError) -> [Component] {
        record(keyPath, node)
        let items = try reader.sequence(node, at: keyPath, what: "components (each with name, command, portOffset)")
        guard !items.isEmpty, items.count <= Self.componentsMax else {
            throw reader.error(keyPath, node, "must list 1 to \(Self.componentsMax) components, got \(items.count)")
        }
        var result: [Component] = []
        var names: [String: String] = [:]
        var offsets: [Int: String] = [:]
        for (i, item) in items.enumerated() {
            let path = "\(keyPath)[\(i)]"
            let c = try component(item, at: path)
            if let first = names[c.name] {
                throw reader.error("\(path).name", line: lines["\(path).name"], "duplicate component '\(c.name)' (also \(first))")
            }
            if let first = offsets[c.portOffset] {
                throw reader.error("\(path).portOffset", line: lines["\(path).portOffset"], "portOffset \(c.portOffset) is already used by \(first): two components cannot listen on one port")
            }
            names[c.name] = path
            offsets[c.portOffset] = path
            result.append(c)
        }
        return result
    }

    private mutating func component(_ node: Node, at keyPath: String) throws(ConfigError) -> Component {
        record(keyPath, node)
        let map = try reader.mapping(node, at: keyPath, allowed: Self.componentKeys, what: "component settings (\(Self.componentKeys.joined(separator: ", ")))")
        let nameNode = try reader.required(map, "name")
        record(map.path("name"), nameNode)
        let name = try reader.string(nameNode, at: map.path("name"))
        guard name.count <= ClusterConfig.Catalog.idCharactersMax, name.first != "-", name.first != ".",
              name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." || $0 == "_" })
        else {
            throw reader.error(map.path("name"), nameNode, "invalid component name '\(name)': use 1-\(ClusterConfig.Catalog.idCharactersMax) of a-z, 0-9, '-', '.', '_', not starting with '-' or '.'")
        }
        let commandNode = try reader.required(map, "command")
        record(map.path("command"), commandNode)
        let command = try reader.string(commandNode, at: map.path("command"))
        guard !command.contains("\0"), command.hasPrefix("/") || !command.contains("/") else {
            throw reader.error(map.path("command"), commandNode, "must be an absolute path or a bare program name (looked up beside peer, then on PATH), got '\(command)'")
        }
        var args: [String] = []
        if let argsNode = map.value("args") {
            record(map.path("args"), argsNode)
            let items = try reader.sequence(argsNode, at: map.path("args"), what: "arguments (strings)")
            guard items.count <= Component.argsMax else {
                throw reader.error(map.path("args"), argsNode, "at most \(Component.argsMax) arguments, got \(items.count)")
            }
            for (i, item) in items.enumerated() {
                let p = "\(map.path("args"))[\(i)]"
                args.append(try argument(item, at: p))
            }
        }
        var env: [String: String] = [:]
        if let envNode = map.value("env") {
            record(map.path("env"), envNode)
            guard case .mapping(let pairs) = envNode else {
                throw reader.error(map.path("env"), envNode, "must be a mapping of NAME: value, got \(reader.describe(envNode))")
            }
            guard pairs.count <= Component.envMax else {
                throw reader.error(map.path("env"), envNode, "at most \(Component.envMax) variables, got \(pairs.count)")
            }
            for (k, v) in pairs {
                let keyText = (try? reader.string(k, at: map.path("env"))) ?? ""
                let p = YAMLReader.join(map.path("env"), keyText)
                guard !keyText.isEmpty, keyText.first.map({ !$0.isNumber }) == true,
                      keyText.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
                else {
                    throw reader.error(p, k, "invalid environment variable name '\(keyText)': use letters, digits and '_', not starting with a digit")
                }
                guard env[keyText] == nil else { throw reader.error(p, k, "duplicate variable '\(keyText)'") }
                env[keyText] = try argument(v, at: p)
            }
        }
        let offsetNode = try reader.required(map, "portOffset")
        record(map.path("portOffset"), offsetNode)
        let portOffset: Int = try reader.integer(offsetNode, at: map.path("portOffset"), in: Component.portOffsetRange)
        var healthPath = "/healthz"
        if let n = map.value("healthPath") {
            record(map.path("healthPath"), n)
            healthPath = try reader.string(n, at: map.path("healthPath"))
            guard healthPath.hasPrefix("/"), healthPath.utf8.count <= 256,
                  healthPath.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "?" && $0 != "#" })
            else {
                throw reader.error(map.path("healthPath"), n, "must be a path starting with '/' (at most 256 printable characters, no query), got '\(healthPath)'")
            }
        }
        var reloadSignal = "HUP"
        if let n = map.value("reloadSignal") {
            record(map.path("reloadSignal"), n)
            reloadSignal = try reader.string(n, at: map.path("reloadSignal"))
            guard Component.reloadSignals.contains(reloadSignal) else {
                throw reader.error(map.path("reloadSignal"), n, "must be one of \(Component.reloadSignals.joined(separator: ", ")), got '\(reloadSignal)'")
            }
        }
        var stopTimeoutMs = 10_000
        if let n = map.value("stopTimeoutMs") {
            record(map.path("stopTimeoutMs"), n)
            stopTimeoutMs = try reader.integer(n, at: map.path("stopTimeoutMs"), in: Component.stopTimeoutMsRange)
        }
        return Component(
            name: name, command: command, args: args, env: env, portOffset: portOffset, healthPath: healthPath,
            reloadSignal: reloadSignal, stopTimeoutMs: stopTimeoutMs)
    }

    /// One argument or environment value: a string (numbers are taken as written), bounded,
    /// without NUL; `{...}` must be one of the known placeholders so a typo is caught here.
    private func argument(_ node: Node, at keyPath: String) throws(ConfigError) -> String {
        guard case .scalar(let scalar) = node else {
            throw reader.error(keyPath, node, "must be a string, got \(reader.describe(node))")
        }
        let text = scalar.string
        guard text.utf8.count <= Component.argBytesMax, !text.contains("\0") else {
            throw reader.error(keyPath, node, "must be at most \(Component.argBytesMax) bytes without NUL")
        }
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { break }
            let placeholder = String(rest[open...close])
            guard Component.placeholders.contains(placeholder) else {
                throw reader.error(keyPath, node, "unknown placeholder \(placeholder); known: \(Component.placeholders.joined(separator: " "))")
            }
            rest = rest[rest.index(after: close)...]
        }
        return text
    }

    mutating func router(_ node: Node, at keyPath: String) throws(ConfigError) -> RouterSettings {
        let map = try reader.mapping(node, at: keyPath, allowed: Self.routerKeys, what: "router settings (\(Self.routerKeys.joined(separator: ", ")))")
        let d = RouterSettings.defaults
        var domain: String? = nil
        if let n = map.value("domain") {
            record(map.path("domain"), n)
            let text = try reader.string(n, at: map.path("domain")).lowercased()
            let labels = text.split(separator: ".", omittingEmptySubsequences: false)
            let valid = text.count <= 200 && labels.allSatisfy { label in
                !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                    && label.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
            }
            guard valid else {
                throw reader.error(map.path("domain"), n, "must be a DNS name (labels of a-z, 0-9, '-'; at most 200 characters), got '\(text)'")
            }
            domain = text
        }
        var nginx = d.nginx
        if let n = map.value("nginx") {
            nginx = try path(n, at: map.path("nginx"))
        }
        func int(_ key: String, _ range: ClosedRange<Int>, _ fallback: Int) throws(ConfigError) -> Int {
            guard let value = map.value(key) else { return fallback }
            record(map.path(key), value)
            return try reader.integer(value, at: map.path(key), in: range)
        }
        var settings = RouterSettings(
            domain: domain, nginx: nginx,
            workerProcesses: try int("workerProcesses", RouterSettings.workerProcessesRange, d.workerProcesses),
            authCacheSeconds: try int("authCacheSeconds", RouterSettings.authCacheSecondsRange, d.authCacheSeconds),
            confirmTimeoutMs: try int("confirmTimeoutMs", RouterSettings.confirmTimeoutMsRange, d.confirmTimeoutMs),
            moveTimeoutMs: try int("moveTimeoutMs", RouterSettings.moveTimeoutMsRange, d.moveTimeoutMs))
        settings.clientKeepaliveSeconds = try int("clientKeepaliveSeconds", RouterSettings.clientKeepaliveSecondsRange, d.clientKeepaliveSeconds)
        settings.routeTableMiB = try int("routeTableMiB", RouterSettings.routeTableMiBRange, d.routeTableMiB)
        return settings
    }
}
