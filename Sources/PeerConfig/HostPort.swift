/// A network address written `host:port`: an IPv4 address, a DNS name, or an IPv6 address in
/// brackets (`[::1]:7101`). Hosts are kept in one canonical spelling (dotted decimal, RFC 5952
/// IPv6 text, lower-case names) so two spellings of one address compare equal.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// What kind of host the address names.
    public enum Kind: Sendable, Hashable {
        case ipv4
        case ipv6
        case dnsName
    }

    /// The canonical host, without brackets.
    public let host: String
    public let kind: Kind
    /// 1...65535.
    public let port: UInt16

    /// Ports are 1-65535: port 0 means "any free port", which no other peer could dial.
    public static let portRange: ClosedRange<Int> = 1...65535
    /// RFC 1035: a whole name is at most 253 characters, a label at most 63.
    public static let dnsNameCharactersMax = 253
    public static let dnsLabelCharactersMax = 63

    /// Parses `host:port`; nil when the text is not one (`reasonInvalid` says why).
    public init?(_ text: String) {
        guard case .success(let parsed) = Self.parse(text) else { return nil }
        self = parsed
    }

    init(host: String, kind: Kind, port: UInt16) {
        self.host = host
        self.kind = kind
        self.port = port
    }

    /// `host:port`, with brackets around an IPv6 host.
    public var description: String { kind == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The host as written in a URL authority (brackets around IPv6).
    public var urlHost: String { kind == .ipv6 ? "[\(host)]" : host }

    /// `0.0.0.0` or `::`: every address of the machine. Fine to listen on, not something
    /// another process can dial.
    public var isUnspecified: Bool { host == "0.0.0.0" || host == "::" }

    /// 127.0.0.0/8 or ::1: reachable from this machine only.
    public var isLoopback: Bool { (kind == .ipv4 && host.hasPrefix("127.")) || (kind == .ipv6 && host == "::1") }

    /// The same host at `port + delta`, or nil past 65535.
    public func offset(by delta: Int) -> HostPort? {
        let p = Int(port) + delta
        guard (1...65535).contains(p) else { return nil }
        return HostPort(host: host, kind: kind, port: UInt16(p))
    }

    /// Why `text` is not an address, or nil when it is one.
    public static func reasonInvalid(_ text: String) -> String? {
        if case .failure(let problem) = parse(text) { return problem.reason }
        return nil
    }

    struct Problem: Error { var reason: String }

    static func parse(_ text: String) -> Result<HostPort, Problem> {
        let expected = "must be host:port (IPv6 in brackets: \"[::1]:7101\"), got '\(text)'"
        let hostText: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(Problem(reason: expected)) }
            hostText = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(Problem(reason: expected)) }
            portText = rest.dropFirst()
        } else {
            let colons = text.filter { $0 == ":" }.count
            if colons > 1 {
                return .failure(Problem(reason: "an IPv6 address must be in brackets, e.g. \"[::1]:7101\", got '\(text)'"))
            }
            guard colons == 1, let colon = text.firstIndex(of: ":") else { return .failure(Problem(reason: expected)) }
            hostText = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !hostText.isEmpty else { return .failure(Problem(reason: "missing host in '\(text)'")) }
        guard !portText.isEmpty else { return .failure(Problem(reason: "missing port in '\(text)'")) }
        guard portText.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return .failure(Problem(reason: "port '\(portText)' is not a number"))
        }
        guard let port = Int(portText.prefix(6)), portRange.contains(port) else {
            return .failure(Problem(reason: "port \(portText) is out of range \(portRange.lowerBound)-\(portRange.upperBound)"))
        }
        let host: (String, Kind)
        switch classifyHost(hostText, bracketed: text.hasPrefix("[")) {
        case .success(let h): host = h
        case .failure(let problem): return .failure(problem)
        }
        return .success(HostPort(host: host.0, kind: host.1, port: UInt16(port)))
    }

    private static func classifyHost(_ text: Substring, bracketed: Bool) -> Result<(String, Kind), Problem> {
        if bracketed {
            if text.contains("%") {
                return .failure(Problem(reason: "IPv6 zone ids ('%...') are not supported, got '\(text)'"))
            }
            guard let bytes = parseIPv6(text) else { return .failure(Problem(reason: "invalid IPv6 address '\(text)'")) }
            return .success((formatIPv6(bytes), .ipv6))
        }
        // A top-level domain is never all digits, so a name ending in a numeric label is an
        // attempt at an IPv4 address (and `127.0.0.300` is refused rather than taken as a name).
        let lastLabel = text.split(separator: ".", omittingEmptySubsequences: false).last ?? ""
        if !lastLabel.isEmpty && lastLabel.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let bytes = parseIPv4(text) else { return .failure(Problem(reason: "invalid IPv4 address '\(text)'")) }
            return .success((bytes.map(String.init).joined(separator: "."), .ipv4))
        }
        let name = text.lowercased()
        guard isValidDNSName(name) else {
            return .failure(Problem(reason: "invalid host name '\(text)': use letters, digits and '-' in dot-separated labels"))
        }
        return .success((name, .dnsName))
    }

    /// Dotted decimal, four parts, no leading zeros (`010` could mean 8 or 10: refused).
    static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  part == "0" || !part.hasPrefix("0"), let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    /// RFC 4291 §2.2 text: eight groups of 1-4 hex digits, one `::` for a run of zero groups,
    /// optionally ending in a dotted IPv4 address.
    static func parseIPv6(_ text: Substring) -> [UInt8]? {
        let halves = text.split(separator: "::", omittingEmptySubsequences: false)
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring, allowIPv4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, field) in fields.enumerated() {
                if allowIPv4Tail && i == fields.count - 1 && field.contains(".") {
                    guard let v4 = parseIPv4(field) else { return nil }
                    result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard (1...4).contains(field.count), field.allSatisfy(\.isHexDigit), let value = UInt16(field, radix: 16)
                else { return nil }
                result.append(value)
            }
            return result
        }
        let words: [UInt16]
        if halves.count == 2 {
            guard let head = groups(halves[0], allowIPv4Tail: false), let tail = groups(halves[1], allowIPv4Tail: true),
                  head.count + tail.count <= 7 else { return nil }
            words = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let all = groups(halves[0], allowIPv4Tail: true), all.count == 8 else { return nil }
            words = all
        }
        return words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    /// RFC 5952 §4: lower-case hex, no leading zeros, the longest run (first if tied) of two or
    /// more zero groups as `::`.
    static func formatIPv6(_ bytes: [UInt8]) -> String {
        precondition(bytes.count == 16, "an IPv6 address has 16 bytes, got \(bytes.count)")
        let words = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        var best = (start: -1, length: 0)
        var i = 0
        while i < 8 {
            guard words[i] == 0 else { i += 1; continue }
            var j = i
            while j < 8 && words[j] == 0 { j += 1 }
            if j - i > best.length { best = (i, j - i) }
            i = j
        }
        let hex = words.map { String($0, radix: 16) }
        guard best.length >= 2 else { return hex.joined(separator: ":") }
        let head = hex[..<best.start].joined(separator: ":")
        let tail = hex[(best.start + best.length)...].joined(separator: ":")
        return head + "::" + tail
    }

    /// Letters, digits and `-` in dot-separated labels of 1-63 characters that neither start nor
    /// end with `-`; 253 characters at most.
    static func isValidDNSName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= dnsNameCharactersMax else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= dnsLabelCharactersMax && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
        }
    }
}
