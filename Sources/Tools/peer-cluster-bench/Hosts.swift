import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a cluster's members run: all on loopback (each member on its own ports of 127.0.0.1),
/// or each in a network namespace of its own (`NamespaceHosts`), where a link taken down or a
/// paused process sends no reset, as on real hosts.
struct MemberHosts: Sendable {
    /// Each member's address.
    var addresses: [String]
    /// Each member's network namespace; nil on loopback.
    var namespaces: [String]?

    static func loopback(_ size: Int) -> MemberHosts { MemberHosts(addresses: Array(repeating: "127.0.0.1", count: size), namespaces: nil) }

    /// The command that runs `binary arguments` as member `i`: inside its namespace through
    /// `ip netns exec` (which execs it, so the pid is the member's own).
    func command(_ binary: String, _ arguments: [String], member i: Int) -> (String, [String]) {
        guard let namespaces else { return (binary, arguments) }
        return (NamespaceHosts.ip, ["netns", "exec", namespaces[i], binary] + arguments)
    }
}

/// Three (or `size`) hosts in network namespaces on a bridge the benchmark creates and deletes:
/// member i at 10.78.NET.(i+1), this process at 10.78.NET.254 in its own namespace, so clients
/// reach every member. Partitioning member i takes its link down (its packets vanish, no RST,
/// no ICMP). Root only. `remove()` deletes everything it created; nothing else is touched.
final class NamespaceHosts: Sendable {
    static let ip = "/usr/sbin/ip"
    let tag: String
    let subnet: Int
    let size: Int
    let logFile: String

    var members: MemberHosts {
        MemberHosts(addresses: (0..<size).map(address), namespaces: (0..<size).map(namespace))
    }

    func address(_ i: Int) -> String { "10.78.\(subnet).\(i + 1)" }
    func namespace(_ i: Int) -> String { "\(tag)-\(i + 1)" }
    /// The host side of member i's veth: down is a partition of member i.
    func link(_ i: Int) -> String { "v\(tag)-\(i + 1)" }
    var bridge: String { "br-\(tag)" }

    init(size: Int, logFile: String) async throws {
        guard getuid() == 0 else { throw BenchError("--network namespaces needs root (ip netns)") }
        guard FileManager.default.isExecutableFile(atPath: Self.ip) else { throw BenchError("no \(Self.ip) (apt-get install iproute2)") }
        let pid = Int(getpid())
        tag = "pcb\(pid % 100_000)"
        subnet = pid % 200 + 20
        self.size = size
        self.logFile = logFile
        var steps: [[String]] = [
            ["link", "add", bridge, "type", "bridge"],
            ["addr", "add", "10.78.\(subnet).254/24", "dev", bridge],
            ["link", "set", bridge, "up"],
        ]
        for i in 0..<size {
            steps += [
                ["netns", "add", namespace(i)],
                ["link", "add", link(i), "type", "veth", "peer", "name", "eth0", "netns", namespace(i)],
                ["link", "set", link(i), "master", bridge, "up"],
                ["-n", namespace(i), "addr", "add", "\(address(i))/24", "dev", "eth0"],
                ["-n", namespace(i), "link", "set", "eth0", "up"],
                ["-n", namespace(i), "link", "set", "lo", "up"],
            ]
        }
        do {
            for args in steps { try await Self.ip(args, logFile: logFile) }
        } catch {
            remove()
            throw error
        }
    }

    /// Member i's link up or down (down: partitioned from every other member and the clients).
    func setLink(_ i: Int, up: Bool) async throws {
        try await Self.ip(["link", "set", link(i), up ? "up" : "down"], logFile: logFile)
    }

    static func ip(_ args: [String], logFile: String) async throws {
        let (status, output) = try await Children.shared.run(ip, args, logFile: logFile, timeoutSeconds: 20)
        guard status == .exited(code: 0) else { throw BenchError("ip \(args.joined(separator: " ")) failed (\(status)): \(output.suffix(500))") }
    }

    /// Deletes the namespaces (their veths go with them) and the bridge. Synchronous, for the
    /// end of the run and the signal handler; a part already gone is skipped.
    func remove() {
        for i in 0..<size { Children.shared.runNow(Self.ip, ["netns", "del", namespace(i)], logFile: logFile) }
        Children.shared.runNow(Self.ip, ["link", "del", bridge], logFile: logFile)
    }
}
