import Foundation
import NIOHTTP1
import PeerAPI
#if canImport(Glibc)
import Glibc
#endif

/// One member's client-facing HTTPS address.
struct Endpoint: Sendable, Hashable {
    var host = "127.0.0.1"
    var port: Int
    var url: String { "https://\(host):\(port)" }
}

/// One member's view of the cluster, as its status call reports it.
struct MemberView: Sendable {
    /// The index (0-based, in start order) of the member this one follows or is; nil if none.
    var leaderIndex: Int?
    var isLeader: Bool
    /// Log position for "caught up": (commit or raft index, applied index).
    var commitIndex: UInt64
    var appliedIndex: UInt64
}

/// What the benchmark needs from a 3-member cluster, whichever system it is.
protocol BenchCluster: AnyObject, Sendable {
    var system: String { get }
    var size: Int { get }
    /// Client (admin API / gateway) endpoint of each member.
    var endpoints: [Endpoint] { get }
    /// Pid of each running member (nil while killed).
    var pids: [pid_t?] { get }
    var logFiles: [String] { get }
    /// A mutual-TLS HTTPS client with the cluster's admin certificate (status and probes).
    var client: AdminClient { get }

    /// Before the first start (peer: `peer init --config`).
    func prepare() async throws
    func startMember(_ i: Int) throws
    /// Asks member `i` for its status (nil if it does not answer within the timeout).
    func view(_ i: Int, timeoutMillis: Int) async -> MemberView?
    /// The path, headers and body the failover probe sends; `n` makes it unique.
    func probeRequest(_ n: Int) -> (path: String, body: [UInt8])
    /// Whether a probe answer means "the write was accepted".
    func probeAccepted(_ answer: HTTPAnswer) -> Bool
    /// The wrk Lua script for this system (written by the caller).
    func wrkScript(runID: String) -> String
    func markKilled(_ i: Int)
}

extension BenchCluster {
    func prepare() async throws {}

    func start(timeoutSeconds: Double = 60) async throws {
        try await prepare()
        for i in 0..<size { try startMember(i) }
        try await waitConverged(timeoutSeconds: timeoutSeconds)
    }

    /// Fails early with the log tail if a member we started has exited.
    func checkAlive() throws {
        for (i, pid) in pids.enumerated() {
            guard let pid else { continue }
            if let status = Children.shared.reapIfExited(pid) {
                markKilled(i)
                throw BenchError("\(system) member \(i + 1) (pid \(pid)) ended (\(status)); its log ends:\n\(Machine.tail(logFiles[i]))")
            }
        }
    }

    func views(timeoutMillis: Int = 1_000) async -> [MemberView?] {
        await withTaskGroup(of: (Int, MemberView?).self) { group in
            for i in 0..<size where pids[i] != nil {
                group.addTask { (i, await self.view(i, timeoutMillis: timeoutMillis)) }
            }
            var out = [MemberView?](repeating: nil, count: size)
            for await (i, v) in group { out[i] = v }
            return out
        }
    }

