import Foundation
import Glibc
import Logging
import Synchronization
import Testing

@testable import Router

// Helpers for the statistics tests. Every name starts with `Stats` so they cannot collide with the
// rest of RouterTests, which another engineer writes.

/// Builds datagrams exactly as NGINX 1.22 frames a `peer_json` line (captured from a real nginx:
/// `<190>Nov 26 03:20:51 vm peer: {...}`, no trailing newline).
enum StatsTestLine {
    static let header = "<190>Nov 26 03:20:51 vm peer: "

    static func json(
        time: String = "1795663251.481", tenant: String = "acme", instance: String = "i-1", component: String = "web",
        status: String = "200", requestTime: String = "0.004", upstreamTime: String = "0.003", bytes: String = "145"
    ) -> String {
        "{\"time\":\"\(time)\",\"tenant\":\"\(tenant)\",\"instance\":\"\(instance)\",\"component\":\"\(component)\","
            + "\"status\":\(status),\"request_time\":\(requestTime),\"upstream_time\":\"\(upstreamTime)\",\"bytes\":\(bytes)}"
    }

    static func datagram(_ json: String, header: String = header) -> [UInt8] {
        Array((header + json).utf8)
    }

    /// A record as NGINX would log it, framed: the inverse of the parser.
    static func datagram(for record: StatsRecord) -> [UInt8] {
        let ms = record.timeMs % 1000
        let time = "\(record.timeMs / 1000)." + String(repeating: "0", count: ms < 10 ? 2 : ms < 100 ? 1 : 0) + "\(ms)"
        return datagram(json(
            time: time, tenant: record.tenant ?? "", instance: record.instance ?? "", component: record.component ?? "",
            status: record.status == 0 ? "000" : "\(record.status)", requestTime: seconds(record.requestTimeSeconds),
            upstreamTime: record.upstreamTimeSeconds.map(seconds) ?? "-", bytes: "\(record.bytes)"
        ))
    }

    /// Seconds with three decimals, as NGINX prints `$request_time`.
    static func seconds(_ value: Double) -> String {
        let ms = Int((value * 1000).rounded())
        let fraction = ms % 1000
        return "\(ms / 1000)." + String(repeating: "0", count: fraction < 10 ? 2 : fraction < 100 ? 1 : 0) + "\(fraction)"
    }
}

/// A SplitMix64 generator: a fixed seed reproduces a whole test run.
struct StatsSeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Polls `condition` every `intervalMs` until it holds or `timeoutMs` passes; true if it held.
/// Waiting between checks is the poll's interval, not a synchronisation sleep.
/// The default bound is a liveness bound: a passing run returns as soon as the condition holds;
/// under a loaded machine (the full suite runs wrk beside it) the receiving thread may wait for
/// a core for seconds.
func statsPoll(timeoutMs: Int = 30_000, intervalMs: Int = 20, _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
    while true {
        if try condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try await Task.sleep(for: .milliseconds(intervalMs))
    }
}

/// A UDP socket that sends datagrams to 127.0.0.1:`port`, as NGINX's syslog client does.
final class StatsUDPSender {
    private let fd: Int32
    private var address = sockaddr_in()

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw StatsTestError("socket: errno \(errno)") }
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard sent == bytes.count else { throw StatsTestError("sendto sent \(sent) of \(bytes.count): errno \(errno)") }
    }
}

struct StatsTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A temporary directory, deleted by `remove()`.
struct StatsTemporaryDirectory {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/peer-stats-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw StatsTestError("mkdtemp: errno \(errno)")
        }
        path = String(cString: made)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A free TCP port on 127.0.0.1 (bound to port 0, read, released). Another process could take it
/// before the caller binds it; the tests then fail loudly at nginx start rather than hang.
func statsFreeTCPPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw StatsTestError("socket: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard ok else { throw StatsTestError("bind/getsockname: errno \(errno)") }
    return UInt16(bigEndian: address.sin_port)
}

/// A tiny HTTP/1.1 client over a blocking socket: one GET with `Connection: close`, the response
/// read to EOF (at most `responseBytesMax`, with a receive timeout), the status code returned.
enum StatsTinyHTTP {
    static let responseBytesMax = 64 * 1024
    static let timeoutMs = 2_000

    /// Connects to 127.0.0.1:`port`; nil if nothing accepts there (used to wait for nginx).
    static func connect(port: UInt16) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    static func get(port: UInt16, path: String, headers: [String: String] = [:]) throws -> Int {
        guard let fd = connect(port: port) else { throw StatsTestError("connect 127.0.0.1:\(port): errno \(errno)") }
        defer { close(fd) }
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        let bytes = Array(request.utf8)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw StatsTestError("send: errno \(errno)") }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while response.count < responseBytesMax {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { break }
            guard count > 0 else { throw StatsTestError("recv: errno \(errno)") }
            response += chunk[0..<count]
        }
        // "HTTP/1.1 200 OK\r\n"
        let statusLine = response.prefix { $0 != 0x0D }
        let parts = statusLine.split(separator: 0x20)
        guard parts.count >= 2, parts[0].starts(with: Array("HTTP/1.".utf8)), parts[1].count == 3,
              let code = Int(String(decoding: parts[1], as: UTF8.self))
        else { throw StatsTestError("bad status line: \(String(decoding: statusLine.prefix(80), as: UTF8.self))") }
        return code
    }
}

/// A real nginx started with posix_spawn in the foreground (`daemon off`), so its master is our
/// child; stopped by that PID with SIGQUIT (graceful), then SIGKILL after a deadline.
final class StatsNginxProcess {
    static let binary = "/usr/sbin/nginx"
    static let stopTimeoutMs = 5_000
    let pid: pid_t
    private var reaped = false

    init(prefix: String, config: String) throws {
        let arguments = [Self.binary, "-p", prefix + "/", "-c", config, "-e", prefix + "/error.log", "-g", "daemon off;"]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, prefix + "/nginx.out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        let code = posix_spawn(&child, Self.binary, &actions, nil, &argv, environ)
        guard code == 0 else { throw StatsTestError("posix_spawn \(Self.binary): \(code)") }
        pid = child
    }

    /// Whether the master has exited (reaping it if so).
    func hasExited() -> Bool {
        if reaped { return true }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { reaped = true }
        return reaped
    }

    /// SIGKILL and reap at once (cleanup after a failed test).
    func kill() {
        guard !hasExited() else { return }
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        reaped = true
    }

    /// SIGQUIT, poll for exit until the deadline, then SIGKILL and reap.
    func stop() async throws {
        guard !hasExited() else { return }
        Glibc.kill(pid, SIGQUIT)
        if try await statsPoll(timeoutMs: Self.stopTimeoutMs, { hasExited() }) { return }
        kill()
    }
}

/// A log handler that keeps what is logged, for tests that check what the listener logs.
struct StatsCapturingLogHandler: LogHandler {
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    final class Store: Sendable {
        let entries = Mutex<[Entry]>([])
    }

    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        all.merge(event.metadata ?? [:]) { $1 }
        let entry = Entry(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" })
        store.entries.withLock { $0.append(entry) }
    }
}
