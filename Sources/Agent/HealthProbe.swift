#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP/1.1 client for loopback health probes. A round of probes runs concurrently
/// over non-blocking sockets and one poll() loop with one deadline, so a round takes at most
/// the health timeout however many components hang. Only the status code is used; the whole
/// response is read (to EOF or Content-Length) so the component never sees a reset.
enum HealthProbe {
    /// A response longer than this fails the probe (a health answer is a few hundred bytes).
    static let responseBytesMax = 8 * 1024
    /// Probes in one round; the caller plans within it.
    static let probesPerRoundMax = 256

    struct Request: Hashable {
        var port: Int
        var path: String
        /// Sent as `X-Tenant-ID` when set: the component answers 2xx only if it serves it.
        var tenant: String?
    }

    enum Outcome: Hashable {
        case status(Int)
        case failed(String)

        var isSuccess: Bool {
            if case .status(let code) = self { return (200...299).contains(code) }
            return false
        }
    }

    static func requestBytes(_ request: Request) -> [UInt8] {
        var text = "GET \(request.path) HTTP/1.1\r\nHost: 127.0.0.1:\(request.port)\r\nUser-Agent: peer-agent\r\nConnection: close\r\n"
        if let tenant = request.tenant { text += "X-Tenant-ID: \(tenant)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// Runs `requests` concurrently; returns one outcome per request, in order.
    static func run(_ requests: [Request], timeout: Duration) -> [Outcome] {
        precondition(requests.count <= probesPerRoundMax, "\(requests.count) probes in one round, max \(probesPerRoundMax)")
        let deadline = ContinuousClock.now + timeout
        var probes = requests.map { Probe(request: $0) }
        for index in probes.indices { probes[index].connect() }
        while probes.contains(where: { !$0.isDone }) {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { break }
            var fds: [pollfd] = []
            var owners: [Int] = []
            for index in probes.indices where !probes[index].isDone {
                fds.append(pollfd(fd: probes[index].fd, events: probes[index].wantsWrite ? Int16(POLLOUT) : Int16(POLLIN), revents: 0))
                owners.append(index)
            }
            let waitMs = Int32(clamping: max(1, remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000))
            let ready = poll(&fds, nfds_t(fds.count), waitMs)
            if ready < 0 && errno != EINTR { break }
            for (slot, index) in owners.enumerated() where fds[slot].revents != 0 {
                probes[index].advance()
            }
        }
        return probes.map { probe in
            var probe = probe
            return probe.finish()
        }
    }

    /// Parses the status line: `HTTP/1.x NNN ...`.
    static func parseStatus(_ bytes: ArraySlice<UInt8>) -> Outcome {
        let line = bytes.prefix(while: { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") })
        let text = String(decoding: line, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0",
              parts[1].count == 3, let code = Int(parts[1]), (100...599).contains(code)
        else { return .failed("malformed status line \(quoted(String(text.prefix(64))))") }
        return .status(code)
    }

    /// The Content-Length of a complete header block, nil if absent; a malformed one is an error.
    static func contentLength(_ header: ArraySlice<UInt8>) -> Result<Int?, ProbeError> {
        let text = String(decoding: header, as: UTF8.self)
        for line in text.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            guard line[..<colon].lowercased() == "content-length" else { continue }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
            guard let length = Int(value), length >= 0 else { return .failure(ProbeError(message: "malformed Content-Length \(quoted(value))")) }
            return .success(length)
        }
        return .success(nil)
    }

    struct ProbeError: Error { let message: String }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}

/// One probe's state machine: connect, send, receive, done.
private struct Probe {
    let request: HealthProbe.Request
    var fd: Int32 = -1
    var phase: Phase = .connecting
    var sent = 0
    var bytes = [UInt8]()
    let payload: [UInt8]

    enum Phase { case connecting, sending, receiving, done(HealthProbe.Outcome) }

    init(request: HealthProbe.Request) {
        self.request = request
        payload = HealthProbe.requestBytes(request)
    }

    var isDone: Bool { if case .done = phase { return true } else { return false } }
    var wantsWrite: Bool {
        switch phase {
        case .connecting, .sending: true
        default: false
        }
    }

    mutating func connect() {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return fail("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(request.port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result == 0 { phase = .sending; return }
        guard errno == EINPROGRESS else { return fail("connect 127.0.0.1:\(request.port): \(String(cString: strerror(errno)))") }
    }

    mutating func advance() {
        switch phase {
        case .connecting:
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else { return fail("connect 127.0.0.1:\(request.port): \(String(cString: strerror(error)))") }
            phase = .sending
            send()
        case .sending: send()
        case .receiving: receive()
        case .done: break
        }
    }

    private mutating func send() {
        let count = payload.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
        if count < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            return fail("send: \(String(cString: strerror(errno)))")
        }
        sent += count
        if sent == payload.count { phase = .receiving }
    }

    private mutating func receive() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            return fail("recv: \(String(cString: strerror(errno)))")
        }
        if count == 0 { return complete() }
        guard bytes.count + count <= HealthProbe.responseBytesMax else {
            return fail("response exceeds \(HealthProbe.responseBytesMax) bytes")
        }
        bytes.append(contentsOf: chunk[0..<count])
        // Complete early when the header says how long the body is and all of it is here.
        if let end = headerEnd() {
            switch HealthProbe.contentLength(bytes[..<end]) {
            case .failure(let error): fail(error.message)
            case .success(.some(let length)) where bytes.count - end - 4 >= length: complete()
            case .success: break
            }
        }
    }

    private func headerEnd() -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }

    private mutating func complete() {
        guard !bytes.isEmpty else { return fail("connection closed before a response") }
        phase = .done(HealthProbe.parseStatus(bytes[...]))
        closeSocket()
    }

    private mutating func fail(_ message: String) {
        phase = .done(.failed(message))
        closeSocket()
    }

    private mutating func closeSocket() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    mutating func finish() -> HealthProbe.Outcome {
        if case .done(let outcome) = phase { return outcome }
        closeSocket()
        return .failed("no complete response within the health timeout (\(bytes.count) bytes read)")
    }
}
