/// Bounds on everything the replicated state holds. A command that would exceed one is
/// rejected with `limitReached`; a snapshot that exceeds one is refused. Raising a limit is
/// safe; lowering one can make an old snapshot undecodable, so it needs a migration note.
public enum ClusterLimits {
    public static let idBytesMax = 64
    /// A DNS label's limit: tenant ids are host names.
    public static let tenantIdBytesMax = 63
    public static let addressBytesMax = 255
    public static let versionBytesMax = 64
    public static let planBytesMax = 64
    public static let descriptionBytesMax = 1024
    /// OSB `X-Broker-API-Originating-Identity` (platform name and base64 JSON) as recorded.
    public static let originatingIdentityBytesMax = 1024
    public static let clientIdBytesMax = 128
    public static let instancesMax = 1024
    public static let tenantsMax = 250_000
    public static let componentsPerTenantMax = 16
    /// One active, one preparing (a move), and draining ones still in their grace period.
    public static let placementsPerTenantMax = 4
    public static let bindingsPerTenantMax = 64
    public static let operationsMax = 200_000
    public static let intentsMax = 1024
    /// The most events a `RecordEvent` may ask to keep (`events.retain` is at most this).
    public static let eventsMax = 100_000
    public static let eventMeasuresMax = 16
    public static let eventMovesMax = 256
    /// Raft thesis §6.3: sessions are expired deterministically; the least recently used goes.
    public static let clientSessionsMax = 4096
    public static let votersTargetAllowed: Set<UInt32> = [1, 3, 5]
}

/// Field validation shared by apply and snapshot decode (the same rules on both sides).
enum Validate {
    /// Ids are DNS-label-like so they are safe in nginx configs, file names and URLs.
    static func id(_ value: String, _ field: String) throws(Rejection) {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= ClusterLimits.idBytesMax else {
            throw Rejection(.invalidField, "\(field) must be 1...\(ClusterLimits.idBytesMax) bytes, got \(bytes.count)")
        }
        for byte in bytes where !isIdByte(byte) {
            throw Rejection(.invalidField, "\(field) may hold only a-z, 0-9, '-', '_', '.': \(quoted(value))")
        }
    }

    /// Tenant ids become host names (`<tenant>.<domain>`, ARCHITECTURE §10): a DNS label, so
    /// 1...63 bytes of a-z, 0-9 and '-', not starting or ending with '-'.
    static func tenantId(_ value: String) throws(Rejection) {
        try id(value, "tenant id")
        let bytes = Array(value.utf8)
        guard bytes.count <= ClusterLimits.tenantIdBytesMax, bytes.first != 0x2D, bytes.last != 0x2D,
              bytes.allSatisfy({ $0 != 0x2E && $0 != 0x5F })
        else {
            throw Rejection(.invalidField, "tenant id must be a DNS label (a-z, 0-9, '-', at most \(ClusterLimits.tenantIdBytesMax) bytes): \(quoted(value))")
        }
    }

    static func text(_ value: String, _ field: String, max: Int, required: Bool) throws(Rejection) {
        let count = value.utf8.count
        if required && count == 0 { throw Rejection(.invalidField, "\(field) is required") }
        guard count <= max else { throw Rejection(.invalidField, "\(field) is \(count) bytes, max \(max)") }
        for scalar in value.unicodeScalars where scalar.value < 0x20 || scalar.value == 0x7F {
            throw Rejection(.invalidField, "\(field) holds a control character")
        }
    }

    /// host:port with a port in 1...65535; the host is checked for shape only.
    static func address(_ value: String) throws(Rejection) {
        try text(value, "address", max: ClusterLimits.addressBytesMax, required: true)
        guard let colon = value.lastIndex(of: ":"), colon != value.startIndex,
              let port = UInt32(value[value.index(after: colon)...]), (1...65535).contains(port)
        else { throw Rejection(.invalidField, "address must be host:port, got \(quoted(value))") }
        guard !value.contains(" ") else { throw Rejection(.invalidField, "address holds a space") }
    }

    /// `a.b.c.d:port` or `[ipv6]:port` (checked by `address` first).
    static func hasIPHost(_ address: String) -> Bool {
        guard let colon = address.lastIndex(of: ":") else { return false }
        let host = address[..<colon]
        if host.hasPrefix("[") { return host.hasSuffix("]") && host.dropFirst().dropLast().allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in (1...3).contains(p.count) && p.allSatisfy(\.isASCII) && p.allSatisfy(\.isNumber) && Int(p)! <= 255 }
    }

    static func tokenHash(_ value: String) throws(Rejection) {
        guard value.utf8.count == 64, value.utf8.allSatisfy({ isLowerHex($0) }) else {
            throw Rejection(.invalidField, "token_sha256_hex must be 64 lowercase hex digits (a SHA-256)")
        }
    }

    /// Empty, or a SHA-256 as 64 lowercase hex digits.
    static func optionalHash(_ value: String, _ field: String) throws(Rejection) {
        guard value.isEmpty || (value.utf8.count == 64 && value.utf8.allSatisfy({ isLowerHex($0) })) else {
            throw Rejection(.invalidField, "\(field) must be empty or 64 lowercase hex digits (a SHA-256)")
        }
    }

    static func time(_ value: Int64, _ field: String) throws(Rejection) {
        guard value > 0 else { throw Rejection(.invalidField, "\(field) must be a positive Unix ms time, got \(value)") }
    }

    /// Sorted and unique, so equal tenants encode to equal bytes on every replica.
    static func components(_ values: [String]) throws(Rejection) -> [String] {
        guard !values.isEmpty else { throw Rejection(.invalidField, "components: at least one is required") }
        guard values.count <= ClusterLimits.componentsPerTenantMax else {
            throw Rejection(.limitReached, "components: \(values.count) > componentsPerTenantMax \(ClusterLimits.componentsPerTenantMax)")
        }
        for value in values { try id(value, "component") }
        let sorted = values.sorted()
        for i in sorted.indices.dropFirst() where sorted[i] == sorted[i - 1] {
            throw Rejection(.invalidField, "components: \(quoted(sorted[i])) is listed twice")
        }
        return sorted
    }

    static func quoted(_ value: String) -> String {
        let prefix = String(value.unicodeScalars.prefix(80).map { $0.value < 0x20 ? "?" : Character($0) })
        return "\"\(prefix)\""
    }

    private static func isIdByte(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x5F || byte == 0x2E
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66)
    }
}

extension ClusterState {
    /// Why `id` cannot name a tenant (apply's own rule), or nil: so a front end refuses such a
    /// request before anything reaches the log.
    public static func tenantIdProblem(_ id: String) -> String? {
        do {
            try Validate.tenantId(id)
            return nil
        } catch {
            return error.detail
        }
    }
}
