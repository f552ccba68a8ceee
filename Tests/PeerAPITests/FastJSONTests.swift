import Foundation
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
}
