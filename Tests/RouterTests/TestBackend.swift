import Foundation
import Synchronization
@testable import Router

#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP server on a thread of its own, standing in for one (instance, component):
/// every request gets `200` with body `<name> tenant=<X-Tenant-ID> host=<Host>`, and the
/// connection is closed (nginx then does not keep it). One connection at a time.
final class TestBackend: Sendable {
    /// Bound on a request head (nginx sends a few hundred bytes).
    static let requestHeadBytesMax = 16 * 1024
    /// How long a connection may take to deliver its request head.
    static let receiveTimeoutSeconds = 2
    /// How often the accept loop checks for `stop()`.
    static let acceptPollMilliseconds: Int32 = 50

    let name: String
    private let listener: HeldPort
    private let stopping = Atomic<Bool>(false)
    private let served = Atomic<Int>(0)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String) throws {
        self.name = name
        listener = try HeldPort()
        let thread = Thread { [self] in
            self.acceptLoop()
            self.finished.signal()
        }
        thread.name = "backend-\(name)"
        thread.start()
    }

    var address: String { listener.address }
    var requestsServed: Int { served.load(ordering: .relaxed) }

    /// Stops accepting and waits (bounded) for the accept loop to end.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        _ = finished.wait(timeout: .now() + .seconds(5))
        listener.close()
    }

    private func acceptLoop() {
        while !stopping.load(ordering: .relaxed) {
            var descriptor = pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Self.acceptPollMilliseconds) > 0 else { continue }
            let connection = accept(listener.fd, nil, nil)
            guard connection >= 0 else { continue }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            handle(connection)
            close(connection)
        }
    }

    private func handle(_ connection: Int32) {
        var timeout = timeval(tv_sec: Self.receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let head = readHead(connection) else { return }
        let headers = Self.parseHeaders(head)
        let body = "\(name) tenant=\(headers["x-tenant-id"] ?? "") host=\(headers["host"] ?? "")"
        let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        let bytes = Array(response.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { send(connection, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { return }
            sent += count
        }
        served.add(1, ordering: .relaxed)
    }

    private func readHead(_ connection: Int32) -> String? {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while buffer.count < Self.requestHeadBytesMax {
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress!, $0.count, 0) }
            guard count > 0 else { return nil }
            buffer.append(contentsOf: chunk[0..<count])
            if let text = String(bytes: buffer, encoding: .utf8), text.contains("\r\n\r\n") { return text }
        }
        return nil
    }

    static func parseHeaders(_ head: String) -> [String: String] {
        var headers: [String: String] = [:]
        for line in head.components(separatedBy: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return headers
    }
}
