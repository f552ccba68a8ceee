/// Names and literals as they appear in the nginx config.
public enum NginxNames {
    /// `i_<instance>__<component>` with both parts escaped: `A-Za-z0-9` stay, every other
    /// byte becomes `_XX` (two uppercase hex digits). An escaped part never holds `__` (each
    /// `_` is followed by a hex digit), so the `__` separator is unambiguous and the mapping
    /// is injective: two distinct (instance, component) pairs never share an upstream.
    public static func upstream(instance: String, component: String) -> String {
        "i_" + escape(instance) + "__" + escape(component)
    }

    static func escape(_ value: String) -> String {
        if value.utf8.allSatisfy(isAlphanumeric) { return value }
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            if isAlphanumeric(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "_" + hexByte(byte)
            }
        }
        return out
    }

    static func hexByte(_ byte: UInt8) -> String {
        let digits: StaticString = "0123456789ABCDEF"
        return digits.withUTF8Buffer { buffer in
            String(decoding: [buffer[Int(byte >> 4)], buffer[Int(byte & 0x0F)]], as: UTF8.self)
        }
    }

    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
    }

    /// A `map` source value, quoted. nginx treats the words `default`, `include`, `hostnames`
    /// and `volatile` as map parameters even when quoted (verified on 1.22: a tenant named
    /// `include` made `nginx -t` open a file of that name); a leading `\` makes them plain
    /// values (nginx strips it). Callers pass only validated text (no quotes, `\` or `$`).
    static func mapKey(_ key: String) -> String {
        switch key {
        case "default", "include", "hostnames", "volatile": return "\"\\" + key + "\""
        default: return "\"" + key + "\""
        }
    }

    /// A double-quoted nginx string; callers pass only validated text.
    static func quoted(_ value: String) -> String { "\"" + value + "\"" }
}
