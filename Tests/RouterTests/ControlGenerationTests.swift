import Testing
@testable import Router

/// nginx's control server answers a generation as `N\n`; anything else is no generation.
@Suite struct ControlGenerationTests {
    @Test func generationBodyMustBeDigitsAndNewline() {
        #expect(NginxRouter.parseGeneration(Array("42\n".utf8)) == 42)
        #expect(NginxRouter.parseGeneration(Array("18446744073709551615\n".utf8)) == UInt64.max)
        for bad in ["42", "\n", "4 2\n", "-1\n", "18446744073709551616\n", "0x10\n", "42\n\n", "<html>\n"] {
            #expect(NginxRouter.parseGeneration(Array(bad.utf8)) == nil, "\(String(reflecting: bad))")
        }
    }
}
