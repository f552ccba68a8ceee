import ClusterModel
import Foundation
import PeerAPI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Three `peer run` processes, on loopback or in network namespaces (`MemberHosts`), configured by a YAML file in `dir`, started and
/// stopped by pid (not `peer up/down`, so the benchmark holds every pid it may kill).
final class PeerCluster: BenchCluster {
    let system = "peer"
    let size: Int
    let binary: String
    let dir: String
    let configPath: String
    let endpoints: [Endpoint]
    let logFiles: [String]
    let client: AdminClient
    let token: String
    let hosts: MemberHosts
    private let running: Mutex<[pid_t?]>

    var pids: [pid_t?] { running.withLock { $0 } }

    /// `tokenFile`: the admin bearer token (wrk cannot present a client certificate).
    init(binary: String, dir: String, certs: BenchCertificates, tokenFile: String, hosts: MemberHosts, snapshotEveryEntries: Int? = nil, size: Int = 3) throws {
        self.binary = binary
        self.hosts = hosts
        self.dir = dir
        self.size = size
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ports = try Machine.freePorts(2 * size)
        endpoints = (0..<size).map { Endpoint(host: hosts.addresses[$0], port: ports[2 * $0 + 1]) }
        logFiles = (0..<size).map { "\(dir)/peer-\($0 + 1).log" }
        token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        // The timing defaults, spelled out: the same 100 ms heartbeat / 1 s election timeout as
        // etcd's. The snapshot interval is peer's own default unless the bench was given one.
        let snapshotLine = snapshotEveryEntries.map { "\n  snapshotEveryEntries: \($0)" } ?? ""
        var yaml = """
        # written by peer-cluster-bench
        cluster: bench
        dataDir: \(dir)/data
        tlsDir: \(certs.dir)
        runDir: \(dir)/run
        timing:
          tickMs: 100
          electionTicks: 10
          heartbeatTicks: 1\(snapshotLine)
        admin:
          tokenFile: \(tokenFile)
        peers:

        """
        for i in 0..<size {
            yaml += "  - id: \(i + 1)\n    peer: \(hosts.addresses[i]):\(ports[2 * i])\n    api: \(hosts.addresses[i]):\(ports[2 * i + 1])\n"
        }
        configPath = dir + "/cluster.yaml"
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        do {
            client = try AdminClient(tls: APITLSFiles(caCertificatePath: certs.ca, certificatePath: certs.clientCert, privateKeyPath: certs.clientKey), connectionsPerHostMax: Payload.probeConnectionsMax)
        } catch {
            throw BenchError("admin client: \(error)")
        }
        running = Mutex([pid_t?](repeating: nil, count: size))
    }

    /// `peer init --config`: checks the certificates made by `peer certs` against the config
    /// (they name 127.0.0.1, so they are reported as already there) and creates the data dirs.
    func prepare() async throws {
        let (status, output) = try await Children.shared.run(binary, ["init", "--config", configPath], logFile: dir + "/init.log", timeoutSeconds: 60)
        guard status == .exited(code: 0) else { throw BenchError("peer init --config \(configPath) failed (\(status)):\n\(output.suffix(2000))") }
    }

    func startMember(_ i: Int) throws {
        let (executable, args) = hosts.command(binary, ["run", "--config", configPath, "--id", "\(i + 1)", "--log-level", "warning"], member: i)
        let pid = try Children.shared.spawn(executable, args, logFile: logFiles[i], label: "peer \(i + 1)")
        running.withLock { $0[i] = pid }
    }

    func markKilled(_ i: Int) { running.withLock { $0[i] = nil } }

