import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A peer's API listener under a flood of idle, half-open and slowloris connections from other
/// loopback addresses than its legitimate client's (issue 19): it keeps running and serving,
/// refuses what is over its caps, and closes each hostile connection at its timeout. Its 1 s
/// bound is the peer's latency under the flood, so it runs with no other process test beside
/// it (`.machineAlone`): in a full run beside a cluster under wrk, the bound measured the CPU
/// the other test took (1.009 s, 16 answers instead of about 30).
@Suite(.machineAlone) struct HostileClientTests {
    /// Floods the API port and the peer port from 127.0.0.2-9 for DURATION seconds (THREADS per
    /// address and mode, each reconnecting when closed) while a legitimate client on 127.0.0.1
    /// asks `GET /v1/status` every 200 ms on a new connection and creates a tenant every fifth
    /// time (a write needs a quorum); run as two processes (ROLE flood or legit), each printing one JSON summary.
    static let flood = #"""
    import json, socket, ssl, sys, threading, time
    port, duration, threads = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    tls_dir, peer_port, role = sys.argv[4], int(sys.argv[5]), sys.argv[6]
    stop_at = time.monotonic() + duration
    lock = threading.Lock()
    modes = ["idle", "half-tls", "slowloris", "early-answer", "peer-idle", "peer-half-tls"]
    hostile = {m: [] for m in modes}   # seconds each stayed open
    refused = {m: 0 for m in modes}    # closed before 100 ms
    legit = {"ok": 0, "writes": 0, "failed": [], "slowest": 0.0, "http10_close": None}

    def anonymous():
        ctx = ssl.create_default_context(cafile=tls_dir + "/ca.pem")
        ctx.check_hostname = False
        return ctx

    def admin():
        ctx = anonymous()
        ctx.load_cert_chain(tls_dir + "/client-admin.pem", tls_dir + "/client-admin.key")
        return ctx

    def wait_closed(s, limit, poke=None):
        """Seconds until the server closed s (None if still open after limit)."""
        t0 = time.monotonic()
        s.settimeout(0.3)
        while time.monotonic() - t0 < limit:
            try:
                if poke: s.send(poke)
                if s.recv(1) == b"": return time.monotonic() - t0
            except socket.timeout:
                continue
            except (ConnectionError, OSError, ssl.SSLError):
                return time.monotonic() - t0
        return None

