import Foundation
import Testing

@testable import Router

@Suite("StatsParser")
struct StatsParserTests {
    /// Datagrams captured from nginx 1.22.1 with the router's `peer_json` format and a UDP socket.
    static let captured: [String] = [
        #"<190>Nov 26 03:20:51 vm peer: {"time":"1795663251.481","tenant":"acme","instance":"i-1","component":"web","status":200,"request_time":0.000,"upstream_time":"","bytes":145}"#,
        #"<190>Nov 26 03:20:51 vm peer: {"time":"1795663251.482","tenant":"bad","instance":"","component":"","status":200,"request_time":0.000,"upstream_time":"","bytes":145}"#,
        #"<190>Nov 26 03:20:51 vm peer: {"time":"1795663251.482","tenant":"acme","instance":"i-1","component":"web","status":503,"request_time":0.000,"upstream_time":"","bytes":369}"#,
        #"<190>Nov 26 03:20:51 vm peer: {"time":"1795663251.483","tenant":"acme","instance":"i-1","component":"web","status":200,"request_time":0.001,"upstream_time":"0.000, 0.000","bytes":144}"#,
        #"<190>Nov 26 03:20:51 vm peer: {"time":"1795663251.484","tenant":"","instance":"","component":"","status":200,"request_time":0.000,"upstream_time":"","bytes":145}"#,
    ]

