import Controller
import Crypto
import Foundation

/// How the Open Service Broker API (`/v2`, docs/broker.md) runs on a peer: the platform's
/// credentials (only a salted hash of the password), the catalog, and the numbers the leader's
/// operation driver places tenants with. Built by the `peer` executable from the cluster
/// configuration; this target does not read configuration files.
public struct BrokerConfiguration: Sendable {
    public var username: String
    public var password: PasswordVerifier
    public var catalog: BrokerCatalog
    /// `{tenant}` is replaced by the tenant id (`broker.tenantURL`).
    public var tenantURLTemplate: String
    public var instanceCapacityUnits: UInt64
    public var provisionTimeoutMs: Int64
    /// `Retry-After` of `last_operation` while an operation runs.
    public var retryAfterSeconds: Int

    public init(username: String, password: PasswordVerifier, catalog: BrokerCatalog, tenantURLTemplate: String, instanceCapacityUnits: UInt64, provisionTimeoutMs: Int64, retryAfterSeconds: Int) {
        self.username = username
        self.password = password
        self.catalog = catalog
        self.tenantURLTemplate = tenantURLTemplate
        self.instanceCapacityUnits = instanceCapacityUnits
        self.provisionTimeoutMs = provisionTimeoutMs
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// What the leader places tenants with: the same numbers the broker answers with.
    public var placementPolicy: PlacementPolicy {
        PlacementPolicy(instanceCapacityUnits: instanceCapacityUnits, weightUnitsByPlan: catalog.weightUnitsByPlan, provisionTimeoutMs: provisionTimeoutMs)
    }

    func tenantURL(_ tenant: String) -> String {
        tenantURLTemplate.replacingOccurrences(of: "{tenant}", with: tenant)
    }
}

/// The broker password's verifier: `sha256:<salt hex>:<SHA-256(salt || password) hex>`. The
/// password is 256 random bits (`peer init`), so one salted SHA-256 is enough: a slow KDF guards
/// low-entropy human passwords against guessing, and 2^256 guesses are out of reach anyway.
public struct PasswordVerifier: Sendable, Hashable {
    public let salt: [UInt8]
    public let digest: [UInt8]

    public static let saltBytes = 16
    public static let prefix = "sha256:"

    public init(salt: [UInt8], digest: [UInt8]) {
        self.salt = salt
        self.digest = digest
    }

    /// A verifier for `password` with a fresh random salt.
    public static func make(password: String) -> PasswordVerifier {
        var g = SystemRandomNumberGenerator()
        let salt = (0..<saltBytes).map { _ in UInt8.random(in: 0...255, using: &g) }
        return PasswordVerifier(salt: salt, digest: hash(salt: salt, password: password))
    }

    static func hash(salt: [UInt8], password: String) -> [UInt8] {
        Array(SHA256.hash(data: salt + Array(password.utf8)))
    }

    /// Constant time in the password's hash (the comparison never stops early).
    public func matches(_ password: String) -> Bool {
        let presented = Self.hash(salt: salt, password: password)
        var diff: UInt8 = 0
        for i in 0..<digest.count { diff |= presented[i] ^ digest[i] }
        return diff == 0 && presented.count == digest.count
    }

    /// The file's one line.
    public var encoded: String { Self.prefix + hex(salt) + ":" + hex(digest) }

    /// Parses the file's text; nil names nothing but "not a verifier" (the caller says which file).
    public init?(encoded text: String) {
        let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard line.hasPrefix(Self.prefix) else { return nil }
        let parts = line.dropFirst(Self.prefix.count).split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let salt = unhex(parts[0]), let digest = unhex(parts[1]),
              salt.count >= 8, digest.count == SHA256.byteCount
        else { return nil }
        self.init(salt: salt, digest: digest)
    }
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

func unhex<S: StringProtocol>(_ text: S) -> [UInt8]? {
    let chars = Array(text.utf8)
    guard chars.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(chars.count / 2)
    var i = 0
    while i < chars.count {
        guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}

private func nibble(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x61...0x66: return c - 0x61 + 10
    default: return nil
    }
}

/// The services and plans of `/v2/catalog`, as configured (`catalog:`). Plan ids are unique
/// across the catalog (the configuration checks it), so a plan id names its service too.
public struct BrokerCatalog: Sendable, Hashable {
    public struct Service: Sendable, Hashable {
        public var id: String
        public var name: String
        public var description: String
        public var tags: [String]
        public var plans: [Plan]

        public init(id: String, name: String, description: String, tags: [String], plans: [Plan]) {
            self.id = id
            self.name = name
            self.description = description
            self.tags = tags
            self.plans = plans
        }
    }

    public struct Plan: Sendable, Hashable {
        public var id: String
        public var name: String
        public var description: String
        /// Sorted, unique.
        public var components: [String]
        public var weightUnits: UInt64
        public var requestsPerSecond: UInt32
        public var connectionsMax: UInt32
        public var free: Bool
        public var maintenanceVersion: String?

        public init(id: String, name: String, description: String, components: [String], weightUnits: UInt64, requestsPerSecond: UInt32, connectionsMax: UInt32, free: Bool, maintenanceVersion: String?) {
            self.id = id
            self.name = name
            self.description = description
            self.components = components.sorted()
            self.weightUnits = weightUnits
            self.requestsPerSecond = requestsPerSecond
            self.connectionsMax = connectionsMax
            self.free = free
            self.maintenanceVersion = maintenanceVersion
        }
    }

    public var services: [Service]

    public init(services: [Service]) {
        self.services = services
    }

    public func plan(id: String) -> (service: Service, plan: Plan)? {
        for service in services {
            if let plan = service.plans.first(where: { $0.id == id }) { return (service, plan) }
        }
        return nil
    }

    /// Units by plan id, and by plan name for tenants the admin API made with a plan name.
    var weightUnitsByPlan: [String: UInt64] {
        var units: [String: UInt64] = [:]
        for service in services {
            for plan in service.plans where units[plan.name] == nil { units[plan.name] = plan.weightUnits }
        }
        for service in services {
            for plan in service.plans { units[plan.id] = plan.weightUnits }
        }
        return units
    }
}
