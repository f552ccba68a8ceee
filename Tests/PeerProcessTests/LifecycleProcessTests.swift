import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `peer run` as a ServiceGroup (Sources/peer/Services.swift): a part that cannot serve fails the
/// whole peer at once, and SIGTERM stops the parts in the reverse order of their start.
@Suite(.sharesMachine) struct LifecycleProcessTests {
    /// A listening TCP socket on 127.0.0.1:`port`, held until closed: another program on the port.
    static func occupy(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let bound = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, bound == 0, listen(fd, 8) == 0 else {
            close(fd)
            throw ProcessTestError("cannot occupy port \(port): errno \(errno)")
        }
        return fd
    }

    @Test func peerWhoseAPIPortIsTakenExitsNonZeroNamingTheAddress() async throws {
        let c = try ProcessCluster(size: 1)
        try await c.must(["init", "--config", c.configPath])
        let holder = try Self.occupy(c.apiPorts[0])
        defer { close(holder) }
        let run = try await c.run(["run", "--config", c.configPath, "--id", "1"], timeoutSeconds: 30)
        #expect(run.status == 1, "peer run kept running or ended otherwise: \(run.status)")
        #expect(run.stderr.contains("the admin API cannot serve on 127.0.0.1:\(c.apiPorts[0])"), "\(run.stderr)")
        let up = try await c.run(["up", "--config", c.configPath, "--timeout", "20"], timeoutSeconds: 40)
        #expect(up.status != 0, "peer up exited 0 although its peer could not serve its API: \(up.stdout)")
    }

    @Test func peerWhoseRouterPortIsTakenExitsNonZeroNamingTheAddress() async throws {
        let c = try ProcessCluster(size: 1, dataPlane: true)
        try await c.must(["init", "--config", c.configPath])
        let holder = try Self.occupy(c.routerPorts[0])
        defer { close(holder) }
        let run = try await c.run(["run", "--config", c.configPath, "--id", "1"], timeoutSeconds: 30)
        #expect(run.status == 1, "peer run kept running or ended otherwise: \(run.status)")
        #expect(run.stderr.contains("the router cannot listen on 127.0.0.1:\(c.routerPorts[0]) (the config's router address)"), "\(run.stderr)")
    }

    @Test func peerWhosePeerPortIsTakenExitsNonZeroNamingTheAddress() async throws {
        let c = try ProcessCluster(size: 1)
        try await c.must(["init", "--config", c.configPath])
        let holder = try Self.occupy(c.peerPorts[0])
        defer { close(holder) }
        let run = try await c.run(["run", "--config", c.configPath, "--id", "1"], timeoutSeconds: 30)
        #expect(run.status == 1, "peer run kept running or ended otherwise: \(run.status)")
        #expect(run.stderr.contains("127.0.0.1:\(c.peerPorts[0])"), "\(run.stderr)")
        let up = try await c.run(["up", "--config", c.configPath, "--timeout", "20"], timeoutSeconds: 40)
        #expect(up.status != 0, "peer up exited 0 although its peer could not listen: \(up.stdout)")
    }

    /// A certificate or key that is missing or not PEM: the peer refuses to start, naming the
    /// file, before it listens anywhere.
    @Test func peerWithAnUnreadableCertificateOrKeyExitsNonZeroNamingTheFile() async throws {
        let c = try ProcessCluster(size: 1)
        try await c.must(["init", "--config", c.configPath])
        let tls = c.dir + "/tls"
        for (file, damage) in [("peer-1.pem", "missing"), ("peer-1.key", "garbage"), ("ca.pem", "garbage")] {
            let path = "\(tls)/\(file)"
            let saved = try Data(contentsOf: URL(fileURLWithPath: path))
            if damage == "missing" {
                try FileManager.default.removeItem(atPath: path)
            } else {
                try Data("not a PEM file\n".utf8).write(to: URL(fileURLWithPath: path))
            }
            let run = try await c.run(["run", "--config", c.configPath, "--id", "1"], timeoutSeconds: 30)
            #expect(run.status == 1, "\(file) \(damage): peer run ended \(run.status)")
            #expect(run.stderr.contains(path), "\(file) \(damage): the error does not name the file:\n\(run.stderr)")
            let up = try await c.run(["up", "--config", c.configPath, "--timeout", "20"], timeoutSeconds: 40)
            #expect(up.status != 0, "\(file) \(damage): peer up exited 0: \(up.stdout)")
            try saved.write(to: URL(fileURLWithPath: path))
        }
        // Repaired, it starts.
        try await c.must(["up", "--config", c.configPath])
    }

