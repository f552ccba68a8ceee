// Linux only: SO_RXQ_OVFL and the cmsghdr layout below are Linux's (the peer runs on Linux).
import Glibc

/// Why the statistics listener could not be set up.
public enum StatsListenerError: Error, Sendable, Equatable, CustomStringConvertible {
    case socket(errno: Int32)
    case setOption(name: String, errno: Int32)
    case bind(port: UInt16, errno: Int32)
    case thread(code: Int32)

    public var description: String {
        switch self {
        case .socket(let code): "socket(AF_INET, SOCK_DGRAM): \(StatsSocket.errorText(code))"
        case .setOption(let name, let code): "setsockopt(\(name)): \(StatsSocket.errorText(code))"
        case .bind(let port, let code): "bind(127.0.0.1:\(port)): \(StatsSocket.errorText(code))"
        case .thread(let code): "pthread_create: \(StatsSocket.errorText(code))"
        }
    }
}

/// The UDP socket of the statistics listener, bound to 127.0.0.1 only: the log lines come from
/// the local NGINX and nothing else may feed the load reports.
struct StatsSocket: Sendable {
    /// Linux `SO_RXQ_OVFL` (asm-generic/socket.h): the kernel attaches the socket's drop count to
    /// each received datagram, which is how the listener counts datagrams it never saw.
    static let optionReceiveQueueOverflow: Int32 = 40

    let fd: Int32
    let port: UInt16
    /// The receive buffer the kernel granted, in bytes (`getsockopt(SO_RCVBUF)`: Linux doubles
    /// the request for its bookkeeping and caps it at `net.core.rmem_max`).
    let receiveBufferBytes: Int

    /// A socket bound to 127.0.0.1:`port` (0: any free port) with the receive buffer requested
    /// and a receive timeout, so a blocked `receive` returns within `receiveTimeoutMs`.
    init(port: UInt16, receiveBufferBytes: Int, receiveTimeoutMs: Int) throws(StatsListenerError) {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .socket(errno: errno) }
        do throws(StatsListenerError) {
            try Self.set(fd, SO_RCVBUF, "SO_RCVBUF", Int32(clamping: receiveBufferBytes))
            try Self.set(fd, Self.optionReceiveQueueOverflow, "SO_RXQ_OVFL", 1)
            var timeout = timeval(tv_sec: receiveTimeoutMs / 1000, tv_usec: .init((receiveTimeoutMs % 1000) * 1000))
            guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw .setOption(name: "SO_RCVTIMEO", errno: errno)
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw .bind(port: port, errno: errno) }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard named == 0 else { throw .bind(port: port, errno: errno) }
            var granted: Int32 = 0
            var grantedLength = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &grantedLength) == 0 else {
                throw .setOption(name: "SO_RCVBUF", errno: errno)
            }
            self.fd = fd
            self.port = UInt16(bigEndian: address.sin_port)
            self.receiveBufferBytes = Int(granted)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    private static func set(_ fd: Int32, _ option: Int32, _ name: String, _ value: Int32) throws(StatsListenerError) {
        var value = value
        guard setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw .setOption(name: name, errno: errno)
        }
    }

    /// What one `receive` got.
    enum Received {
        /// A datagram of `byteCount` bytes (its first `min(byteCount, buffer.count)` are in the
        /// buffer; more than the buffer means it was truncated), and the socket's cumulative drop
        /// count if the kernel attached one.
        case datagram(byteCount: Int, kernelDrops: UInt32?)
        /// The receive timeout passed with nothing to read.
        case timeout
        /// The call failed with `errno`.
        case failed(errno: Int32)
    }

    /// Waits up to the receive timeout for one datagram, copying at most `buffer.count` bytes.
    func receive(into buffer: inout [UInt8], control: inout [UInt8]) -> Received {
        var controlLength = 0
        let count: Int = buffer.withUnsafeMutableBytes { data in
            control.withUnsafeMutableBytes { controlBytes in
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = controlBytes.baseAddress
                    message.msg_controllen = .init(controlBytes.count)
                    // MSG_TRUNC: for UDP, return the datagram's real length even if it was cut.
                    let count = recvmsg(fd, &message, Int32(MSG_TRUNC))
                    controlLength = Int(message.msg_controllen)
                    return count
                }
            }
        }
        guard count >= 0 else {
            let code = errno
            return code == EAGAIN || code == EWOULDBLOCK ? .timeout : .failed(errno: code)
        }
        return .datagram(byteCount: count, kernelDrops: Self.dropCount(control, length: controlLength))
    }

    /// The `SO_RXQ_OVFL` value in the control messages, read by hand (the CMSG_* macros do not
    /// import into Swift): each message is a `cmsghdr` (length, level, type) then its data,
    /// padded to the alignment of `size_t`.
    static func dropCount(_ control: [UInt8], length: Int) -> UInt32? {
        let alignment = MemoryLayout<Int>.size
        let headerSize = (MemoryLayout<cmsghdr>.size + alignment - 1) / alignment * alignment
        let end = min(length, control.count)
        var offset = 0
        return control.withUnsafeBytes { raw -> UInt32? in
            while offset + headerSize <= end {
                let messageLength = Int(raw.loadUnaligned(fromByteOffset: offset, as: Int.self))
                let level = raw.loadUnaligned(fromByteOffset: offset + MemoryLayout<Int>.size, as: Int32.self)
                let type = raw.loadUnaligned(fromByteOffset: offset + MemoryLayout<Int>.size + 4, as: Int32.self)
                guard messageLength >= headerSize, offset + messageLength <= end else { return nil }
                if level == SOL_SOCKET, type == optionReceiveQueueOverflow, messageLength >= headerSize + 4 {
                    return raw.loadUnaligned(fromByteOffset: offset + headerSize, as: UInt32.self)
                }
                offset += (messageLength + alignment - 1) / alignment * alignment
            }
            return nil
        }
    }

    /// Closes the socket; call once, after the receive thread has exited.
    func close() {
        _ = Glibc.close(fd)
    }

    static func errorText(_ code: Int32) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }
}
