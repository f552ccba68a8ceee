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

    static func key(_ name: StaticString, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
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
        if let activeInstance {
            FastJSON.key("activeInstance", to: &out)
            FastJSON.string(activeInstance, to: &out)
            out.append(UInt8(ascii: ","))
        }
        FastJSON.key("components", to: &out)
        out.append(UInt8(ascii: "["))
        for (i, c) in components.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            FastJSON.string(c, to: &out)
        }
        out.append(contentsOf: [UInt8(ascii: "]"), UInt8(ascii: ",")])
        FastJSON.key("createdAtMs", to: &out)
        FastJSON.integer(createdAtMs, to: &out)
        out.append(UInt8(ascii: ","))
        FastJSON.key("id", to: &out)
        FastJSON.string(id, to: &out)
        out.append(UInt8(ascii: ","))
        FastJSON.key("plan", to: &out)
        FastJSON.string(plan, to: &out)
        out.append(UInt8(ascii: ","))
        FastJSON.key("state", to: &out)
        FastJSON.string(state, to: &out)
        out.append(UInt8(ascii: "}"))
    }
}

extension WriteResult: FastJSONEncodable {
    func appendJSON(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        FastJSON.key("result", to: &out)
        FastJSON.string(result, to: &out)
        if let tenant {
            out.append(UInt8(ascii: ","))
            FastJSON.key("tenant", to: &out)
            tenant.appendJSON(to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}
