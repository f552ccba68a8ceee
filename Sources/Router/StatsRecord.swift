// The router's statistics intake (ARCHITECTURE §10, seed: "DFLB asks NGINX for statistics"):
// the local NGINX sends one JSON access-log line per request over syslog/UDP; the peer parses
// the lines (StatsParser), aggregates them over a sliding window (StatsAggregator) and reports
// the per-tenant and per-instance load to the leader. Soft state: never in the replicated log.

/// One request as the local NGINX logged it with the `peer_json` log format:
///
///     log_format peer_json escape=json '{"time":"$msec","tenant":"$peer_tenant",
///       "instance":"$peer_instance","component":"$peer_component","status":$status,
///       "request_time":$request_time,"upstream_time":"$upstream_response_time",
///       "bytes":$bytes_sent}';
///
/// Every field is validated by `StatsParser` before a record exists, so consumers can trust the
/// id shapes and the numeric ranges stated below (not Codable for that reason: decoding would
/// bypass the checks).
public struct StatsRecord: Sendable, Hashable {
    /// The tenant the router resolved (`$peer_tenant`); `nil` when NGINX matched no tenant (the
    /// map's empty default). Otherwise it matches `[a-z0-9][a-z0-9-]{0,62}`.
    public var tenant: String?
    /// The instance the router chose (`$peer_instance`); `nil` when empty. Otherwise 1...64 bytes
    /// of a-z, 0-9, '-', '_', '.' (the cluster's id rule).
    public var instance: String?
    /// The component the router chose (`$peer_component`); `nil` when empty. Same rule as `instance`.
    public var component: String?
    /// The HTTP status sent (`$status`): 100...599, or 0 when NGINX logged `000` (the request
    /// ended before any status was sent, e.g. the client went away).
    public var status: Int
    /// Time NGINX spent on the request (`$request_time`), in seconds, millisecond resolution.
    public var requestTimeSeconds: Double
    /// Time spent waiting on upstreams (`$upstream_response_time`), in seconds: the sum over
    /// every upstream attempt NGINX made. `nil` when the request reached no upstream (NGINX logs
    /// an empty string or "-").
    public var upstreamTimeSeconds: Double?
    /// Bytes sent to the client, headers included (`$bytes_sent`).
    public var bytes: Int64
    /// When NGINX finished the request (`$msec`), in Unix milliseconds.
    public var timeMs: Int64

    /// A record from already-validated values (tests and callers that synthesize load).
    /// `precondition`s state the same rules the parser enforces, so a record is always valid.
    public init(
        tenant: String?, instance: String?, component: String?, status: Int,
        requestTimeSeconds: Double, upstreamTimeSeconds: Double?, bytes: Int64, timeMs: Int64
    ) {
        precondition(tenant.map(StatsIds.isTenantId) ?? true, "invalid tenant id \(tenant ?? "")")
        precondition(instance.map(StatsIds.isId) ?? true, "invalid instance id \(instance ?? "")")
        precondition(component.map(StatsIds.isId) ?? true, "invalid component id \(component ?? "")")
        precondition(status == 0 || (100...599).contains(status), "status \(status) out of range")
        precondition(requestTimeSeconds >= 0 && requestTimeSeconds.isFinite, "requestTimeSeconds \(requestTimeSeconds)")
        precondition((upstreamTimeSeconds ?? 0) >= 0 && (upstreamTimeSeconds ?? 0).isFinite, "upstreamTimeSeconds \(upstreamTimeSeconds ?? 0)")
        precondition(bytes >= 0, "bytes \(bytes) < 0")
        self.tenant = tenant
        self.instance = instance
        self.component = component
        self.status = status
        self.requestTimeSeconds = requestTimeSeconds
        self.upstreamTimeSeconds = upstreamTimeSeconds
        self.bytes = bytes
        self.timeMs = timeMs
    }
}

