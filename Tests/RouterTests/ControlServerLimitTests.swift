import Foundation
import Testing
@testable import Router

#if canImport(Glibc)
import Glibc
#endif

extension RealNginxTests {
    /// The control server under idle and slow connections from other loopback addresses: the
    /// router's own updates still go through, and NGINX cuts each hostile connection off at
    /// `controlTimeoutMs`.
    @Suite struct ControlServerLimitTests {
        /// A TCP connection to 127.0.0.1:`port` from `source` (another loopback address).
        static func connect(from source: String, to port: Int) throws -> Int32 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            var remote = sockaddr_in()
            remote.sin_family = sa_family_t(AF_INET)
            remote.sin_addr.s_addr = inet_addr("127.0.0.1")
            remote.sin_port = UInt16(port).bigEndian
            let size = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }
            let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, size) } }
            guard bound == 0, connected == 0 else {
                let code = errno
                close(fd)
                throw TestFailure("connect from \(source) to 127.0.0.1:\(port): errno \(code)")
            }
            return fd
        }

        @Test func idleAndSlowConnectionsAreCutOffWhileTheRouterKeepsUpdating() async throws {
            let backends = try ["i-1/web"].map { try TestBackend(name: $0) }
            defer { backends.forEach { $0.stop() } }
            try await TestSupport.withRouter { router, prefix in
                var spec = try RealNginxTests.NginxRouterTests.spec(prefix: prefix, backends: backends, generation: 1)
                spec.controlTimeoutMs = 1000
                _ = try await router.apply(spec)
                let port = try #require(Int(spec.controlListen.split(separator: ":").last ?? ""))

                // 8 addresses × 20 connections: half idle, half with a head cut short.
                var hostile: [Int32] = []
                defer { hostile.forEach { close($0) } }
                let opened = ContinuousClock.now
                for address in 2...9 {
                    for i in 0..<20 {
                        let fd = try Self.connect(from: "127.0.0.\(address)", to: port)
                        hostile.append(fd)
                        if i % 2 == 1 {
                            let partial = Array("POST /routes HTTP/1.1\r\nHost: x\r\nX-Peer-Con".utf8)
                            _ = partial.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        }
                    }
                }

                // The router's own update goes through meanwhile.
                spec.generation = 2
                spec.tenants.append(TenantRoute(id: "globex", instance: "i-1", components: ["web"]))
                let applied = try await router.apply(spec)
                #expect(applied.routeChanges == 2, "one tenant entry and one for its component")
                #expect(try await TestSupport.get(spec.listen, headers: [("X-Tenant-ID", "globex")]).status == 200)

                // Every hostile connection is closed by NGINX at its 1 s timeout (EOF or reset).
                var open = Set(hostile)
                var closedAt: [Duration] = []
                let deadline = opened + .seconds(6)
                while !open.isEmpty && ContinuousClock.now < deadline {
                    var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                    guard poll(&fds, nfds_t(fds.count), 50) > 0 else { continue }
                    for entry in fds where entry.revents != 0 {
                        var byte: UInt8 = 0
                        let count = recv(entry.fd, &byte, 1, Int32(MSG_DONTWAIT))
                        if count <= 0 {
                            open.remove(entry.fd)
                            closedAt.append(ContinuousClock.now - opened)
                        }
                    }
                }
                #expect(open.isEmpty, "\(open.count) of \(hostile.count) connections still open after 6 s")
                let earliest = closedAt.min() ?? .zero
                let latest = closedAt.max() ?? .zero
                #expect(earliest >= .milliseconds(900), "closed before the timeout: \(earliest)")
                #expect(latest < .seconds(3), "closed as late as \(latest)")
            }
        }
    }
}
