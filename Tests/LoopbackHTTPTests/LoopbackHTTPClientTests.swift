import Foundation
import LoopbackHTTP
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The one loopback client against servers that answer well, badly, too much or not at all:
/// every answer is a reply or a specific error, within the deadline, never a crash.
@Suite struct LoopbackHTTPClientTests {
    let client = LoopbackHTTPClient.shared

    /// When the client completed `future`, as seen on its event loop: what the client did, not
    /// how long this test's task then waited for a cooperative thread (tests that block those
    /// threads run beside this one).
    static func completionTime<T>(_ future: EventLoopFuture<T>, since started: ContinuousClock.Instant) -> EventLoopFuture<Duration> {
        future.map { _ in ContinuousClock.now - started }.recover { _ in ContinuousClock.now - started }
    }

    @Test func aCompleteResponseIsReadWithItsHeadersAndOnlyItsContentLength() async throws {
        // Bytes after the announced length are not part of the body.
        let server = try ScriptedServer(.bytes(Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n42\nEXTRA".utf8)))
        defer { server.stop() }
        let reply = try await client.request("127.0.0.1:\(server.port)", path: "/generation", timeout: .seconds(5), responseBytesMax: 64)
        #expect(reply.status == 200)
        #expect(reply.header("content-type") == "text/plain")
        #expect(reply.header("CONTENT-TYPE") == "text/plain")
        #expect(reply.bodyText == "42\n")
    }

    @Test func aPostCarriesItsBodyHeadersAndConnectionClose() async throws {
        let server = try ScriptedServer(.bytes(Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)))
        defer { server.stop() }
        let body = Array("+ t-1 i-2\n".utf8)
        let reply = try await client.request(
            "127.0.0.1:\(server.port)", method: .POST, path: "/routes", headers: [("X-Peer-Control", "secret")], body: body,
            timeout: .seconds(5), responseBytesMax: 64)
        #expect(reply.status == 200)
        let request = try #require(server.requests.first)
        #expect(request.hasPrefix("POST /routes HTTP/1.1\r\n"))
        let lines = request.lowercased().split(separator: "\r\n")
        #expect(lines.contains("x-peer-control: secret"))
        #expect(lines.contains("connection: close"))
        #expect(lines.contains("content-length: \(body.count)"))
        #expect(request.hasSuffix("\r\n\r\n+ t-1 i-2\n"))
    }

    @Test func aResponseCutShortIsAProtocolError() async throws {
        let server = try ScriptedServer(.bytes(Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12".utf8)))
        defer { server.stop() }
        let address = "127.0.0.1:\(server.port)"
        await #expect(throws: LoopbackHTTPError.self) {
            try await client.request(address, path: "/", timeout: .seconds(5), responseBytesMax: 64)
        }
        do {
            _ = try await client.request(address, path: "/", timeout: .seconds(5), responseBytesMax: 64)
        } catch {
            guard case .protocolError(let at, _) = error else { Issue.record("expected a protocol error, got \(error)"); return }
            #expect(at == address)
        }
    }

    @Test func malformedResponsesAreErrorsNotReplies() async throws {
        let answers = [
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        ]
        for answer in answers {
            let server = try ScriptedServer(.bytes(Array(answer.utf8)))
            defer { server.stop() }
            await #expect(throws: LoopbackHTTPError.self, "\(String(reflecting: answer))") {
                try await client.request("127.0.0.1:\(server.port)", path: "/", timeout: .seconds(5), responseBytesMax: 64)
            }
        }
    }

    @Test func aBodyOverTheBoundIsRefused() async throws {
        let body = String(repeating: "x", count: 100)
        let server = try ScriptedServer(.bytes(Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n\(body)".utf8)))
        defer { server.stop() }
        let address = "127.0.0.1:\(server.port)"
        await #expect(throws: LoopbackHTTPError.responseTooLarge(address: address, bytesMax: 16)) {
            try await client.request(address, path: "/", timeout: .seconds(5), responseBytesMax: 16)
        }
        // The same answer within a larger bound is read whole.
        let server2 = try ScriptedServer(.bytes(Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n\(body)".utf8)))
        defer { server2.stop() }
        #expect(try await client.request("127.0.0.1:\(server2.port)", path: "/", timeout: .seconds(5), responseBytesMax: 100).body.count == 100)
    }

    @Test func aSilentServerTimesOutAtTheDeadlineNotLater() async throws {
        let server = try ScriptedServer(.silence)
        defer { server.stop() }
        let address = "127.0.0.1:\(server.port)"
        let started = ContinuousClock.now
        let future = client.start(address, path: "/", timeout: .milliseconds(300), responseBytesMax: 64)
        let took = Self.completionTime(future, since: started)
        await #expect(throws: LoopbackHTTPError.timedOut(address: address, after: .milliseconds(300))) { try await future.get() }
        let elapsed = try await took.get()
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(2), "took \(elapsed)")
    }

    @Test func aRefusedConnectionFailsAtOnceAsConnect() async throws {
        // A port that was bound and released: nothing listens there.
        let server = try ScriptedServer(.silence)
        let port = server.port
        server.stop()
        let started = ContinuousClock.now
        let future = client.start("127.0.0.1:\(port)", path: "/", timeout: .seconds(5), responseBytesMax: 64)
        let took = Self.completionTime(future, since: started)
        do {
            _ = try await future.get()
            Issue.record("a request to a closed port answered")
        } catch {
            guard case .connect(let address, _)? = error as? LoopbackHTTPError else { Issue.record("expected .connect, got \(error)"); return }
            #expect(address == "127.0.0.1:\(port)")
        }
        // No connection retries until the deadline.
        let elapsed = try await took.get()
        #expect(elapsed < .seconds(2), "took \(elapsed)")
    }

    @Test func manyRequestsStartedAtOnceRunConcurrently() throws {
        let silent = try (0..<4).map { _ in try ScriptedServer(.silence) }
        defer { silent.forEach { $0.stop() } }
        let started = ContinuousClock.now
        let futures = silent.map { client.start("127.0.0.1:\($0.port)", path: "/", timeout: .milliseconds(400), responseBytesMax: 64) }
        // The last completion, as seen on the event loops.
        let ends = futures.map { $0.map { _ in ContinuousClock.now }.recover { _ in ContinuousClock.now } }
        for future in futures {
            #expect(throws: LoopbackHTTPError.self) { try future.wait() }
        }
        let took = try ends.map { try $0.wait() }.max()! - started
        // Four deadlines of 400 ms ran side by side, not one after another (1.6 s).
        #expect(took >= .milliseconds(400) && took < .milliseconds(1200), "took \(took)")
    }
}
