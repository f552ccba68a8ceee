/// Text a remote peer sent (a Reject's reason and detail) goes into our logs and events. It is
/// untrusted: control characters (newlines could forge log lines) are escaped and the length is
/// bounded, so a peer cannot make our logs say what it likes.
enum RemoteText {
    /// Characters of remote text kept in a log line; the rest is cut and marked.
    static let charactersMax = 256

    static func sanitized(_ text: String) -> String {
        var out = ""
        var kept = 0
        for scalar in text.unicodeScalars {
            if kept == charactersMax {
                out += "…(cut)"
                break
            }
            switch scalar.value {
            case 0x20..<0x7F where scalar != "\\": out.unicodeScalars.append(scalar)
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0..<0x20, 0x7F...0x9F: out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
            kept += 1
        }
        return out
    }
}
