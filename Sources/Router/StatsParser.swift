/// Parses one syslog datagram from the local NGINX into a `StatsRecord`, strictly: the framing,
/// the JSON and every field are checked, and each failure is a specific `StatsParseError`.
///
/// NGINX 1.22 frames each access-log line as an RFC 3164 message (checked against a real nginx
/// and a UDP socket):
///
///     <190>Nov 26 03:20:51 vm peer: {"time":"1795663251.481","tenant":"acme",...}
///
/// `<PRI>` (local7.info = 190 by default), a 15-byte timestamp whose day is space-padded
/// ("Nov  6"), the host name, the tag and ": ", then the line, with no trailing newline.
/// Work is bounded by `datagramBytesMax`; no input makes it trap.
public enum StatsParser {
    /// The largest datagram accepted, in bytes. A `peer_json` line is about 200 bytes; NGINX
    /// cuts syslog messages near 2 KiB anyway, so 8 KiB leaves room without holding junk.
    public static let datagramBytesMax = 8 * 1024
    /// The syslog tag the router configures (`access_log syslog:...,tag=peer`).
    public static let syslogTag = "peer"
    /// Longest host name in the header, in bytes (a DNS name).
    static let hostnameBytesMax = 255
    /// Most upstream attempts summed from one `upstream_time` (NGINX tries each server of an
    /// upstream at most once per request, and the router's upstreams hold one server each).
    public static let upstreamAttemptsMax = 32
    /// Largest `request_time`/`upstream_time` accepted, in seconds (about 11.6 days: long-lived
    /// connections included; anything larger is a broken line).
    public static let durationSecondsMax: Double = 1_000_000
    /// Largest `bytes` accepted (1 PiB).
    public static let bytesMax: Int64 = 1 << 50

    /// The keys of the `peer_json` log format.
    enum Key {
        static let time = "time", tenant = "tenant", instance = "instance", component = "component"
        static let status = "status", requestTime = "request_time", upstreamTime = "upstream_time"
        static let bytes = "bytes"
    }

    /// The record in `datagram`, or the first rule it breaks.
    public static func parse(datagram: [UInt8]) throws(StatsParseError) -> StatsRecord {
        guard datagram.count <= datagramBytesMax else { throw .tooLarge(byteCount: datagram.count) }
        let jsonStart = try syslogPayloadStart(datagram)
        guard jsonStart < datagram.count, datagram[jsonStart] == UInt8(ascii: "{") else { throw .noJSON }
        let object = try StatsJSONReader.readObject(datagram, from: jsonStart)
        return try record(from: object)
    }

    // MARK: - Syslog framing

