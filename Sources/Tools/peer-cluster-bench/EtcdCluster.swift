import Foundation
import PeerAPI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Three `etcd` members (Debian's etcd-server, 3.4), on loopback or in network namespaces
/// (`MemberHosts`). Peer-to-peer traffic is
/// mutual TLS (`--peer-client-cert-auth`); the client listener is TLS, and requires a client
/// certificate only with `clientCertAuth` (wrk cannot present one). Default timings, spelled out:
/// heartbeat 100 ms, election timeout 1000 ms. The JSON gateway (`/v3/...`) serves on the
/// client port.
final class EtcdCluster: BenchCluster {
    let system = "etcd"
    let size: Int
    let binary: String
    let dir: String
    let endpoints: [Endpoint]
    let peerPorts: [Int]
    let logFiles: [String]
    let client: AdminClient
    let certs: BenchCertificates
    let clientCertAuth: Bool
    let hosts: MemberHosts
    let clusterToken = "bench-" + Machine.randomHex(4)
    private let running: Mutex<[pid_t?]>
    /// Member id (decimal, as the gateway prints uint64) -> index, learned from status answers.
    private let memberIDs = Mutex<[String: Int]>([:])

    var pids: [pid_t?] { running.withLock { $0 } }

    init(binary: String, dir: String, certs: BenchCertificates, clientCertAuth: Bool, hosts: MemberHosts, size: Int = 3) throws {
        self.binary = binary
        self.hosts = hosts
        self.dir = dir
        self.size = size
        self.certs = certs
        self.clientCertAuth = clientCertAuth
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ports = try Machine.freePorts(2 * size)
        peerPorts = (0..<size).map { ports[2 * $0] }
        endpoints = (0..<size).map { Endpoint(host: hosts.addresses[$0], port: ports[2 * $0 + 1]) }
        logFiles = (0..<size).map { "\(dir)/etcd-\($0 + 1).log" }
        do {
            client = try AdminClient(tls: APITLSFiles(caCertificatePath: certs.ca, certificatePath: certs.clientCert, privateKeyPath: certs.clientKey), connectionsPerHostMax: Payload.probeConnectionsMax)
        } catch {
            throw BenchError("client: \(error)")
        }
        running = Mutex([pid_t?](repeating: nil, count: size))
    }

    func arguments(_ i: Int) -> [String] {
        let peerURL = "https://\(hosts.addresses[i]):\(peerPorts[i])"
        let initial = (0..<size).map { "m\($0 + 1)=https://\(hosts.addresses[$0]):\(peerPorts[$0])" }.joined(separator: ",")
        var args = [
            "--name", "m\(i + 1)", "--data-dir", "\(dir)/data-\(i + 1)",
            "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
            "--listen-client-urls", endpoints[i].url, "--advertise-client-urls", endpoints[i].url,
            "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", clusterToken,
            "--heartbeat-interval", "100", "--election-timeout", "1000",
            "--peer-client-cert-auth", "--peer-trusted-ca-file", certs.ca,
            "--peer-cert-file", certs.cert(i + 1), "--peer-key-file", certs.key(i + 1),
            "--cert-file", certs.cert(i + 1), "--key-file", certs.key(i + 1),
            "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
        ]
        if clientCertAuth { args += ["--client-cert-auth", "--trusted-ca-file", certs.ca] }
        return args
    }

    func startMember(_ i: Int) throws {
        let (executable, args) = hosts.command(binary, arguments(i), member: i)
        let pid = try Children.shared.spawn(executable, args, logFile: logFiles[i], label: "etcd m\(i + 1)")
        running.withLock { $0[i] = pid }
    }

    func markKilled(_ i: Int) { running.withLock { $0[i] = nil } }

    /// `POST /v3/maintenance/status`: the answering member's id, the leader's id, raft index and
    /// applied index (uint64s are JSON strings through the gateway).
    func view(_ i: Int, timeoutMillis: Int) async -> MemberView? {
        let e = endpoints[i]
        guard let answer = try? await client.request(host: e.host, port: e.port, method: .POST, path: "/v3/maintenance/status", body: Array("{}".utf8), timeoutMillis: timeoutMillis),
              answer.status == 200,
              let obj = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
              let header = obj["header"] as? [String: Any],
              let me = Self.string(header["member_id"])
        else { return nil }
        memberIDs.withLock { $0[me] = i }
        let leaderID = Self.string(obj["leader"])
        let leader = leaderID.flatMap { id in memberIDs.withLock { $0[id] } }
        let raftIndex = UInt64(Self.string(obj["raftIndex"] ?? obj["raft_index"]) ?? "") ?? 0
        let applied = UInt64(Self.string(obj["raftAppliedIndex"] ?? obj["raft_applied_index"]) ?? "") ?? 0
        return MemberView(leaderIndex: leader, isLeader: leaderID == me, commitIndex: raftIndex, appliedIndex: applied)
    }

    static func string(_ v: Any?) -> String? {
        switch v {
        case let s as String: return s
        case let n as NSNumber: return n.stringValue
        default: return nil
        }
    }

    func probeRequest(_ n: Int) -> (path: String, body: [UInt8]) {
        let key = Data("fo/\(PeerCluster.nonce)/\(n)".utf8).base64EncodedString()
        return ("/v3/kv/put", Array(#"{"key":"\#(key)","value":"\#(Self.valueBase64)"}"#.utf8))
    }

    func probeAccepted(_ answer: HTTPAnswer) -> Bool {
        answer.status == 200 && !answer.body.isEmpty && !String(decoding: answer.body, as: UTF8.self).contains("\"error\"")
    }

    static let valueBase64 = Data(Payload.value()).base64EncodedString()

    /// Key `bench/<run 8 hex>/<thread 2>/<counter 10>`: 28 bytes.
    static let keyBytes = 28

    /// The etcd Raft entry for one put, as etcd encodes it (etcdserverpb.InternalRaftRequest
    /// {header {ID} (field 100), put {key, value} (field 4)}), counted by hand: the header is
    /// 2 (tag) + 1 (len) + 1 + up to 9 (ID varint) bytes; put is 1 + 2 + (1 + 1 + 28) +
    /// (1 + 2 + 256). The ID is a uint64 made of member id bits and a counter: 9 bytes typical.
    static func replicatedCommandBytes() -> Int {
        let header = 2 + 1 + 1 + 9
        let put = 1 + 2 + (1 + 1 + keyBytes) + (1 + 2 + Payload.valueBytes)
        return header + put
    }

    static func sampleBody() -> String {
        let key = Data(("bench/00000000/00/" + String(repeating: "0", count: 10)).utf8).base64EncodedString()
        return #"{"key":"\#(key)","value":"\#(valueBase64)"}"#
    }

    func wrkScript(runID: String) -> String {
        """
        -- Written by peer-cluster-bench: etcd v3 JSON gateway, POST /v3/kv/put, one new key per
        -- request (28 bytes, base64), 256-byte value (base64).
        local run = "\(runID)"
        local value = "\(Self.valueBase64)"
        local nextThread = 0
        local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

        local function b64(s)
          local out = {}
          for i = 1, #s, 3 do
            local a, b, c = s:byte(i, i + 2)
            local v = a * 65536 + (b or 0) * 256 + (c or 0)
            local q1 = math.floor(v / 262144)
            local q2 = math.floor(v / 4096) % 64
            local q3 = math.floor(v / 64) % 64
            local q4 = v % 64
            out[#out + 1] = chars:sub(q1 + 1, q1 + 1) .. chars:sub(q2 + 1, q2 + 1)
              .. (b and chars:sub(q3 + 1, q3 + 1) or "=") .. (c and chars:sub(q4 + 1, q4 + 1) or "=")
          end
          return table.concat(out)
        end

        function setup(thread)
          thread:set("threadIndex", nextThread)
          nextThread = nextThread + 1
        end

        function init(args)
          counter = 0
          prefix = "bench/" .. run .. "/" .. string.format("%02d", threadIndex) .. "/"
          wrk.method = "POST"
          wrk.path = "/v3/kv/put"
          wrk.headers["Content-Type"] = "application/json"
        end

        function request()
          counter = counter + 1
          local key = prefix .. string.format("%010d", counter)
          return wrk.format(nil, nil, nil, '{"key":"' .. b64(key) .. '","value":"' .. value .. '"}')
        end

        \(WrkRun.doneFunction)
        """
    }
}
