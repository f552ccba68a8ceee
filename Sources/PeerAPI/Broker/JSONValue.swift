import Foundation

/// Any JSON value, for the OSB bodies' free-form objects (`context`, `parameters`,
/// `bind_resource`): decoded strictly, and encoded canonically (sorted keys) so two requests
/// with the same attributes give the same digest.
public enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Double.self) {
            self = .number(n)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// Canonical bytes: keys sorted, no whitespace.
    var canonicalBytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }
}

/// Reads the fields of an OSB request object; anything malformed is 400 with a precise message. Unknown fields are
/// ignored (OSB "Vendor Extension Fields": receivers MUST ignore them).
struct OSBObject {
    let fields: [String: JSONValue]

    static let depthMax = 32

    init(body: [UInt8], what: String) throws(OSBReply) {
        guard !body.isEmpty else { throw OSBReply.badRequest("the request body is empty; expected a JSON object (\(what))") }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(body))
        } catch {
            throw OSBReply.badRequest("the request body is not valid JSON (\(what))")
        }
        guard let object = value.objectValue else { throw OSBReply.badRequest("the request body must be a JSON object (\(what))") }
        guard Self.depth(value) <= Self.depthMax else { throw OSBReply.badRequest("the request body nests deeper than \(Self.depthMax) levels") }
        fields = object
    }

    init(fields: [String: JSONValue]) {
        self.fields = fields
    }

    /// A required non-empty string.
    func requiredString(_ key: String) throws(OSBReply) -> String {
        guard let value = try optionalString(key) else { throw OSBReply.badRequest("\(key) is required (a non-empty string)") }
        return value
    }

    /// Absent: nil. Present: a non-empty string (JSON null is not a string: 400).
    func optionalString(_ key: String) throws(OSBReply) -> String? {
        switch fields[key] {
        case nil: return nil
        case .string(let s)?:
            guard !s.isEmpty else { throw OSBReply.badRequest("\(key) must be a non-empty string") }
            guard s.utf8.count <= OSBLimits.idBytesMax else { throw OSBReply.badRequest("\(key) is longer than \(OSBLimits.idBytesMax) bytes") }
            return s
        default: throw OSBReply.badRequest("\(key) must be a string")
        }
    }

    /// Absent: nil. Present: a JSON object (JSON null is not an object: 400).
    func optionalObject(_ key: String) throws(OSBReply) -> [String: JSONValue]? {
        switch fields[key] {
        case nil: return nil
        case .object(let o)?: return o
        default: throw OSBReply.badRequest("\(key) must be a JSON object")
        }
    }

    /// `maintenance_info.version`, if given.
    func maintenanceVersion() throws(OSBReply) -> String? {
        guard let info = try optionalObject("maintenance_info") else { return nil }
        return try OSBObject(fields: info).optionalString("version").map { $0 }
    }

    static func depth(_ value: JSONValue) -> Int {
        switch value {
        case .array(let a): return 1 + (a.map(depth).max() ?? 0)
        case .object(let o): return 1 + (o.values.map(depth).max() ?? 0)
        default: return 0
        }
    }
}

/// The broker's own bounds on what a platform sends.
enum OSBLimits {
    /// Instance, binding, service and plan ids and other strings: OSB sets no bound; GUIDs are 36.
    static let idBytesMax = 1024
    /// `X-Broker-API-Originating-Identity` is recorded in the replicated state.
    static let originatingIdentityBytesMax = 1024
    /// `X-Broker-API-Request-Identity` is echoed and logged.
    static let requestIdentityBytesMax = 1024
    /// An operation token the platform sends back (ours are 35 bytes; OSB allows 10,000 chars).
    static let operationBytesMax = 10_000
}
