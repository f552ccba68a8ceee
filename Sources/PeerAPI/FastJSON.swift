// The write path's answers, encoded without Codable: a create's answer went through
// `JSONEncoder`'s boxing of every field (about 3% of the leader's CPU per create in the
// benchmark's profile). The bytes are exactly those of `JSONEncoder` with `.sortedKeys` (the
// encoder `AdminServer.json` uses); `FastJSONTests` holds them equal, escapes included.

/// A value `AdminServer.json` writes by hand instead of through `JSONEncoder`.
protocol FastJSONEncodable: Encodable {
    func appendJSON(to out: inout [UInt8])
}

enum FastJSON {
    static func encode(_ value: some FastJSONEncodable) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(384)
        value.appendJSON(to: &out)
        return out
    }

    /// A JSON string: `"` and `\` escaped, `/` as `\/`, control characters as `\b \t \n \f \r`
    /// or `\u00xx`; everything else as its UTF-8 bytes.
    static func string(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "/"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "/")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x00..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hexDigit(byte >> 4))
                out.append(hexDigit(byte & 0x0F))
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `"name":`, after a comma unless it is the object's first member (the separator follows
    /// from what is already written: a member comes right after `{` or after a value).
    static func key(_ name: StaticString, to out: inout [UInt8]) {
        if out.last != UInt8(ascii: "{") { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    static func stringMember(_ name: StaticString, _ value: String, to out: inout [UInt8]) {
        key(name, to: &out)
        string(value, to: &out)
    }

    static func integer(_ v: some BinaryInteger, to out: inout [UInt8]) {
        out.append(contentsOf: String(v).utf8)
    }

    private static func hexDigit(_ v: UInt8) -> UInt8 {
        v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "a") + v - 10
    }
}

extension TenantInfo: FastJSONEncodable {
    /// Keys in sorted order, like `JSONEncoder(.sortedKeys)`; a nil `activeInstance` is left out.
    func appendJSON(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        if let activeInstance { FastJSON.stringMember("activeInstance", activeInstance, to: &out) }
        FastJSON.key("components", to: &out)
        out.append(UInt8(ascii: "["))
        for (i, c) in components.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            FastJSON.string(c, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        FastJSON.key("createdAtMs", to: &out)
        FastJSON.integer(createdAtMs, to: &out)
        FastJSON.stringMember("id", id, to: &out)
        FastJSON.stringMember("plan", plan, to: &out)
        FastJSON.stringMember("state", state, to: &out)
        out.append(UInt8(ascii: "}"))
    }
}

extension WriteResult: FastJSONEncodable {
    func appendJSON(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        FastJSON.stringMember("result", result, to: &out)
        if let tenant {
            FastJSON.key("tenant", to: &out)
            tenant.appendJSON(to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}

extension CreateTenantRequest {
    /// The create body in its plain form, the one the CLI and load drivers send: an object of
    /// the five known keys at most once each, strings of printable ASCII without escapes,
    /// `components` an array of such strings, `sequence` digits that fit a UInt64. Anything
    /// else (escapes, non-ASCII, null, unknown or repeated keys, malformed JSON) returns nil, and
    /// the caller decodes with `JSONDecoder`, whose result and errors stay the reference:
    /// FastJSONTests holds every non-nil answer equal to `JSONDecoder`'s.
    static func decodePlain(_ bytes: [UInt8]) -> CreateTenantRequest? {
        var p = PlainJSONParser(bytes)
        var id: String?, plan: String?, components: [String]?, clientId: String?, sequence: UInt64?
        var seen: UInt8 = 0
        guard p.take(UInt8(ascii: "{")) else { return nil }
        if !p.take(UInt8(ascii: "}")) {
            repeat {
                guard let key = p.plainString(), p.take(UInt8(ascii: ":")) else { return nil }
                let bit: UInt8
                switch key {
                case "id": bit = 1; guard let v = p.plainString() else { return nil }; id = v
                case "plan": bit = 2; guard let v = p.plainString() else { return nil }; plan = v
                case "clientId": bit = 4; guard let v = p.plainString() else { return nil }; clientId = v
                case "sequence": bit = 8; guard let v = p.unsigned() else { return nil }; sequence = v
                case "components":
                    bit = 16
                    guard p.take(UInt8(ascii: "[")) else { return nil }
                    var list: [String] = []
                    if !p.take(UInt8(ascii: "]")) {
                        repeat {
                            guard let v = p.plainString() else { return nil }
                            list.append(v)
                        } while p.take(UInt8(ascii: ","))
                        guard p.take(UInt8(ascii: "]")) else { return nil }
                    }
                    components = list
                default: return nil
                }
                guard seen & bit == 0 else { return nil }
                seen |= bit
            } while p.take(UInt8(ascii: ","))
            guard p.take(UInt8(ascii: "}")) else { return nil }
        }
        guard p.atEnd, let id else { return nil }
        return CreateTenantRequest(id: id, plan: plan, components: components, clientId: clientId, sequence: sequence)
    }
}

/// The tokens `decodePlain` accepts; every method skips JSON whitespace first.
struct PlainJSONParser {
    private let bytes: [UInt8]
    private var i = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
    }

    var atEnd: Bool {
        mutating get {
            skipSpace()
            return i == bytes.count
        }
    }

    mutating func take(_ byte: UInt8) -> Bool {
        skipSpace()
        guard i < bytes.count, bytes[i] == byte else { return false }
        i += 1
        return true
    }

    /// A string of printable ASCII other than `"` and `\`; nil for anything else.
    mutating func plainString() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = i
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                return String(decoding: bytes[start..<(i - 1)], as: UTF8.self)
            }
            guard b >= 0x20, b < 0x7F, b != UInt8(ascii: "\\") else { return nil }
            i += 1
        }
        return nil
    }

    /// Digits without a leading zero (or one "0") that fit a UInt64, followed by a delimiter.
    mutating func unsigned() -> UInt64? {
        skipSpace()
        let start = i
        var value: UInt64 = 0
        while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(bytes[i] - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = sum
            i += 1
        }
        let digits = i - start
        guard digits > 0, digits == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
        // "1.5", "1e3", "12abc": not plain; JSONDecoder decides.
        if i < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), 0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { return nil }
        return value
    }
}