    def attacker(source, mode):
        while time.monotonic() < stop_at:
            s = socket.socket()
            try:
                s.bind((source, 0))
                s.settimeout(5)
                s.connect(("127.0.0.1", peer_port if mode.startswith("peer-") else port))
                opened = time.monotonic()
                if mode.endswith("half-tls"):
                    s.sendall(b"\x16\x03\x01\x00\xa0\x01\x00")      # the start of a ClientHello
                elif mode == "slowloris":
                    s = anonymous().wrap_socket(s)                   # a real handshake ...
                    opened = time.monotonic()
                    s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")   # ... then a head, a byte at a time
                elif mode == "early-answer":
                    # A head whose body never comes: answered 401 at once (no credentials), and
                    # then the body's timeout still applies.
                    s = anonymous().wrap_socket(s)
                    opened = time.monotonic()
                    s.sendall(b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
                held = wait_closed(s, 10, b"X" if mode == "slowloris" else None)
                was_refused = held is not None and held < 0.1 and time.monotonic() - opened < 0.1
                with lock:
                    if was_refused: refused[mode] += 1
                    else: hostile[mode].append(held)
                # Refused: try again soon (a flood, not a busy loop that only measures the CPU).
                if was_refused: time.sleep(0.05)
            except (ConnectionError, OSError, ssl.SSLError):
                with lock: refused[mode] += 1
                time.sleep(0.05)
            finally:
                s.close()

    def legitimate():
        n = 0
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            n += 1
            write = n % 5 == 0
            try:
                s = admin().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=1))
                s.settimeout(1)
                if write:
                    body = b'{"id":"legit-%d"}' % n
                    s.sendall(b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk: break
                    data += chunk
                s.close()
                took = time.monotonic() - t0
                head, _, body = data.partition(b"\r\n\r\n")
                if write:
                    if not head.startswith(b"HTTP/1.1 201"): raise Exception(data[:200])
                elif not head.startswith(b"HTTP/1.1 200") or b'"leader"' not in body: raise Exception(head[:80])
                with lock:
                    legit["ok"] += 1
                    if write: legit["writes"] += 1
                    legit["slowest"] = max(legit["slowest"], took)
            except Exception as e:
                with lock: legit["failed"].append("%.3f s: %r" % (time.monotonic() - t0, e))
            time.sleep(0.2)
        # HTTP/1.0 without keep-alive: answered, then closed by the server (not at the idle timeout).
        s = admin().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
        s.sendall(b"GET /v1/status HTTP/1.0\r\n\r\n")
        t0 = time.monotonic()
        s.settimeout(5)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk: break
                data += chunk
            legit["http10_close"] = [data.startswith(b"HTTP/1.1 200"), time.monotonic() - t0]
        except Exception as e:
            legit["http10_close"] = [False, repr(e)]

    # Two processes: the legitimate client's latency is the server's, not this flood's threads'.
    if role == "legit":
        legitimate()
        print(json.dumps({"legit": legit}))
    else:
        workers = []
        for a in range(2, 10):
            for mode in hostile:
                workers += [threading.Thread(target=attacker, args=("127.0.0.%d" % a, mode)) for _ in range(threads)]
        for w in workers: w.start()
        for w in workers: w.join()
        print(json.dumps({"hostile": hostile, "refused": refused}))
    """#

    @Test func aFloodFromOtherAddressesIsCappedAndTimedOutWhileTheLegitimateClientIsServed() async throws {
        let c = try ProcessCluster(extraYAML: """
            limits:
              api:
                connectionsMax: 400
                connectionsPerAddressMax: 4
                handshakeTimeoutMs: 2000
                idleTimeoutMs: 2000
                bodyTimeoutMs: 2000
              transport:
                handshakingConnectionsMax: 64
                handshakingPerAddressMax: 2
                helloTimeoutMs: 2000

            """)
        try await c.must(["init", "--config", c.configPath])
        // Every peer under a low descriptor limit: 400 clients + 448 for members + 256 own admin
        // connections + 64 handshakes + 9 peer connections + 256 = 1433 needed, 1500 given.
        let up = try await c.runProgram("/bin/sh", ["-c", "ulimit -n 1500 && exec \"$0\" up --config \"$1\"", c.binary, c.configPath], timeoutSeconds: 60)
        #expect(up.status == 0, "peer up: \(up.stdout) \(up.stderr)")
        try await c.waitForStatus("a leader") { ProcessCluster.converged($0, members: 3) }
        let victim = try #require(c.pid(of: 1))
        #expect(Self.openFileLimit(victim) == 1500)

        // 8 addresses × 4 API modes × 2 threads: 8 connections wanted per address, 4 admitted;
        // 2 peer-port modes × 2: 4 per address, 2 admitted in their handshake.
        let script = c.dir + "/flood.py"
        try Self.flood.write(toFile: script, atomically: true, encoding: .utf8)
        let arguments = [script, "\(c.apiPorts[0])", "8", "2", c.dir + "/tls", "\(c.peerPorts[0])"]
        let floodOut = c.dir + "/flood.out"
        let legitOut = c.dir + "/legit.out"
        let floodPid = try c.spawnProgram("/usr/bin/env", ["python3"] + arguments + ["flood"], out: floodOut)
        let legitPid = try c.spawnProgram("/usr/bin/env", ["python3"] + arguments + ["legit"], out: legitOut)
        let floodStatus = try await c.waitProgram(floodPid, timeoutSeconds: 60)
        let legitStatus = try await c.waitProgram(legitPid, timeoutSeconds: 60)
        func json(_ path: String) -> [String: Any] {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        }
        let errors = ((try? String(contentsOfFile: floodOut + ".err", encoding: .utf8)) ?? "") + ((try? String(contentsOfFile: legitOut + ".err", encoding: .utf8)) ?? "")
        #expect(floodStatus == 0 && legitStatus == 0, "the flood scripts failed: \(errors.suffix(2000))")
        let legit = try #require(json(legitOut)["legit"] as? [String: Any], "\(errors.suffix(2000))")
        let hostile = try #require(json(floodOut)["hostile"] as? [String: [Double?]], "\(errors.suffix(2000))")
        let refused = try #require(json(floodOut)["refused"] as? [String: Int])

        let longest = hostile.mapValues { String(format: "%.2f s", $0.compactMap { $0 }.max() ?? 0) }
        print("hostile clients: admitted \(hostile.mapValues(\.count)), longest held \(longest), refused \(refused); legitimate: \(legit["ok"] ?? 0) answers, slowest \(legit["slowest"] ?? 0) s")
        // The legitimate client was answered, with a leader, within 1 s, every time.
        #expect((legit["failed"] as? [String])?.isEmpty == true, "\(legit["failed"] ?? "")")
        // Exercised throughout the 8 s (a request every 200 ms plus its own time).
        #expect((legit["ok"] as? Int ?? 0) >= 10, "\(legit)")
        // Writes committed through a quorum while both ports were flooded.
        #expect((legit["writes"] as? Int ?? 0) >= 2, "\(legit)")
        // The peer's latency under the flood: 1 s when nothing else runs (`make unit` runs this
        // suite first with PEER_TEST_ALONE=1: slowest 0.09 s there). In the full run the
        // simulator suites of the same process take the CPU too, which `.machineAlone` cannot
        // keep away (CI of 8e37a2c: 1.18 s, 13 answers instead of ~30), so there the bound is
        // the one the caps must keep: served within the 3 s a client would wait.
        let bound = ProcessInfo.processInfo.environment["PEER_TEST_ALONE"] == "1" ? 1.0 : 3.0
        #expect((legit["slowest"] as? Double ?? 99) < bound, "\(legit)")
        // HTTP/1.0 without keep-alive: answered and closed at once, not at the 2 s idle timeout.
        let http10 = try #require(legit["http10_close"] as? [Any])
        #expect(http10.first as? Bool == true && (http10.last as? Double ?? 99) < 1.0, "\(http10)")
        // Over the per-address cap, connections were closed on arrival.
        #expect(refused.values.reduce(0, +) > 0, "\(refused)")
        // Each hostile connection was closed at its 2 s timeout, none held open.
        for (mode, held) in hostile {
            #expect(!held.isEmpty, "\(mode): no connection was admitted")
            #expect(!held.contains { $0 == nil }, "\(mode): connections still open after 10 s")
            let longest = held.compactMap { $0 }.max() ?? 0
            // The timeout is 2 s; the rest is this flood's own threads waiting for a CPU.
            #expect(longest >= 1.5 && longest < 4.0, "\(mode): held up to \(longest) s")
        }
        // The peer kept running, kept quorum, and said what it refused (rate-limited).
        #expect(kill(victim, 0) == 0, "peer 1 died under the flood")
        try await c.waitForStatus("converged after the flood") { ProcessCluster.converged($0, members: 3) }
        // What was held back is logged within the 10 s interval, without a further event.
        var log = ""
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            log = (try? String(contentsOfFile: "\(c.dir)/run/peer-1.log", encoding: .utf8)) ?? ""
            if log.contains("no TLS handshake within") && log.contains("more connections refused in their handshake since the last such line") { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(log.contains("new connection closed: 4 connections from 127.0.0."), "\(log.suffix(3000))")
        #expect(log.contains("connection closed: no TLS handshake within 2000 ms"), "\(log.suffix(3000))")
        #expect(log.contains("2 connections from 127.0.0."), "the transport's per-address refusal is not in the log:\n\(log.suffix(3000))")
        // Thousands of refusals in about 8 s, one transport line per 10 s: one, and the one that
        // reports what the end of the flood held back.
        let transportLines = log.split(separator: "\n").filter { $0.contains("connection refused:") && $0.contains("in their handshake") }
        #expect(log.contains("more connections refused in their handshake since the last such line"), "the flood's end was not reported")
        #expect((2...3).contains(transportLines.count), "\(transportLines.count) lines:\n\(transportLines.prefix(5).joined(separator: "\n"))")
        let lines = log.split(separator: "\n").filter { $0.contains("admin API 127.0.0.1:") && $0.contains("at most one such line") }
        // About 10 s of refusals and timeouts: at most one line per 10 s, so two or three.
        #expect((2...3).contains(lines.count), "\(lines.count) lines:\n\(lines.joined(separator: "\n"))")
    }

    /// The soft open-file limit of a running process, from /proc.
    static func openFileLimit(_ pid: pid_t) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") }) else { return nil }
        return line.split(separator: " ", omittingEmptySubsequences: true).compactMap { Int($0) }.first
    }
}