/// Why a datagram was not a valid `peer_json` access-log line. Each case names one failure so
/// the listener can count and log them by `kind`. Values quoted from the datagram are cut to
/// `StatsParseError.quotedBytesMax` bytes so an error never carries a large payload.
public enum StatsParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Longer than `StatsParser.datagramBytesMax`; `byteCount` may be a lower bound when the
    /// socket truncated it.
    case tooLarge(byteCount: Int)
    /// Not an RFC 3164 message as NGINX frames it (`<PRI>Mmm dd hh:mm:ss host tag: `).
    case notSyslog(reason: String)
    /// A syslog message from another program (its tag is not `StatsParser.syslogTag`).
    case unexpectedTag(String)
    /// The syslog message holds no JSON object after the tag.
    case noJSON
    /// The JSON is malformed or uses what the log format never writes (nesting, duplicates).
    /// `offset` is the byte offset in the datagram.
    case badJSON(offset: Int, reason: String)
    /// A key of the log format is absent.
    case missingKey(String)
    /// A key holds the wrong JSON type (`expected` is "string" or "number").
    case wrongType(key: String, expected: String)
    /// A key holds the right type but a value outside its rule (range, shape).
    case invalidValue(key: String, reason: String)
    /// `tenant` is neither empty nor `[a-z0-9][a-z0-9-]{0,62}`.
    case invalidTenantId(String)
    /// `instance` or `component` is neither empty nor 1...64 bytes of a-z, 0-9, '-', '_', '.'.
    case invalidId(key: String, value: String)

    /// Values quoted in an error are cut to this many bytes.
    public static let quotedBytesMax = 64

    /// The failure's kind without its details: a bounded set to count and rate-limit logs by.
    public enum Kind: String, Sendable, Codable, CaseIterable, Hashable {
        case tooLarge, notSyslog, unexpectedTag, noJSON, badJSON, missingKey, wrongType
        case invalidValue, invalidTenantId, invalidId
    }

    public var kind: Kind {
        switch self {
        case .tooLarge: .tooLarge
        case .notSyslog: .notSyslog
        case .unexpectedTag: .unexpectedTag
        case .noJSON: .noJSON
        case .badJSON: .badJSON
        case .missingKey: .missingKey
        case .wrongType: .wrongType
        case .invalidValue: .invalidValue
        case .invalidTenantId: .invalidTenantId
        case .invalidId: .invalidId
        }
    }

    public var description: String {
        switch self {
        case .tooLarge(let count): "datagram of \(count) bytes exceeds \(StatsParser.datagramBytesMax)"
        case .notSyslog(let reason): "not a syslog message: \(reason)"
        case .unexpectedTag(let tag): "syslog tag \"\(tag)\" is not \"\(StatsParser.syslogTag)\""
        case .noJSON: "no JSON object after the syslog header"
        case .badJSON(let offset, let reason): "bad JSON at byte \(offset): \(reason)"
        case .missingKey(let key): "missing key \"\(key)\""
        case .wrongType(let key, let expected): "key \"\(key)\" is not a \(expected)"
        case .invalidValue(let key, let reason): "key \"\(key)\": \(reason)"
        case .invalidTenantId(let value): "tenant id \"\(value)\" is not [a-z0-9][a-z0-9-]{0,62}"
        case .invalidId(let key, let value): "\(key) \"\(value)\" is not 1...64 bytes of a-z 0-9 - _ ."
        }
    }

    /// `bytes` as printable ASCII for an error or a log line: at most `limit` bytes, every byte
    /// outside 0x20...0x7E (and the quote and backslash) written as `\xNN`.
    static func quoted<Bytes: Collection<UInt8>>(_ bytes: Bytes, limit: Int = quotedBytesMax) -> String {
        var text = ""
        for byte in bytes.prefix(limit) {
            if byte >= 0x20 && byte <= 0x7E && byte != 0x22 && byte != 0x5C {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16)
                text += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        if bytes.count > limit { text += "..." }
        return text
    }
}

/// The id rules the records must satisfy. Tenant ids follow the router's rule
/// `[a-z0-9][a-z0-9-]{0,62}` (a DNS label: tenant ids become host names); instance and component
/// ids follow the cluster model's id rule (1...64 bytes of a-z, 0-9, '-', '_', '.').
enum StatsIds {
    static let tenantIdBytesMax = 63
    static let idBytesMax = 64

    static func isTenantId(_ value: String) -> Bool { isTenantId(Array(value.utf8)) }

    static func isTenantId(_ bytes: [UInt8]) -> Bool {
        guard let first = bytes.first, bytes.count <= tenantIdBytesMax, isLowerAlnum(first) else { return false }
        return bytes.dropFirst().allSatisfy { isLowerAlnum($0) || $0 == 0x2D }
    }

    static func isId(_ value: String) -> Bool { isId(Array(value.utf8)) }

    static func isId(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty, bytes.count <= idBytesMax else { return false }
        return bytes.allSatisfy { isLowerAlnum($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
    }
}