    /// The offset of the message after `<PRI>Mmm dd hh:mm:ss host tag: `.
    static func syslogPayloadStart(_ bytes: [UInt8]) throws(StatsParseError) -> Int {
        var cursor = StatsByteCursor(bytes)
        try priority(&cursor)
        try timestamp(&cursor)
        guard cursor.take(UInt8(ascii: " ")) else { throw .notSyslog(reason: "no space after the timestamp") }
        let host = cursor.takeWhile { $0 > 0x20 && $0 < 0x7F }
        guard !host.isEmpty else { throw .notSyslog(reason: "no host name") }
        guard host.count <= hostnameBytesMax else { throw .notSyslog(reason: "host name over \(hostnameBytesMax) bytes") }
        guard cursor.take(UInt8(ascii: " ")) else { throw .notSyslog(reason: "no space after the host name") }
        let tag = cursor.takeWhile { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
        guard cursor.take(UInt8(ascii: ":")) else {
            throw .notSyslog(reason: tag.isEmpty ? "no tag" : "the tag is not followed by ':'")
        }
        guard tag.elementsEqual(syslogTag.utf8) else { throw .unexpectedTag(StatsParseError.quoted(tag)) }
        guard cursor.take(UInt8(ascii: " ")) else { throw .noJSON }
        return cursor.offset
    }

    /// `<N>` with N in 0...191 (facility * 8 + severity), written without leading zeros.
    private static func priority(_ cursor: inout StatsByteCursor) throws(StatsParseError) {
        guard cursor.take(UInt8(ascii: "<")) else { throw .notSyslog(reason: "does not start with '<PRI>'") }
        let digits = cursor.takeWhile(isDigit)
        guard (1...3).contains(digits.count), digits.count == 1 || digits.first != UInt8(ascii: "0"),
              let value = decimal(digits), value <= 191
        else { throw .notSyslog(reason: "PRI is not 0...191") }
        guard cursor.take(UInt8(ascii: ">")) else { throw .notSyslog(reason: "PRI is not closed by '>'") }
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Mmm dd hh:mm:ss`, the day space-padded. Its value is not used (the line carries `$msec`).
    private static func timestamp(_ cursor: inout StatsByteCursor) throws(StatsParseError) {
        guard let stamp = cursor.take(count: 15) else { throw .notSyslog(reason: "short timestamp") }
        let month = stamp[0..<3]
        guard months.contains(where: { $0.utf8.elementsEqual(month) }) else { throw .notSyslog(reason: "bad month in the timestamp") }
        let dayHigh = stamp[4] == UInt8(ascii: " ") ? 0 : decimal(stamp[4..<5])
        guard stamp[3] == UInt8(ascii: " "), let dayHigh, let dayLow = decimal(stamp[5..<6]),
              (1...31).contains(dayHigh * 10 + dayLow)
        else { throw .notSyslog(reason: "bad day in the timestamp") }
        guard stamp[6] == UInt8(ascii: " "), stamp[9] == UInt8(ascii: ":"), stamp[12] == UInt8(ascii: ":"),
              let hours = decimal(stamp[7..<9]), let minutes = decimal(stamp[10..<12]), let seconds = decimal(stamp[13..<15]),
              hours < 24, minutes < 60, seconds < 61
        else { throw .notSyslog(reason: "bad time of day in the timestamp") }
    }

    // MARK: - Fields

    private static func record(from object: [String: StatsJSONValue]) throws(StatsParseError) -> StatsRecord {
        let tenant = try string(Key.tenant, in: object)
        guard tenant.isEmpty || StatsIds.isTenantId(Array(tenant.utf8)) else {
            throw .invalidTenantId(StatsParseError.quoted(tenant.utf8))
        }
        let instance = try optionalId(Key.instance, in: object)
        let component = try optionalId(Key.component, in: object)
        let status = try status(in: object)
        let requestTimeSeconds = try seconds(try number(Key.requestTime, in: object), key: Key.requestTime)
        let upstreamTimeSeconds = try upstreamTime(try string(Key.upstreamTime, in: object))
        let bytes = try bytesSent(in: object)
        let timeMs = try msec(try string(Key.time, in: object))
        return StatsRecord(
            tenant: tenant.isEmpty ? nil : tenant, instance: instance, component: component, status: status,
            requestTimeSeconds: requestTimeSeconds, upstreamTimeSeconds: upstreamTimeSeconds, bytes: bytes, timeMs: timeMs
        )
    }

    private static func string(_ key: String, in object: [String: StatsJSONValue]) throws(StatsParseError) -> String {
        switch object[key] {
        case nil: throw .missingKey(key)
        case .string(let value): return value
        default: throw .wrongType(key: key, expected: "string")
        }
    }

    private static func number(_ key: String, in object: [String: StatsJSONValue]) throws(StatsParseError) -> [UInt8] {
        switch object[key] {
        case nil: throw .missingKey(key)
        case .number(let raw): return raw
        default: throw .wrongType(key: key, expected: "number")
        }
    }

    private static func optionalId(_ key: String, in object: [String: StatsJSONValue]) throws(StatsParseError) -> String? {
        let value = try string(key, in: object)
        if value.isEmpty { return nil }
        guard StatsIds.isId(Array(value.utf8)) else { throw .invalidId(key: key, value: StatsParseError.quoted(value.utf8)) }
        return value
    }

    /// Exactly three digits, as NGINX prints `$status`: 100...599, or `000` for no status.
    private static func status(in object: [String: StatsJSONValue]) throws(StatsParseError) -> Int {
        let raw = try number(Key.status, in: object)
        guard raw.count == 3, let value = decimal(raw[...]), value == 0 || (100...599).contains(value) else {
            throw .invalidValue(key: Key.status, reason: "\(StatsParseError.quoted(raw)) is not 000 or 100...599")
        }
        return value
    }

    private static func bytesSent(in object: [String: StatsJSONValue]) throws(StatsParseError) -> Int64 {
        let raw = try number(Key.bytes, in: object)
        guard raw.count <= 16, let value = decimal(raw[...]), Int64(value) <= bytesMax else {
            throw .invalidValue(key: Key.bytes, reason: "\(StatsParseError.quoted(raw)) is not an integer in 0...\(bytesMax)")
        }
        return Int64(value)
    }

    /// `$msec`: Unix seconds with a millisecond fraction ("1795663251.481"), as milliseconds.
    private static func msec(_ text: String) throws(StatsParseError) -> Int64 {
        let bytes = Array(text.utf8)
        let dot = bytes.firstIndex(of: UInt8(ascii: ".")) ?? bytes.endIndex
        let fraction = dot < bytes.endIndex ? bytes[(dot + 1)...] : []
        guard (1...12).contains(dot), let whole = decimal(bytes[..<dot]), fraction.count <= 3,
              dot == bytes.endIndex || !fraction.isEmpty, let part = fraction.isEmpty ? 0 : decimal(fraction)
        else { throw .invalidValue(key: Key.time, reason: "\(StatsParseError.quoted(bytes)) is not Unix seconds with a ms fraction") }
        var scale = 1
        for _ in fraction.count..<3 { scale *= 10 }
        return Int64(whole) * 1000 + Int64(part * scale)
    }

    /// `$upstream_response_time`: empty or "-" when no upstream was reached; otherwise one time
    /// per attempt, separated by ", " (next server of the same upstream) or " : " (an internal
    /// redirect to another upstream); an attempt may itself be "-". The result is their sum.
    static func upstreamTime(_ text: String) throws(StatsParseError) -> Double? {
        let bytes = Array(text.utf8)
        let attempts = bytes.split(omittingEmptySubsequences: false) { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: ":") }
        guard attempts.count <= upstreamAttemptsMax else {
            throw .invalidValue(key: Key.upstreamTime, reason: "more than \(upstreamAttemptsMax) upstream attempts")
        }
        if bytes.isEmpty { return nil }
        var total: Double? = nil
        for attempt in attempts {
            let trimmed = trimSpaces(attempt)
            if trimmed.elementsEqual([UInt8(ascii: "-")]) { continue }
            guard !trimmed.isEmpty else {
                throw .invalidValue(key: Key.upstreamTime, reason: "empty attempt in \(StatsParseError.quoted(bytes))")
            }
            total = (total ?? 0) + (try seconds(Array(trimmed), key: Key.upstreamTime))
        }
        if let total, total > durationSecondsMax {
            throw .invalidValue(key: Key.upstreamTime, reason: "sum over \(Int(durationSecondsMax)) s")
        }
        return total
    }

    private static func trimSpaces(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while slice.first == 0x20 { slice.removeFirst() }
        while slice.last == 0x20 { slice.removeLast() }
        return slice
    }

    /// A non-negative decimal number of seconds ("0.012"): at most 7 integer and 6 fraction
    /// digits, no sign, no exponent. Computed as one integer over a power of ten, so the result is
    /// the double nearest the decimal (what `Double("0.012")` gives).
    private static func seconds(_ raw: [UInt8], key: String) throws(StatsParseError) -> Double {
        let dot = raw.firstIndex(of: UInt8(ascii: ".")) ?? raw.endIndex
        let fraction = dot < raw.endIndex ? raw[(dot + 1)...] : []
        guard (1...7).contains(dot), let whole = decimal(raw[..<dot]), fraction.count <= 6,
              dot == raw.endIndex || !fraction.isEmpty, let part = fraction.isEmpty ? 0 : decimal(fraction)
        else { throw .invalidValue(key: key, reason: "\(StatsParseError.quoted(raw)) is not a decimal number of seconds") }
        var scale = 1
        for _ in 0..<fraction.count { scale *= 10 }
        let value = Double(whole * scale + part) / Double(scale)
        guard value <= durationSecondsMax else { throw .invalidValue(key: key, reason: "over \(Int(durationSecondsMax)) s") }
        return value
    }

    /// The value of 1...18 ASCII digits, or nil (any other byte, or empty).
    static func decimal(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        var value = 0
        for byte in digits {
            guard isDigit(byte) else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}

/// Reads a byte array front to back without ever indexing past its end.
struct StatsByteCursor {
    private let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Consumes `byte` if it is next.
    mutating func take(_ byte: UInt8) -> Bool {
        guard offset < bytes.count, bytes[offset] == byte else { return false }
        offset += 1
        return true
    }

    /// Consumes and returns the next `count` bytes (re-indexed from 0), or nil if fewer remain.
    mutating func take(count: Int) -> [UInt8]? {
        guard bytes.count - offset >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    /// Consumes the longest run of bytes that satisfy `accept`.
    mutating func takeWhile(_ accept: (UInt8) -> Bool) -> ArraySlice<UInt8> {
        let start = offset
        while offset < bytes.count, accept(bytes[offset]) { offset += 1 }
        return bytes[start..<offset]
    }
}
