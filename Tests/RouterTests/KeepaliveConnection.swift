import Foundation
import LoopbackHTTP
@testable import Router

#if canImport(Glibc)
import Glibc
#endif

/// A blocking HTTP/1.1 client that keeps ONE connection for all its requests (keepalive), as
/// a browser or wrk does: a connection the server closes between two requests shows up as an
/// error on the next request instead of being hidden by a fresh connection per request.
final class KeepaliveConnection {
    private let fd: Int32
    private let host: String

    init(_ address: String) throws {
        var socketAddress = try Self.parseIPv4(address)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw KeepaliveError.socket(operation: "socket", errno: errno) }
        host = address
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw KeepaliveError.socket(operation: "connect", errno: code)
        }
    }

    /// Set when the server's last answer said `Connection: close` (nginx does after
    /// `keepalive_requests`): an announced close, which a client handles by reconnecting.
    private(set) var closeAnnounced = false

    /// `GET /` on this connection; throws if the server closed it unannounced or answered garbage.
    func get(headers: [(String, String)]) throws -> LoopbackHTTPReply {
        var text = "GET / HTTP/1.1\r\nHost: \(host)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        let request = Array(text.utf8)
        var sent = 0
        while sent < request.count {
            let count = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw KeepaliveError.socket(operation: "send", errno: errno) }
            sent += count
        }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            if let reply = try Self.parse(buffer) {
                closeAnnounced = reply.header("connection")?.lowercased() == "close"
                return reply
            }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                guard buffer.count <= TestSupport.responseBytesMax else { throw KeepaliveError.responseTooLarge(bytesMax: TestSupport.responseBytesMax) }
            } else if count == 0 {
                throw KeepaliveError.closedEarly(receivedBytes: buffer.count)
            } else if errno != EINTR {
                throw KeepaliveError.socket(operation: "recv", errno: errno)
            }
        }
    }

    func close() { Glibc.close(fd) }

    static func parseIPv4(_ address: String) throws -> sockaddr_in {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw KeepaliveError.malformed("not an IPv4 host:port: \(address)")
        }
        var result = sockaddr_in()
        result.sin_family = sa_family_t(AF_INET)
        result.sin_port = port.bigEndian
        guard inet_pton(AF_INET, String(address[..<colon]), &result.sin_addr) == 1 else {
            throw KeepaliveError.malformed("not an IPv4 host:port: \(address)")
        }
        return result
    }

    /// The reply once `bytes` hold its head and `Content-Length` bytes of body (nginx sends
    /// one on every answer these tests ask for); nil while more is needed.
    static func parse(_ bytes: [UInt8]) throws -> LoopbackHTTPReply? {
        let marker: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4, let headerEnd = (0...(bytes.count - 4)).first(where: { bytes[$0..<($0 + 4)].elementsEqual(marker) }) else {
            return nil
        }
        var lines = String(decoding: bytes[0..<headerEnd], as: UTF8.self).split(separator: "\r\n").map(String.init)
        let statusLine = lines.isEmpty ? "" : lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...599).contains(status) else {
            throw KeepaliveError.malformed("status line \(String(reflecting: String(statusLine.prefix(80))))")
        }
        var headers: [String: [String]] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw KeepaliveError.malformed("header line without ':'") }
            headers[line[..<colon].lowercased(), default: []].append(line[line.index(after: colon)...].trimmingSpaces())
        }
        guard let length = headers["content-length"]?.first.flatMap({ Int($0) }), length >= 0 else {
            throw KeepaliveError.malformed("no Content-Length on a kept-alive answer")
        }
        let bodyStart = headerEnd + 4
        guard bytes.count - bodyStart >= length else { return nil }
        return LoopbackHTTPReply(status: status, headers: headers, body: Array(bytes[bodyStart..<(bodyStart + length)]))
    }
}

enum KeepaliveError: Error, CustomStringConvertible {
    case socket(operation: String, errno: Int32)
    case closedEarly(receivedBytes: Int)
    case responseTooLarge(bytesMax: Int)
    case malformed(String)

    var description: String {
        switch self {
        case .socket(let operation, let code): "\(operation) failed: errno \(code)"
        case .closedEarly(let bytes): "connection closed after \(bytes) bytes, before the response was complete"
        case .responseTooLarge(let max): "response exceeds \(max) bytes"
        case .malformed(let what): "malformed response: \(what)"
        }
    }
}
