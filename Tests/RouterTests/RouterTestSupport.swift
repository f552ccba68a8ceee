import Foundation
import Logging
import LoopbackHTTP
import NIOHTTP1
import Synchronization
import Testing
@testable import Router

#if canImport(Glibc)
import Glibc
#endif

/// Every suite that runs a real nginx is nested here: one at a time, so the rate-limit and
/// reload-under-traffic tests do not compete with the 100,000-tenant test for the CPU.
@Suite(.serialized) enum RealNginxTests {}

/// Shared helpers for the Router tests: temp directories, loopback ports, polling with a
/// deadline (never a sleep used as synchronisation), and a quiet-but-useful logger.
enum TestSupport {
    /// Generous bound for responses the tests read through nginx.
    static let responseBytesMax = 64 * 1024
    static let requestTimeout: Duration = .seconds(5)

    static var logger: Logger {
        var logger = Logger(label: "router-test") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .notice
        return logger
    }

    /// A fresh directory (0755: nginx workers run as `nobody` when the tests run as root).
    static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/router-test-XXXXXX".utf8CString)
        let path = try template.withUnsafeMutableBufferPointer { buffer -> String in
            guard let result = mkdtemp(buffer.baseAddress!) else { throw POSIXError(.EIO) }
            return String(cString: result)
        }
        chmod(path, 0o755)
        return path
    }

    static func removeDirectory(_ path: String) {
        precondition(path.hasPrefix("/tmp/router-test-"), "refusing to remove \(path)")
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A loopback TCP port that was free a moment ago (bound to port 0, then closed).
    static func freePort() throws -> UInt16 {
        let held = try HeldPort()
        defer { held.close() }
        return held.port
    }

    /// Checks `condition` every 20 ms until it holds or `timeout` passes; false on timeout.
    static func poll(timeout: Duration, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return try await condition()
    }

    /// One request through nginx. Awaited, never blocking a thread: a test that blocks one of
    /// the few cooperative threads stalls every async test of the process meanwhile.
    static func get(_ address: String, path: String = "/", headers: [(String, String)] = []) async throws -> LoopbackHTTPReply {
        try await request(address, path: path, headers: headers)
    }

    /// Any request through the product's loopback client.
    static func request(
        _ address: String, method: HTTPMethod = .GET, path: String, headers: [(String, String)] = [], body: [UInt8] = []
    ) async throws -> LoopbackHTTPReply {
        try await LoopbackHTTPClient.shared.request(
            address, method: method, path: path, headers: headers, body: body, timeout: requestTimeout, responseBytesMax: responseBytesMax)
    }

    /// Runs `body` with a router in a temp prefix; always stops nginx and removes the prefix.
    static func withRouter<T>(
        confirmTimeout: Duration = .seconds(5),
        _ body: (NginxRouter, String) async throws -> T
    ) async throws -> T {
        let directory = try makeTemporaryDirectory()
        let prefix = directory + "/nginx"
        let router = NginxRouter(prefix: prefix, logger: logger, confirmTimeout: confirmTimeout)
        do {
            let result = try await body(router, prefix)
            await router.stop()
            removeDirectory(directory)
            return result
        } catch {
            await router.stop()
            let errorLog = String(decoding: PrefixFiles.read(prefix + "/error.log", bytesMax: 4096), as: UTF8.self)
            if !errorLog.isEmpty { print("error.log of the failed test:\n\(errorLog)") }
            removeDirectory(directory)
            throw error
        }
    }
}

/// A socket of `type` bound to 127.0.0.1 at a port the kernel picks; its descriptor and port.
/// Closed again if anything fails.
func bindLoopback(type: __socket_type) throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard named else {
        Glibc.close(fd)
        throw POSIXError(.EADDRINUSE)
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// A listening loopback TCP socket the test owns (to hold a port, or to learn a free one).
final class HeldPort: Sendable {
    let fd: Int32
    let port: UInt16

    init() throws {
        (fd, port) = try bindLoopback(type: SOCK_STREAM)
        guard listen(fd, 128) == 0 else {
            Glibc.close(fd)
            throw POSIXError(.EADDRINUSE)
        }
    }

    var address: String { "127.0.0.1:\(port)" }

    func close() { Glibc.close(fd) }
}

