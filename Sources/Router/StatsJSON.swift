/// A value of the flat JSON objects the `peer_json` log format produces.
enum StatsJSONValue: Equatable {
    case string(String)
    /// The number's bytes as written: `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`. Leading zeros are
    /// allowed (unlike strict JSON) because NGINX writes `$status` as `000` for a request that
    /// ended before a status was sent. The parser checks each field's shape itself.
    case number([UInt8])
    case bool(Bool)
    case null

    var typeName: String {
        switch self {
        case .string: "string"
        case .number: "number"
        case .bool: "boolean"
        case .null: "null"
        }
    }
}

/// A small, bounded reader for one flat JSON object (string keys; string, number, boolean or
/// null values). Why not JSONSerialization: it bridges `true` to a number, hides where an error
/// is, and accepts nesting we would then have to reject; this reader states each failure with its
/// byte offset. It never recurses (nesting is refused), reads each byte at most a few times, and
/// never traps on any input: every index is checked against `end`.
struct StatsJSONReader {
    /// More keys than the log format's eight leave room for fields added later; beyond this the
    /// line is refused rather than held.
    static let keysMax = 32

    private let bytes: [UInt8]
    private var index: Int
    private let end: Int

    /// Reads the object that starts at `start` (a `{`) and must run to the end of `bytes`,
    /// trailing whitespace aside.
    static func readObject(_ bytes: [UInt8], from start: Int) throws(StatsParseError) -> [String: StatsJSONValue] {
        var reader = StatsJSONReader(bytes: bytes, index: start, end: bytes.count)
        let object = try reader.object()
        reader.skipWhitespace()
        guard reader.index == reader.end else { throw reader.fail("trailing bytes after the object") }
        return object
    }

    private mutating func object() throws(StatsParseError) -> [String: StatsJSONValue] {
        guard peek() == UInt8(ascii: "{") else { throw fail("expected '{'") }
        index += 1
        var object: [String: StatsJSONValue] = [:]
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return object
        }
        while true {
            skipWhitespace()
            let keyOffset = index
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try string()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw fail("expected ':' after a key") }
            index += 1
            skipWhitespace()
            let value = try value()
            guard object[key] == nil else {
                throw StatsParseError.badJSON(offset: keyOffset, reason: "duplicate key \"\(StatsParseError.quoted(key.utf8))\"")
            }
            guard object.count < Self.keysMax else {
                throw StatsParseError.badJSON(offset: keyOffset, reason: "more than \(Self.keysMax) keys")
            }
            object[key] = value
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return object
            case nil: throw fail("the object is not closed")
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func value() throws(StatsParseError) -> StatsJSONValue {
        guard let byte = peek() else { throw fail("expected a value, found the end") }
        switch byte {
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "{"), UInt8(ascii: "["): throw fail("nested values are not part of the log format")
        default: throw fail("expected a value")
        }
    }

    /// A string from its opening quote; escapes decoded; the result must be valid UTF-8.
    private mutating func string() throws(StatsParseError) -> String {
        let start = index
        index += 1  // the opening quote
        var decoded: [UInt8] = []
        while true {
            guard let byte = peek() else {
                throw StatsParseError.badJSON(offset: start, reason: "unterminated string")
            }
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: decoded, as: UTF8.self) else {
                    throw StatsParseError.badJSON(offset: start, reason: "string is not valid UTF-8")
                }
                return text
            case UInt8(ascii: "\\"):
                try escape(into: &decoded)
            case 0x00..<0x20:
                throw StatsParseError.badJSON(offset: index - 1, reason: "control byte in a string")
            default:
                decoded.append(byte)
            }
        }
    }

    private mutating func escape(into decoded: inout [UInt8]) throws(StatsParseError) {
        guard let byte = peek() else { throw fail("unterminated escape") }
        index += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(byte)
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0C)
        case UInt8(ascii: "n"): decoded.append(0x0A)
        case UInt8(ascii: "r"): decoded.append(0x0D)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "u"):
            let scalar = try unicodeEscape()
            decoded.append(contentsOf: Array(String(Character(scalar)).utf8))
        default:
            index -= 1
            throw fail("unknown escape")
        }
    }

    /// `\uXXXX` (the `\u` consumed), joining a UTF-16 surrogate pair into one scalar.
    private mutating func unicodeEscape() throws(StatsParseError) -> Unicode.Scalar {
        let high = try hex4()
        if (0xDC00...0xDFFF).contains(high) { throw fail("lone low surrogate") }
        guard (0xD800...0xDBFF).contains(high) else {
            guard let scalar = Unicode.Scalar(high) else { throw fail("invalid \\u escape") }
            return scalar
        }
        guard peek() == UInt8(ascii: "\\"), peek(1) == UInt8(ascii: "u") else { throw fail("high surrogate without its pair") }
        index += 2
        let low = try hex4()
        guard (0xDC00...0xDFFF).contains(low) else { throw fail("high surrogate without its pair") }
        let value = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        guard let scalar = Unicode.Scalar(value) else { throw fail("invalid surrogate pair") }
        return scalar
    }

    private mutating func hex4() throws(StatsParseError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = peek() else { throw fail("short \\u escape") }
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw fail("bad hex digit in \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private mutating func number() throws(StatsParseError) -> [UInt8] {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard skipDigits() > 0 else { throw fail("expected a digit") }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard skipDigits() > 0 else { throw fail("expected a digit after '.'") }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard skipDigits() > 0 else { throw fail("expected a digit in the exponent") }
        }
        return Array(bytes[start..<index])
    }

    private mutating func skipDigits() -> Int {
        let start = index
        while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    private mutating func literal(_ word: StaticString) throws(StatsParseError) {
        let count = word.utf8CodeUnitCount
        let matches = word.withUTF8Buffer { expected in
            index + count <= end && bytes[index..<(index + count)].elementsEqual(expected)
        }
        guard matches else { throw fail("invalid literal") }
        index += count
    }

    mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    private func peek(_ ahead: Int = 0) -> UInt8? {
        index + ahead < end ? bytes[index + ahead] : nil
    }

    private func fail(_ reason: String) -> StatsParseError {
        .badJSON(offset: index, reason: reason)
    }
}
