@preconcurrency import Yams

/// Reads a composed YAML tree against the schema and turns every surprise into a `ConfigError`
/// with a key path. The tree comes from Yams' composer (`Node`, with line marks); nothing here
/// uses Yams' own type resolution, so `"7101"`, `7101` and `0x1D9D` are never silently the same.
struct YAMLReader {
    let file: String?

    func error(_ keyPath: String, _ node: Node?, _ reason: String) -> ConfigError {
        ConfigError(file: file, keyPath: keyPath, line: node?.mark?.line, reason: reason)
    }

    func error(_ keyPath: String, line: Int?, _ reason: String) -> ConfigError {
        ConfigError(file: file, keyPath: keyPath, line: line, reason: reason)
    }

    /// The entries of a mapping, each key checked to be a plain string and to occur once, and
    /// every key to be one the schema knows (`allowed`, in the order the docs list them).
    func mapping(_ node: Node, at keyPath: String, allowed: [String], what: String) throws(ConfigError) -> Mapping {
        guard case .mapping(let mapping) = node else {
            throw error(keyPath, node, "must be a mapping of \(what), got \(describe(node))")
        }
        var entries: [String: Mapping.Entry] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                throw error(keyPath, keyNode, "keys must be plain names, got \(describe(keyNode))")
            }
            let key = scalar.string
            let path = Self.join(keyPath, key)
            if let first = entries[key] {
                let also = first.keyLine.map { " (also on line \($0))" } ?? ""
                throw error(path, keyNode, "duplicate key '\(key)'\(also)")
            }
            guard allowed.contains(key) else {
                let hint = Self.suggestion(for: key, among: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                throw error(path, keyNode, "unknown key '\(key)'\(hint)")
            }
            entries[key] = Mapping.Entry(keyLine: keyNode.mark?.line, value: value)
        }
        return Mapping(keyPath: keyPath, line: node.mark?.line, entries: entries)
    }

    /// A mapping whose keys have been checked.
    struct Mapping {
        struct Entry {
            var keyLine: Int?
            var value: Node
        }

        let keyPath: String
        let line: Int?
        let entries: [String: Entry]

        func path(_ key: String) -> String { YAMLReader.join(keyPath, key) }

        /// The value under `key`; nil when the key is absent or its value is null (`~`, empty).
        func value(_ key: String) -> Node? {
            guard let node = entries[key]?.value, !YAMLReader.isNull(node) else { return nil }
            return node
        }
    }

    func required(_ map: Mapping, _ key: String) throws(ConfigError) -> Node {
        guard let node = map.value(key) else {
            if let entry = map.entries[key] {
                throw error(map.path(key), entry.value, "missing value for required key '\(key)'")
            }
            throw error(map.path(key), line: map.line, "missing required key '\(key)'")
        }
        return node
    }

    /// A non-empty string. Numbers and booleans are taken as the text they are written as (a
    /// cluster may be called `123`), but a list or a mapping is not a string.
    func string(_ node: Node, at keyPath: String) throws(ConfigError) -> String {
        guard case .scalar(let scalar) = node else {
            throw error(keyPath, node, "must be a string, got \(describe(node))")
        }
        guard !scalar.string.isEmpty else { throw error(keyPath, node, "must not be empty") }
        return scalar.string
    }

    /// A decimal integer within `range`. Quoted numbers, YAML 1.1 forms (`0x10`, `1_000`,
    /// `0o17`) and fractions are refused: one spelling per value.
    func integer<T: FixedWidthInteger>(_ node: Node, at keyPath: String, in range: ClosedRange<T>) throws(ConfigError) -> T {
        guard case .scalar(let scalar) = node else {
            throw error(keyPath, node, "must be an integer, got \(describe(node))")
        }
        let text = scalar.string
        if scalar.style == .singleQuoted || scalar.style == .doubleQuoted {
            throw error(keyPath, node, "must be an integer, got the quoted string '\(text)' (remove the quotes)")
        }
        let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw error(keyPath, node, "must be an integer, got '\(text)'")
        }
        guard let value = T(text), range.contains(value) else {
            throw error(keyPath, node, "\(text) is out of range \(range.lowerBound)-\(range.upperBound)")
        }
        return value
    }

    /// `true` or `false`, unquoted: one spelling (YAML 1.1's `yes`/`on` are refused).
    func boolean(_ node: Node, at keyPath: String) throws(ConfigError) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else {
            throw error(keyPath, node, "must be true or false, got \(describe(node))")
        }
        switch scalar.string {
        case "true": return true
        case "false": return false
        default: throw error(keyPath, node, "must be true or false, got '\(scalar.string)'")
        }
    }

    func sequence(_ node: Node, at keyPath: String, what: String) throws(ConfigError) -> [Node] {
        guard case .sequence(let sequence) = node else {
            throw error(keyPath, node, "must be a list of \(what), got \(describe(node))")
        }
        return Array(sequence)
    }

    /// How a node reads in a message: a scalar as its text, containers by kind.
    func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "'\(scalar.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    /// YAML's null: an empty plain value, `~` or `null`.
    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    static func join(_ keyPath: String, _ key: String) -> String { keyPath.isEmpty ? key : keyPath + "." + key }

    /// The allowed key closest to a misspelt one: same letters ignoring case, or at most two
    /// edits away (Levenshtein); nil when nothing is that close.
    static func suggestion(for key: String, among allowed: [String]) -> String? {
        if let sameCase = allowed.first(where: { $0.lowercased() == key.lowercased() }) { return sameCase }
        let scored = allowed.map { (name: $0, distance: editDistance(Array($0.lowercased()), Array(key.lowercased()))) }
        guard let best = scored.min(by: { $0.distance < $1.distance }), best.distance <= 2 else { return nil }
        return best.name
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty else { return b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
