#if canImport(Glibc)
import Glibc
#endif

/// How the `process` and `docker` providers (both put instances on this host's network) give
/// each instance its ports: the configured range is cut into blocks of `blockSize` consecutive
/// ports, one block per instance: peer, API, router, router control, then one port per
/// component offset. A block is free when no known instance holds any of its ports and each
/// can be bound now (something else on the host may hold one).
public struct PortPlan: Sendable, Hashable {
    /// The address instances listen on and the cluster dials: never the unspecified address.
    public let host: String
    public let range: ClosedRange<Int>
    /// Component ports per instance: the largest `portOffset` of the catalog + 1.
    public let componentPorts: Int

    public var blockSize: Int { 4 + componentPorts }
    public var blockCount: Int { range.count / blockSize }

    public init(host: String, range: ClosedRange<Int>, componentPorts: Int) throws(ProviderError) {
        guard !host.isEmpty, host != "0.0.0.0", host != "::", host != "[::]" else {
            throw ProviderError("provider", "configure", instance: nil, .invalidRequest, "host \"\(host)\" must be an address the cluster can dial, not the unspecified one")
        }
        guard (0...64).contains(componentPorts) else {
            throw ProviderError("provider", "configure", instance: nil, .invalidRequest, "componentPorts \(componentPorts) is not 0...64")
        }
        guard range.lowerBound >= 1024, range.upperBound <= 65535 else {
            throw ProviderError("provider", "configure", instance: nil, .invalidRequest, "port range \(range.lowerBound)-\(range.upperBound) must lie within 1024-65535")
        }
        self.host = host
        self.range = range
        self.componentPorts = componentPorts
        guard blockCount >= 1 else {
            throw ProviderError("provider", "configure", instance: nil, .invalidRequest,
                                "port range \(range.lowerBound)-\(range.upperBound) holds \(range.count) ports; one instance needs \(blockSize)")
        }
    }

    /// The addresses of the block starting at `base`.
    public func addresses(base: Int) -> InstanceAddresses {
        let h = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return InstanceAddresses(
            peer: "\(h):\(base)", api: "\(h):\(base + 1)", router: "\(h):\(base + 2)", routerControl: "\(h):\(base + 3)",
            components: componentPorts > 0 ? "\(h):\(base + 4)" : nil)
    }

    /// Every port an instance with these addresses holds (its components' included).
    public func ports(of a: InstanceAddresses) -> [Int] {
        var ports = [a.peer, a.api, a.router, a.routerControl].compactMap { $0.flatMap(Self.port(of:)) }
        if let components = a.components.flatMap(Self.port(of:)) { ports += (0..<max(componentPorts, 1)).map { components + $0 } }
        return ports
    }

    /// The port of `host:port` or `[v6]:port`.
    public static func port(of address: String) -> Int? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        return port
    }

    /// The base of the first block none of whose ports is in `taken` and all of which can be
    /// bound on `host` now.
    func allocate(taken: Set<Int>, provider: String, instance: String) throws(ProviderError) -> Int {
        var busy = 0
        for k in 0..<blockCount {
            let base = range.lowerBound + k * blockSize
            let block = base..<(base + blockSize)
            if block.contains(where: taken.contains) { continue }
            if block.allSatisfy({ Self.canBind(host: host, port: $0) }) { return base }
            busy += 1
        }
        throw ProviderError(provider, "create", instance: instance, .portsExhausted,
                            "no free block of \(blockSize) ports in \(range.lowerBound)-\(range.upperBound): \(blockCount - busy) of \(blockCount) blocks held by this cluster's instances, \(busy) by other programs on the host; widen the range or destroy instances")
    }

    /// Whether a TCP listener could bind `host:port` now (IPv4 or IPv6 literal).
    static func canBind(host: String, port: Int) -> Bool {
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        var v4 = in_addr()
        var v6 = in6_addr()
        let family: Int32
        if inet_pton(AF_INET, bare, &v4) == 1 {
            family = AF_INET
        } else if inet_pton(AF_INET6, bare, &v6) == 1 {
            family = AF_INET6
        } else {
            return false
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if family == AF_INET {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr = v4
            return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
        }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = in_port_t(UInt16(port).bigEndian)
        address.sin6_addr = v6
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0 } }
    }
}
