/// The route table: every tenant's upstreams and limits, as nginx's Lua looks them up per
/// request (`NginxLua`), and the `POST /routes` bodies that move the table from one state to
/// the next. Pure: no I/O.
///
/// Entries (keys and values are validated spec text: no space, newline or `|` in a key part):
/// - `<tenant>` → `<requests/s> <connections> <token 0|1> <target of the first component>`
/// - `<tenant>|<component>` → `<target>`, for each of the tenant's components
///
/// A target is `<instance>/<component>@<ip>:<port>`: the per-request balancer
/// (`NginxLua.balancer`) connects to the address, the access log takes the instance and the
/// component from it. So an instance added or removed changes table entries only, never
/// NGINX's config: no reload (ADR 0008, ADR 0013).
public enum NginxRoutes {
    public typealias Table = [String: String]

    /// `<instance>/<component>@<address>`.
    public static func target(_ upstream: Upstream) -> String {
        "\(upstream.instance)/\(upstream.component)@\(upstream.address)"
    }

    /// The table for a spec that passed `RouterSpec.validate()` (every tenant's components have
    /// an upstream).
    public static func table(_ spec: RouterSpec) -> Table {
        var targets: [String: String] = [:]
        for upstream in spec.upstreams { targets[upstream.name] = Self.target(upstream) }
        func target(_ instance: String, _ component: String) -> String {
            targets[NginxNames.upstream(instance: instance, component: component)] ?? ""
        }
        var table = Table(minimumCapacity: spec.tenants.reduce(0) { $0 + 1 + $1.components.count })
        for tenant in spec.tenants {
            let first = target(tenant.instance, tenant.components[0])
            table[tenant.id] = "\(tenant.requestsPerSecond) \(tenant.connectionsMax) \(tenant.requiresToken ? 1 : 0) \(first)"
            for component in tenant.components {
                table[tenant.id + "|" + component] = target(tenant.instance, component)
            }
        }
        return table
    }

    /// One update of the table: the whole table (`base` nil) or the changes since the table
    /// was at generation `base`.
    public struct Push: Sendable {
        public let base: UInt64?
        public let generation: UInt64
        /// Entries set (new or changed), sorted by key.
        public let sets: [(key: String, value: String)]
        /// Keys removed, sorted.
        public let deletes: [String]

        public var isFull: Bool { base == nil }

        /// ```
        /// peer-routes 1
        /// full | delta <base>
        /// generation <N>
        /// s <key> <value>      (each set)
        /// d <key>              (each delete)
        /// end
        /// ```
        /// The `end` line lets the receiver refuse a truncated body.
        public var body: [UInt8] {
            var text = "peer-routes 1\n"
            if let base { text += "delta \(base)\n" } else { text += "full\n" }
            text += "generation \(generation)\n"
            for (key, value) in sets {
                text += "s "; text += key; text += " "; text += value; text += "\n"
            }
            for key in deletes {
                text += "d "; text += key; text += "\n"
            }
            text += "end\n"
            return Array(text.utf8)
        }
    }

    /// The whole of `table`, replacing whatever nginx holds.
    public static func full(_ table: Table, generation: UInt64) -> Push {
        Push(base: nil, generation: generation, sets: table.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, deletes: [])
    }

    /// What turns `old` (the table at generation `base`) into `new`.
    public static func delta(from old: Table, base: UInt64, to new: Table, generation: UInt64) -> Push {
        var sets: [(key: String, value: String)] = []
        for (key, value) in new where old[key] != value { sets.append((key, value)) }
        var deletes: [String] = []
        for key in old.keys where new[key] == nil { deletes.append(key) }
        sets.sort { $0.key < $1.key }
        deletes.sort()
        return Push(base: base, generation: generation, sets: sets, deletes: deletes)
    }
}
