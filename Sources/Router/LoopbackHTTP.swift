#if canImport(Glibc)
import Glibc
#endif

/// Why a `LoopbackHTTP` request got no usable answer.
enum HTTPProbeError: Error, Sendable, Hashable, CustomStringConvertible {
    case badAddress(String)
    case socket(operation: String, errno: Int32)
    case timedOut(phase: String)
    case closedEarly(receivedBytes: Int)
    case responseTooLarge(bytesMax: Int)
    case malformed(String)

    var description: String {
        switch self {
        case .badAddress(let address): return "not an IPv4 host:port: \(address)"
        case .socket(let operation, let code): return "\(operation) failed: errno \(code) (\(errnoName(code)))"
        case .timedOut(let phase): return "timed out during \(phase)"
        case .closedEarly(let bytes): return "connection closed after \(bytes) bytes, before the response was complete"
        case .responseTooLarge(let max): return "response exceeds \(max) bytes"
        case .malformed(let what): return "malformed response: \(what)"
        }
    }
}

/// A parsed HTTP/1.1 response.
struct HTTPReply: Sendable, Hashable {
    let status: Int
    /// Header names lowercased; in arrival order.
    let headers: [(name: String, value: String)]
    let body: [UInt8]

    func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name == lowered }?.value
    }

    var bodyText: String { String(decoding: body, as: UTF8.self) }

    static func == (lhs: HTTPReply, rhs: HTTPReply) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.headers.elementsEqual(rhs.headers) { $0 == $1 }
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(status)
        hasher.combine(body)
    }
}

/// A tiny blocking HTTP/1.1 client for loopback (IPv4) endpoints: one request per
/// connection (`Connection: close`), a deadline on the whole exchange, and a bound on the
/// response size. Used to poll nginx's control server; no NIO, no Foundation.
enum LoopbackHTTP {
    /// The control server's answers are a few bytes; anything above this is not nginx's.
    static let controlResponseBytesMax = 4096

    /// `GET`s (or `method`s) `path` from `address` (`a.b.c.d:port`) and returns the reply.
    /// `Host` is `address` unless `headers` has one. Blocks the calling thread for at most
    /// `timeout`. Callers pass header names and values without CR/LF.
    static func request(
        _ address: String,
        method: String = "GET",
        path: String,
        headers: [(String, String)] = [],
        body: [UInt8] = [],
        timeout: Duration,
        responseBytesMax: Int = controlResponseBytesMax
    ) throws(HTTPProbeError) -> HTTPReply {
        let deadline = ContinuousClock.now + timeout
        var socketAddress = try parseIPv4(address)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw .socket(operation: "socket", errno: errno) }
        defer { close(fd) }
        try connect(fd, &socketAddress, deadline: deadline)
        var text = "\(method) \(path) HTTP/1.1\r\nConnection: close\r\n"
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { text += "Host: \(address)\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" || method == "PUT" { text += "Content-Length: \(body.count)\r\n" }
        text += "\r\n"
        try sendAll(fd, Array(text.utf8) + body, deadline: deadline)
        return try receive(fd, deadline: deadline, bytesMax: responseBytesMax)
    }

    static func parseIPv4(_ address: String) throws(HTTPProbeError) -> sockaddr_in {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw .badAddress(address)
        }
        var result = sockaddr_in()
        result.sin_family = sa_family_t(AF_INET)
        result.sin_port = port.bigEndian
        let host = String(address[..<colon])
        guard inet_pton(AF_INET, host, &result.sin_addr) == 1 else { throw .badAddress(address) }
        return result
    }

    private static func connect(_ fd: Int32, _ address: inout sockaddr_in, deadline: ContinuousClock.Instant) throws(HTTPProbeError) {
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result == 0 { return }
        guard errno == EINPROGRESS else { throw .socket(operation: "connect", errno: errno) }
        try wait(fd, for: Int16(POLLOUT), deadline: deadline, phase: "connect")
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else { throw .socket(operation: "connect", errno: error) }
    }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8], deadline: ContinuousClock.Instant) throws(HTTPProbeError) {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if count > 0 { sent += count; continue }
            if count < 0 && (errno == EAGAIN || errno == EINTR) {
                try wait(fd, for: Int16(POLLOUT), deadline: deadline, phase: "send")
                continue
            }
            throw .socket(operation: "send", errno: errno)
        }
    }

    private static func receive(_ fd: Int32, deadline: ContinuousClock.Instant, bytesMax: Int) throws(HTTPProbeError) -> HTTPReply {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let reply = try parse(buffer, complete: false) { return reply }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if count > 0 {
                guard buffer.count + count <= bytesMax else { throw .responseTooLarge(bytesMax: bytesMax) }
                buffer.append(contentsOf: chunk[0..<count])
            } else if count == 0 {
                guard let reply = try parse(buffer, complete: true) else { throw .closedEarly(receivedBytes: buffer.count) }
                return reply
            } else if errno == EAGAIN || errno == EINTR {
                try wait(fd, for: Int16(POLLIN), deadline: deadline, phase: "receive")
            } else {
                throw .socket(operation: "recv", errno: errno)
            }
        }
    }

    /// The reply once `bytes` hold all of it: headers and `Content-Length` bytes of body, or,
    /// without a length, everything up to the close (`complete`). nil while more is needed.
    static func parse(_ bytes: [UInt8], complete: Bool) throws(HTTPProbeError) -> HTTPReply? {
        guard let headerEnd = find([13, 10, 13, 10], in: bytes) else {
            if complete { throw .malformed("no end of headers in \(bytes.count) bytes") }
            return nil
        }
        let head = String(decoding: bytes[0..<headerEnd], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].utf8.count == 3, let status = Int(parts[1]), (100...599).contains(status) else {
            throw .malformed("status line \(String(reflecting: String(statusLine.prefix(80))))")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw .malformed("header line without ':'") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces()
            headers.append((name, value))
        }
        let bodyStart = headerEnd + 4
        if let lengthText = headers.first(where: { $0.name == "content-length" })?.value {
            guard let length = Int(lengthText), length >= 0 else { throw .malformed("content-length \(String(reflecting: lengthText))") }
            if bytes.count - bodyStart < length {
                if complete { throw .closedEarly(receivedBytes: bytes.count) }
                return nil
            }
            return HTTPReply(status: status, headers: headers, body: Array(bytes[bodyStart..<(bodyStart + length)]))
        }
        guard complete else { return nil }
        return HTTPReply(status: status, headers: headers, body: Array(bytes[bodyStart...]))
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }

    private static func wait(_ fd: Int32, for events: Int16, deadline: ContinuousClock.Instant, phase: String) throws(HTTPProbeError) {
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { throw .timedOut(phase: phase) }
            let (seconds, attoseconds) = remaining.components
            let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            var descriptor = pollfd(fd: fd, events: events, revents: 0)
            let result = poll(&descriptor, 1, milliseconds)
            if result > 0 { return }
            if result < 0 && errno != EINTR { throw .socket(operation: "poll", errno: errno) }
        }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var scalars = Substring(self).unicodeScalars[...]
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