    @Test func parsesLinesCapturedFromRealNginx() throws {
        let records = try Self.captured.map { try StatsParser.parse(datagram: Array($0.utf8)) }
        #expect(records[0] == StatsRecord(
            tenant: "acme", instance: "i-1", component: "web", status: 200,
            requestTimeSeconds: 0, upstreamTimeSeconds: nil, bytes: 145, timeMs: 1_795_663_251_481
        ))
        #expect(records[1].tenant == "bad" && records[1].instance == nil && records[1].component == nil)
        #expect(records[2].status == 503 && records[2].bytes == 369)
        #expect(records[3].upstreamTimeSeconds == 0 && records[3].requestTimeSeconds == 0.001)
        #expect(records[4].tenant == nil, "an empty tenant means NGINX matched none")
    }

    @Test func acceptsASpacePaddedDayAndAnyPriority() throws {
        let line = StatsTestLine.json()
        for header in ["<190>Nov  6 03:20:51 vm peer: ", "<0>Jan 01 00:00:00 host.example.com peer: ", "<191>Dec 31 23:59:60 h peer: "] {
            let record = try StatsParser.parse(datagram: StatsTestLine.datagram(line, header: header))
            #expect(record.tenant == "acme", "header \(header)")
        }
    }

    @Test(arguments: [
        ("-", nil), ("", nil), ("0.003", 0.003), ("0.001, 0.002", 0.003), ("0.001 : 0.002", 0.003),
        ("-, 0.004", 0.004), ("0.010, 0.020 : 0.030", 0.060), ("-, -", nil), ("12", 12),
    ] as [(String, Double?)])
    func sumsEveryUpstreamAttempt(text: String, seconds: Double?) throws {
        let record = try StatsParser.parse(datagram: StatsTestLine.datagram(StatsTestLine.json(upstreamTime: text)))
        if let seconds {
            let parsed = try #require(record.upstreamTimeSeconds, "upstream_time \"\(text)\"")
            #expect(abs(parsed - seconds) < 1e-9, "upstream_time \"\(text)\"")
        } else {
            #expect(record.upstreamTimeSeconds == nil, "upstream_time \"\(text)\"")
        }
    }

    @Test func readsStatusZeroAsNginxWritesIt() throws {
        // `$status` is "000" when a request ends before any status: not strict JSON, but NGINX's.
        let record = try StatsParser.parse(datagram: StatsTestLine.datagram(StatsTestLine.json(status: "000")))
        #expect(record.status == 0)
    }

    @Test func decodesJSONEscapesAndIgnoresUnknownKeys() throws {
        let json = #"{"extra":"x\"y\\\/\u00e9\ud83d\ude00","time":"1795663251.5","tenant":"a-1","instance":"i.1_b","component":"c","status":404,"request_time":1.25,"upstream_time":"0.5","bytes":0, "n":null,"b":true}"#
        let record = try StatsParser.parse(datagram: StatsTestLine.datagram(json))
        #expect(record == StatsRecord(
            tenant: "a-1", instance: "i.1_b", component: "c", status: 404,
            requestTimeSeconds: 1.25, upstreamTimeSeconds: 0.5, bytes: 0, timeMs: 1_795_663_251_500
        ))
    }

    @Test func formattedRecordsParseBackToThemselves() throws {
        var random = StatsSeededGenerator(seed: 7)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-".utf8)
        for _ in 0..<500 {
            let length = Int.random(in: 1...63, using: &random)
            let tail = (1..<length).map { _ in alphabet.randomElement(using: &random)! }
            let tenant = String(decoding: [alphabet[Int.random(in: 0..<36, using: &random)]] + tail, as: UTF8.self)
            let record = StatsRecord(
                tenant: Bool.random(using: &random) ? tenant : nil, instance: "i-\(Int.random(in: 0...99, using: &random))",
                component: Bool.random(using: &random) ? "web" : nil,
                status: [0, 200, 204, 301, 404, 429, 499, 500, 503, 599].randomElement(using: &random)!,
                requestTimeSeconds: Double(Int.random(in: 0...90_000, using: &random)) / 1000,
                upstreamTimeSeconds: Bool.random(using: &random) ? Double(Int.random(in: 0...60_000, using: &random)) / 1000 : nil,
                bytes: Int64.random(in: 0...(1 << 40), using: &random),
                timeMs: Int64.random(in: 1_000_000_000_000...4_000_000_000_000, using: &random)
            )
            #expect(try StatsParser.parse(datagram: StatsTestLine.datagram(for: record)) == record)
        }
    }

    // MARK: - Each failure has its own error

    struct Refusal: Sendable, CustomTestStringConvertible {
        let name: String
        let datagram: [UInt8]
        let error: StatsParseError
        var testDescription: String { name }

        init(_ name: String, _ datagram: [UInt8], _ error: StatsParseError) {
            self.name = name
            self.datagram = datagram
            self.error = error
        }

        init(_ name: String, json: String, _ error: StatsParseError) {
            self.init(name, StatsTestLine.datagram(json), error)
        }
    }

    static let header = StatsTestLine.header
    static let oversized = StatsTestLine.datagram(StatsTestLine.json(component: String(repeating: "c", count: 8_100)))
    static let refusals: [Refusal] = [
        Refusal("over 8 KiB", oversized, .tooLarge(byteCount: oversized.count)),
        Refusal("empty", [], .notSyslog(reason: "does not start with '<PRI>'")),
        Refusal("plain text", Array("hello".utf8), .notSyslog(reason: "does not start with '<PRI>'")),
        Refusal("PRI over 191", Array("<192>Nov 26 03:20:51 vm peer: {}".utf8), .notSyslog(reason: "PRI is not 0...191")),
        Refusal("PRI leading zero", Array("<090>Nov 26 03:20:51 vm peer: {}".utf8), .notSyslog(reason: "PRI is not 0...191")),
        Refusal("PRI unclosed", Array("<19 Nov".utf8), .notSyslog(reason: "PRI is not closed by '>'")),
        Refusal("bad month", Array("<190>Now 26 03:20:51 vm peer: {}".utf8), .notSyslog(reason: "bad month in the timestamp")),
        Refusal("bad day", Array("<190>Nov 32 03:20:51 vm peer: {}".utf8), .notSyslog(reason: "bad day in the timestamp")),
        Refusal("bad time", Array("<190>Nov 26 24:20:51 vm peer: {}".utf8), .notSyslog(reason: "bad time of day in the timestamp")),
        Refusal("short timestamp", Array("<190>Nov 26".utf8), .notSyslog(reason: "short timestamp")),
        Refusal("no host", Array("<190>Nov 26 03:20:51  peer: {}".utf8), .notSyslog(reason: "no host name")),
        Refusal("no tag", Array("<190>Nov 26 03:20:51 vm {}".utf8), .notSyslog(reason: "the tag is not followed by ':'")),
        Refusal("other program", Array("<38>Nov 26 03:20:51 vm sshd: {}".utf8), .unexpectedTag("sshd")),
        Refusal("text, not JSON", Array((header + "GET / HTTP/1.1 200").utf8), .noJSON),
        Refusal("nothing after the tag", Array(header.utf8), .noJSON),
        Refusal("no space after the tag", Array("<190>Nov 26 03:20:51 vm peer:{}".utf8), .noJSON),
        Refusal("truncated JSON", Array(StatsTestLine.datagram(StatsTestLine.json()).dropLast(20)), .badJSON(offset: 156, reason: "expected a value, found the end")),
        Refusal("JSON cut in a string", Array(StatsTestLine.datagram(StatsTestLine.json()).dropLast(18)), .badJSON(offset: 156, reason: "unterminated string")),
        Refusal("trailing bytes", StatsTestLine.datagram(StatsTestLine.json() + "x"), .badJSON(offset: 176, reason: "trailing bytes after the object")),
        Refusal("nested object", json: #"{"time":{}}"#, .badJSON(offset: 38, reason: "nested values are not part of the log format")),
        Refusal("duplicate key", json: #"{"bytes":1,"bytes":2}"#, .badJSON(offset: 41, reason: "duplicate key \"bytes\"")),
        Refusal("raw newline in a string", json: "{\"tenant\":\"a\nb\"}", .badJSON(offset: 42, reason: "control byte in a string")),
        Refusal("invalid UTF-8", StatsTestLine.datagram("{\"tenant\":\"") + [0xC3, 0x28] + Array("\"}".utf8), .badJSON(offset: 40, reason: "string is not valid UTF-8")),
        Refusal("unknown escape", json: #"{"tenant":"\q"}"#, .badJSON(offset: 42, reason: "unknown escape")),
        Refusal("lone surrogate", json: #"{"tenant":"\udc00"}"#, .badJSON(offset: 47, reason: "lone low surrogate")),
        Refusal("bare word", json: #"{"status":ok}"#, .badJSON(offset: 40, reason: "expected a value")),
        Refusal("missing bytes", json: #"{"time":"1.0","tenant":"a","instance":"","component":"","status":200,"request_time":0,"upstream_time":""}"#, .missingKey("bytes")),
        Refusal("missing tenant", json: #"{"time":"1.0"}"#, .missingKey("tenant")),
        Refusal("quoted status", json: StatsTestLine.json(status: "\"200\""), .wrongType(key: "status", expected: "number")),
        Refusal("numeric tenant", json: #"{"tenant":5}"#, .wrongType(key: "tenant", expected: "string")),
        Refusal("null upstream_time", json: StatsTestLine.json().replacingOccurrences(of: "\"0.003\"", with: "null"), .wrongType(key: "upstream_time", expected: "string")),
        Refusal("unquoted time", json: StatsTestLine.json().replacingOccurrences(of: "\"1795663251.481\"", with: "1795663251.481"), .wrongType(key: "time", expected: "string")),
        Refusal("status 999", json: StatsTestLine.json(status: "999"), .invalidValue(key: "status", reason: "999 is not 000 or 100...599")),
        Refusal("status of two digits", json: StatsTestLine.json(status: "20"), .invalidValue(key: "status", reason: "20 is not 000 or 100...599")),
        Refusal("negative request_time", json: StatsTestLine.json(requestTime: "-0.001"), .invalidValue(key: "request_time", reason: "-0.001 is not a decimal number of seconds")),
        Refusal("exponent request_time", json: StatsTestLine.json(requestTime: "1e3"), .invalidValue(key: "request_time", reason: "1e3 is not a decimal number of seconds")),
        Refusal("huge request_time", json: StatsTestLine.json(requestTime: "2000000.0"), .invalidValue(key: "request_time", reason: "over 1000000 s")),
        Refusal("word in upstream_time", json: StatsTestLine.json(upstreamTime: "abc"), .invalidValue(key: "upstream_time", reason: "abc is not a decimal number of seconds")),
        Refusal("empty attempt", json: StatsTestLine.json(upstreamTime: "0.1,,0.2"), .invalidValue(key: "upstream_time", reason: "empty attempt in 0.1,,0.2")),
        Refusal("fractional bytes", json: StatsTestLine.json(bytes: "1.5"), .invalidValue(key: "bytes", reason: "1.5 is not an integer in 0...1125899906842624")),
        Refusal("negative bytes", json: StatsTestLine.json(bytes: "-1"), .invalidValue(key: "bytes", reason: "-1 is not an integer in 0...1125899906842624")),
        Refusal("time without a number", json: StatsTestLine.json(time: "now"), .invalidValue(key: "time", reason: "now is not Unix seconds with a ms fraction")),
        Refusal("time with four decimals", json: StatsTestLine.json(time: "1795663251.4812"), .invalidValue(key: "time", reason: "1795663251.4812 is not Unix seconds with a ms fraction")),
        Refusal("upper-case tenant", json: StatsTestLine.json(tenant: "Acme"), .invalidTenantId("Acme")),
        Refusal("tenant with a leading hyphen", json: StatsTestLine.json(tenant: "-acme"), .invalidTenantId("-acme")),
        Refusal("tenant with a dot", json: StatsTestLine.json(tenant: "acme.com"), .invalidTenantId("acme.com")),
        Refusal("tenant of 64 bytes", json: StatsTestLine.json(tenant: String(repeating: "a", count: 64)), .invalidTenantId(String(repeating: "a", count: 64))),
        Refusal("tenant with an escaped quote", json: StatsTestLine.json(tenant: #"a\"b"#), .invalidTenantId(#"a\x22b"#)),
        Refusal("instance with a space", json: StatsTestLine.json(instance: "i 1"), .invalidId(key: "instance", value: "i 1")),
        Refusal("component with a slash", json: StatsTestLine.json(component: "web/x"), .invalidId(key: "component", value: "web/x")),
    ]

    @Test(arguments: refusals)
    func refusesWithASpecificError(_ refusal: Refusal) {
        #expect(throws: refusal.error) { try StatsParser.parse(datagram: refusal.datagram) }
    }

    @Test func everyErrorKindHasARefusalCase() {
        let kinds = Set(Self.refusals.map(\.error.kind))
        #expect(kinds == Set(StatsParseError.Kind.allCases))
    }

    @Test func errorsQuoteAtMostSixtyFourBytesOfAValue() throws {
        let tenant = String(repeating: "X", count: 63)
        let error = #expect(throws: StatsParseError.self) {
            try StatsParser.parse(datagram: StatsTestLine.datagram(StatsTestLine.json(tenant: tenant)))
        }
        guard case .invalidTenantId(let quoted) = try #require(error) else {
            Issue.record("expected invalidTenantId, got \(String(describing: error))")
            return
        }
        #expect(quoted == tenant)
        let long = StatsParseError.quoted(Array(repeating: UInt8(ascii: "z"), count: 500))
        #expect(long == String(repeating: "z", count: 64) + "...")
    }
}
