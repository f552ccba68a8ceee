import Foundation
import Raft
import Testing
@testable import PeerAPI

/// The hand-written answers must be byte for byte what `JSONEncoder(.sortedKeys)` writes, which
/// `AdminServer.json` used before and still uses for every other body.
@Suite struct FastJSONTests {
    static func reference(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }

    /// Every control character, the characters JSON escapes, `/`, DEL, and multi-byte UTF-8.
    static let awkward: [String] = [
        "",
        "plain-id_0",
        String((0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) }),
        "quote \" backslash \\ slash / del \u{7F}",
        "é ü 日本 🚀 \u{2028}\u{2029} \u{FEFF}",
        String(repeating: "x", count: 300),
    ]

    @Test func tenantAnswersMatchJSONEncoder() throws {
        for text in Self.awkward {
            for active in [nil, text, "instance-1"] as [String?] {
                for components in [[], [text], ["dfx-dev", "dfc", text]] {
                    let tenant = TenantInfo(id: text, plan: "plan/" + text, state: "ready", components: components, activeInstance: active, createdAtMs: 1_764_000_000_123)
                    for answer in [WriteResult(result: "applied", tenant: tenant), WriteResult(result: "duplicate", tenant: nil)] {
                        let fast = FastJSON.encode(answer)
                        let expected = try Self.reference(answer)
                        #expect(fast == expected, "\(String(decoding: fast, as: UTF8.self)) != \(String(decoding: expected, as: UTF8.self))")
                    }
                }
            }
        }
    }

    @Test func negativeAndExtremeTimesMatch() throws {
        for ms in [Int64.min, -1, 0, Int64.max] {
            let tenant = TenantInfo(id: "t", plan: "p", state: "provisioning", components: ["a"], activeInstance: nil, createdAtMs: ms)
            #expect(FastJSON.encode(tenant) == (try Self.reference(tenant)))
        }
    }

    /// And a client decodes it back to the same value.
    @Test func answersDecodeBack() throws {
        let tenant = TenantInfo(id: "t-\u{1}\"/", plan: "dev", state: "ready", components: ["dfx-dev"], activeInstance: "1", createdAtMs: 42)
        let answer = WriteResult(result: "applied", tenant: tenant)
        #expect(try JSONDecoder().decode(WriteResult.self, from: Data(FastJSON.encode(answer))) == answer)
    }

    // MARK: - The create body's plain form

    static func reference(_ body: String) -> CreateTenantRequest? {
        try? JSONDecoder().decode(CreateTenantRequest.self, from: Data(body.utf8))
    }

    static let plainBodies: [String] = [
        #"{"id":"t1"}"#,
        #"{"id":"t0000000000000000000001","plan":"development","components":["dfx-dev","dfc","dfx-dep"],"clientId":"ct1","sequence":1}"#,
        #"{"sequence":18446744073709551615,"clientId":"c","components":[],"plan":"p","id":"x"}"#,
        " \n\t{ \"id\" : \"a b~!@#$%^&*()\" ,\r\n \"components\" : [ \"x\" , \"y\" ] , \"sequence\" : 0 } \n",
        #"{"id":""}"#,
    ]

    /// The bodies the CLI and the benchmark send take the plain path, with JSONDecoder's result.
    @Test func plainBodiesDecodeLikeJSONDecoder() throws {
        for body in Self.plainBodies {
            let fast = CreateTenantRequest.decodePlain(Array(body.utf8))
            #expect(fast != nil, "not plain: \(body)")
            #expect(fast == Self.reference(body), "\(body)")
        }
    }

    /// Everything outside the plain form goes to JSONDecoder (nil here), valid or not.
    @Test func otherBodiesAreLeftToJSONDecoder() {
        let others = [
            "", "{", "}", "[]", "null", #"{"id":"t1",}"#, #"{"id":"t1"} x"#, #"{"id":"t1","id":"t2"}"#,
            #"{"id":"t\"1"}"#, #"{"id":"t\u0031"}"#, #"{"id":"é"}"#, #"{"id":null}"#, #"{"id":"t","plan":null}"#,
            #"{"id":"t","extra":1}"#, #"{"plan":"p"}"#, #"{"id":1}"#, #"{"id":"t","sequence":-1}"#,
            #"{"id":"t","sequence":1.0}"#, #"{"id":"t","sequence":1e2}"#, #"{"id":"t","sequence":01}"#,
            #"{"id":"t","sequence":18446744073709551616}"#, #"{"id":"t","components":"x"}"#,
            #"{"id":"t","components":["x",]}"#, #"{"id":"t","components":[1]}"#, "{\"id\":\"t\u{7F}\"}",
        ]
        for body in others {
            #expect(CreateTenantRequest.decodePlain(Array(body.utf8)) == nil, "\(body)")
        }
    }

    /// Random damage to plain bodies (byte changes, cuts, insertions): whatever the plain parser
    /// accepts, JSONDecoder decodes to the same request. 20,000 cases from a fixed seed.
    @Test func damagedBodiesNeverDecodeDifferently() {
        var rng = SplitMix64(seed: 0x5eed_f00d)
        let alphabet = Array(#"{}[]":,\ 0123456789-.eEnulidplancomtsqCx"#.utf8) + [0x00, 0x0A, 0x7F, 0xC3, 0xA9]
        var plainAccepted = 0
        for n in 0..<20_000 {
            var bytes = Array(Self.plainBodies[n % Self.plainBodies.count].utf8)
            for _ in 0...(rng.next() % 3) {
                let at = Int(rng.next() % UInt64(bytes.count + 1))
                switch rng.next() % 3 {
                case 0 where at < bytes.count: bytes[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                default: bytes = Array(bytes.prefix(at))
                }
            }
            guard let fast = CreateTenantRequest.decodePlain(bytes) else { continue }
            plainAccepted += 1
            let reference = try? JSONDecoder().decode(CreateTenantRequest.self, from: Data(bytes))
            #expect(fast == reference, "\(String(decoding: bytes, as: UTF8.self))")
        }
        // The damage leaves a share of bodies valid, so the comparison above did run.
        #expect(plainAccepted > 500)
    }
}