    /// Under a hard open-file limit below what its limits admit, a peer refuses to start and
    /// says both numbers; under a soft limit only, it raises its own (issue 19).
    @Test func aPeerRefusesToStartUnderAHardOpenFileLimitBelowItsNeedAndRaisesASoftOne() async throws {
        let c = try ProcessCluster(size: 1)
        try await c.must(["init", "--config", c.configPath])
        // Defaults, one peer: 1024 clients + 192 for members + 64 handshakes + 3 peer connections + 256 = 1539.
        let refused = try await c.runProgram(
            "/bin/sh", ["-c", "ulimit -n 500 && exec \"$0\" run --config \"$1\" --id 1", c.binary, c.configPath], timeoutSeconds: 30)
        #expect(refused.status == 1, "peer run under ulimit -n 500 ended \(refused.status)")
        #expect(refused.stderr.contains("needs up to 1539 open files"), "\(refused.stderr)")
        #expect(refused.stderr.contains("the hard limit is 500"), "\(refused.stderr)")
        let up = try await c.runProgram("/bin/sh", ["-c", "ulimit -Sn 500 && exec \"$0\" up --config \"$1\"", c.binary, c.configPath], timeoutSeconds: 60)
        #expect(up.status == 0, "\(up.stdout) \(up.stderr)")
        let pid = try #require(c.pid(of: 1))
        let limits = (try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)) ?? ""
        let line = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }.map(String.init) ?? ""
        #expect(line.split(separator: " ").compactMap { Int($0) }.first == 1539, "\(line)")
        try await c.must(["down", "--config", c.configPath])
    }

    @Test func sigtermStopsTheApiFirstAndTheTransportLast() async throws {
        let c = try ProcessCluster(size: 1, dataPlane: true)
        try await c.must(["init", "--config", c.configPath])
        try await c.must(["up", "--config", c.configPath])
        try await c.must(["down", "--config", c.configPath])
        let log = try String(contentsOfFile: "\(c.dir)/run/peer-1.log", encoding: .utf8)
        let order = ["stopped: admin API", "stopped: leader loops", "stopped: data plane", "stopped: node", "stopped: transport", "peer stopped"]
        let positions = order.map { log.range(of: $0)?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil }, "missing stop lines in the log:\n\(log.suffix(3000))")
        let found = positions.compactMap { $0 }
        #expect(found == found.sorted(), "stopped out of order:\n\(log.suffix(3000))")
    }

    /// The log bound has nothing to do when stderr is not a file (a terminal, journald's pipe) or
    /// the bound is 0: the peer runs on all the same (a part that returned used to stop the whole
    /// group), and SIGTERM still stops it cleanly.
    @Test func aPeerWithNoLogToBoundRunsUntilStopped() async throws {
        let c = try ProcessCluster(size: 1)
        try await c.must(["init", "--config", c.configPath])
        let run = try c.spawn(["run", "--config", c.configPath, "--id", "1", "--log-max-mb", "0"])
        _ = try await c.waitForStatus("the peer leads") { $0["leader"] as? Int == 1 }
        // Still there a few status rounds later (it used to exit right after "peer running").
        for _ in 0..<3 { _ = try await c.waitForStatus("the peer still leads") { $0["leader"] as? Int == 1 } }
        #expect(kill(run.pid, SIGTERM) == 0)
        #expect(try await c.waitProgram(run.pid, timeoutSeconds: 30) == 0)
        let err = (try? String(contentsOfFile: run.err, encoding: .utf8)) ?? ""
        #expect(err.contains("peer stopped") && !err.contains("finished unexpectedly"), "\(err.suffix(2000))")
    }
}