    /// Until every running member answers, all name the same leader, and the log positions
    /// agree (commit = applied, equal on all): the cluster is formed, or caught up after a restart.
    func waitConverged(timeoutSeconds: Double) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        var last: [MemberView?] = []
        while ContinuousClock.now < deadline {
            try checkAlive()
            last = await views()
            let running = (0..<size).filter { pids[$0] != nil }
            let answers = running.compactMap { last[$0] }
            if answers.count == running.count, let leader = answers.first?.leaderIndex,
               answers.allSatisfy({ $0.leaderIndex == leader }), last[leader]?.isLeader == true,
               Set(answers.map(\.commitIndex)).count == 1, Set(answers.map(\.appliedIndex)).count == 1,
               answers[0].commitIndex == answers[0].appliedIndex {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchError("\(system): members did not converge within \(Int(timeoutSeconds)) s; last views: \(last.map { $0.map { "leader \($0.leaderIndex.map { String($0 + 1) } ?? "-") commit \($0.commitIndex) applied \($0.appliedIndex)" } ?? "no answer" })")
    }

    /// The member every running member agrees leads (waits, bounded, for agreement).
    func leader(timeoutSeconds: Double = 30) async throws -> Int {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        while ContinuousClock.now < deadline {
            try checkAlive()
            let vs = await views()
            if let l = vs.compactMap({ $0 }).first(where: \.isLeader)?.leaderIndex,
               vs.compactMap({ $0?.leaderIndex }).filter({ $0 == l }).count * 2 > size {
                return l
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchError("\(system): no leader within \(Int(timeoutSeconds)) s")
    }

    func stopAll() async {
        for (i, pid) in pids.enumerated() {
            guard let pid else { continue }
            await Children.shared.stop(pid)
            markKilled(i)
        }
    }

    func kill9(_ i: Int) async {
        guard let pid = pids[i] else { return }
        await Children.shared.kill9(pid)
        markKilled(i)
    }

    /// CPU seconds used so far by each member (nil for one not running).
    func cpuSeconds() -> [Double?] { pids.map { $0.flatMap(Machine.cpuSeconds) } }

    /// Resident memory of each running member.
    func rss() -> [MemorySample] { pids.compactMap { $0.flatMap(Machine.memory) } }
}

/// The cluster CA and certificates, made once with `peer certs` and used by both systems:
/// ECDSA P-256, each member's certificate with IP SAN 127.0.0.1 (and its namespace address, if
/// any) and both server and client auth (etcd uses it for its peer and client listeners alike).
struct BenchCertificates: Sendable {
    let dir: String
    var ca: String { dir + "/ca.pem" }
    func cert(_ id: Int) -> String { dir + "/peer-\(id).pem" }
    func key(_ id: Int) -> String { dir + "/peer-\(id).key" }
    var clientCert: String { dir + "/client-admin.pem" }
    var clientKey: String { dir + "/client-admin.key" }

    static func make(peerBinary: String, dir: String, clusterID: String, hosts: MemberHosts, logFile: String) async throws -> BenchCertificates {
        var steps: [[String]] = [["certs", "init", "--dir", dir, "--cluster-id", clusterID]]
        // DNS:localhost too: `peer init` requires it of peers whose API is on loopback (the local
        // NGINX verifies the token check by DNS name).
        for (i, address) in hosts.addresses.enumerated() {
            let extra = address == "127.0.0.1" ? [] : ["--ip", address]
            steps.append(["certs", "issue-peer", "--dir", dir, "--node-id", "\(i + 1)", "--ip", "127.0.0.1"] + extra + ["--dns", "localhost"])
        }
        steps.append(["certs", "issue-client", "--dir", dir, "--name", "admin"])
        for args in steps {
            let (status, output) = try await Children.shared.run(peerBinary, args, logFile: logFile, timeoutSeconds: 60)
            guard status == .exited(code: 0) else { throw BenchError("peer \(args.joined(separator: " ")) failed (\(status)):\n\(output.suffix(1500))") }
        }
        return BenchCertificates(dir: dir)
    }
}

/// 256 bytes of printable filler whose base64 is computed once (the value of every etcd put).
enum Payload {
    static let valueBytes = 256
    /// Connections the benchmark's client opens per member at most. Failover probes go out
    /// every 10 ms and those sent to one of peer's followers wait on the leader it forwards to
    /// until their 3 s deadline when that leader is paused or cut off; with the admin client's
    /// 64 per host, later probes then queued for a connection (one run of four: 3,249 ms). etcd
    /// did not run out in the same runs (why was not analysed). A limit of the client, not of
    /// either system, so both get room for every probe.
    static let probeConnectionsMax = 1_024

    static func value() -> [UInt8] {
        (0..<valueBytes).map { UInt8(0x61 + ($0 * 7) % 26) }
    }

    static func quoted(_ s: String) -> String { "\"\(s)\"" }
}
