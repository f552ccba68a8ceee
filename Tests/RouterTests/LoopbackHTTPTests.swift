import Testing
@testable import Router

#if canImport(Glibc)
import Glibc
#endif

/// The control-server client reads bytes from a socket: every malformed or oversized answer
/// is a specific error, never a crash or a wrong generation.
@Suite struct LoopbackHTTPTests {
    @Test func completeResponseIsParsedWithItsContentLength() throws {
        let bytes = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n42\nextra".utf8)
        let reply = try #require(try LoopbackHTTP.parse(bytes, complete: false))
        #expect(reply.status == 200)
        #expect(reply.header("content-type") == "text/plain")
        #expect(reply.bodyText == "42\n")
    }

    @Test func incompleteResponseWaitsForMoreAndFailsAtClose() throws {
        let partial = Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12".utf8)
        #expect(try LoopbackHTTP.parse(partial, complete: false) == nil)
        #expect(throws: HTTPProbeError.closedEarly(receivedBytes: partial.count)) { try LoopbackHTTP.parse(partial, complete: true) }
        let noHeaderEnd = Array("HTTP/1.1 200 OK\r\nContent-Le".utf8)
        #expect(try LoopbackHTTP.parse(noHeaderEnd, complete: false) == nil)
        #expect(throws: HTTPProbeError.self) { try LoopbackHTTP.parse(noHeaderEnd, complete: true) }
    }

    @Test func malformedResponsesAreRefused() {
        let cases = [
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/2 200\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        ]
        for text in cases {
            #expect(throws: HTTPProbeError.self, "\(String(reflecting: text))") { try LoopbackHTTP.parse(Array(text.utf8), complete: true) }
        }
    }

    @Test func generationBodyMustBeDigitsAndNewline() {
        #expect(NginxRouter.parseGeneration(Array("42\n".utf8)) == 42)
        #expect(NginxRouter.parseGeneration(Array("18446744073709551615\n".utf8)) == UInt64.max)
        for bad in ["42", "\n", "4 2\n", "-1\n", "18446744073709551616\n", "0x10\n", "42\n\n", "<html>\n"] {
            #expect(NginxRouter.parseGeneration(Array(bad.utf8)) == nil, "\(String(reflecting: bad))")
        }
    }

    @Test func refusedConnectionAndBadAddressAreErrors() throws {
        let port = try TestSupport.freePort()
        #expect(throws: HTTPProbeError.socket(operation: "connect", errno: ECONNREFUSED)) {
            try LoopbackHTTP.request("127.0.0.1:\(port)", path: "/generation", timeout: .seconds(2))
        }
        #expect(throws: HTTPProbeError.badAddress("localhost:80")) {
            try LoopbackHTTP.request("localhost:80", path: "/", timeout: .seconds(1))
        }
    }

    @Test func oversizedResponseIsCutOffAtTheBound() async throws {
        let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
        defer { backends.forEach { $0.stop() } }
        #expect(throws: HTTPProbeError.responseTooLarge(bytesMax: 16)) {
            try LoopbackHTTP.request(backends[0].address, path: "/", timeout: .seconds(2), responseBytesMax: 16)
        }
    }
}