    func view(_ i: Int, timeoutMillis: Int) async -> MemberView? {
        let e = endpoints[i]
        guard let answer = try? await client.request(host: e.host, port: e.port, method: .GET, path: "/v1/status", timeoutMillis: timeoutMillis),
              answer.status == 200,
              let s = try? JSONDecoder().decode(MemberStatus.self, from: Data(answer.body))
        else { return nil }
        let leader = s.leader.flatMap { $0 >= 1 && Int($0) <= size ? Int($0) - 1 : nil }
        return MemberView(leaderIndex: leader, isLeader: s.state == "leader", commitIndex: s.commitIndex, appliedIndex: s.appliedIndex)
    }

    func probeRequest(_ n: Int) -> (path: String, body: [UInt8]) {
        let id = "fo-\(Self.nonce)-\(n)"
        return ("/v1/tenants", Array(#"{"id":"\#(id)","clientId":"\#(id)","sequence":1}"#.utf8))
    }

    func probeAccepted(_ answer: HTTPAnswer) -> Bool { answer.status == 201 || answer.status == 200 }

    static let nonce = Machine.randomHex(4)

    // MARK: - The load: one tenant per request, 256 bytes of tenant fields

    /// Tenant fields (id + plan + components) are 256 bytes in every request, like etcd's value:
    /// the id is 22 bytes (`t<run 8 hex>-<thread 2>-<counter 9>`), the plan 64 (its maximum),
    /// and three components carry the other 170 (a component is an id: at most 64 bytes).
    static let idBytes = 22
    static let plan = String(repeating: "p", count: ClusterLimits.planBytesMax)
    static let components: [String] = {
        let rest = Payload.valueBytes - idBytes - plan.utf8.count  // 170
        let sizes = [rest / 3 + rest % 3, rest / 3, rest / 3]
        return sizes.enumerated().map { i, n in "c\(i)-" + String(repeating: String(UnicodeScalar(UInt8(0x61 + i))), count: n - 3) }
    }()

    /// The exact replicated command one load request becomes (client id `c<tenant id>`,
    /// sequence 1), encoded as the leader encodes it: its size is what Raft replicates and
    /// SQLite stores.
    static func replicatedCommandBytes() -> Int {
        var body = PBCreateTenant()
        body.id = "t" + String(repeating: "0", count: idBytes - 1)
        body.plan = plan
        body.components = components
        let command = Command(clientId: "c" + body.id, sequence: 1, leaderTimeMs: Int64(Date().timeIntervalSince1970 * 1000), .createTenant(body))
        return command.entryBytes().count
    }

    /// The request body for one load request (for the report): same shape as the Lua script's.
    static func sampleBody() -> String {
        let id = "t" + String(repeating: "0", count: idBytes - 1)
        return #"{"id":"\#(id)","plan":"\#(plan)","components":[\#(components.map(Payload.quoted).joined(separator: ","))],"clientId":"c\#(id)","sequence":1}"#
    }

    func wrkScript(runID: String) -> String {
        """
        -- Written by peer-cluster-bench: peer admin API, POST /v1/tenants, one new tenant per
        -- request (unique id), 256 bytes of tenant fields (id 22 + plan 64 + components 170).
        local run = "\(runID)"
        local token = "\(token)"
        local plan = "\(Self.plan)"
        local components = '\(Self.components.map(Payload.quoted).joined(separator: ","))'
        local nextThread = 0

        function setup(thread)
          thread:set("threadIndex", nextThread)
          nextThread = nextThread + 1
        end

        function init(args)
          counter = 0
          prefix = "t" .. run .. "-" .. string.format("%02d", threadIndex) .. "-"
          wrk.method = "POST"
          wrk.path = "/v1/tenants"
          wrk.headers["Content-Type"] = "application/json"
          wrk.headers["Authorization"] = "Bearer " .. token
        end

        function request()
          counter = counter + 1
          local id = prefix .. string.format("%09d", counter)
          local body = '{"id":"' .. id .. '","plan":"' .. plan .. '","components":[' .. components .. '],"clientId":"c' .. id .. '","sequence":1}'
          return wrk.format(nil, nil, nil, body)
        end

        \(WrkRun.doneFunction)
        """
    }
}
