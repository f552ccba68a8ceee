import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real `peer` binaries on loopback, mutual TLS between them, SQLite files on disk.
@Suite("Process-level: a real 3-peer cluster", .serialized, .sharesMachine)
struct ClusterProcessTests {
    @Test("the documented sequence: up, status, tenants create, kill -9 of the leader, a write through a survivor, rejoin")
    func documentedSequence() async throws {
        let c = try ProcessCluster()
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        let up = try await c.must(["up", "--config", cfg])
        #expect(up.contains("leader: peer"))
        let s1 = try await c.statusJSON()
        let leader = try #require(s1["leader"] as? Int)
        #expect(c.members(s1).count == 3)
        for m in c.members(s1) {
            #expect(m["address"] as? String != nil && (m["address"] as? String)!.hasPrefix("127.0.0.1:"))
            #expect(m["role"] as? String == "voter")
            #expect(m["pid"] as? Int != nil)
        }
        try await c.must(["tenants", "create", "acme", "--config", cfg])
        let leaderPID = try #require(c.members(s1).first { $0["id"] as? Int == leader }?["pid"] as? Int)
        #expect(kill(pid_t(leaderPID), SIGKILL) == 0)
        // A write through the survivors (the CLI tries members in turn and retries while the
        // election runs, with the same request id).
        try await c.must(["tenants", "create", "after-failover", "--config", cfg])
        let s2 = try await c.waitForStatus("a new leader") { ($0["leader"] as? Int).map { $0 != leader } ?? false }
        let dead = c.members(s2).first { $0["id"] as? Int == leader }
        #expect(dead?["state"] as? String == "unreachable", "the killed leader must be listed as unreachable, not omitted")
        // Restart it; it catches up and every member converges on one applied index and digest.
        try await c.must(["up", "--config", cfg])
        let s3 = try await c.waitForStatus("convergence after the restart") { ProcessCluster.converged($0, members: 3) }
        #expect(s3["healthy"] as? Bool == true)
        let list = try await c.must(["tenants", "list", "--config", cfg, "--output", "json", "--consistent"])
        #expect(list.contains("\"acme\"") && list.contains("\"after-failover\""))
        try await c.must(["down", "--config", cfg])
    }

    @Test("a full-cluster restart keeps every acknowledged write")
    func fullRestart() async throws {
        let c = try ProcessCluster()
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        for i in 0..<20 { try await c.must(["tenants", "create", "t\(i)", "--config", cfg]) }
        let before = try await c.waitForStatus("convergence") { ProcessCluster.converged($0, members: 3) }
        let digest = c.members(before).first?["stateDigest"] as? String
        try await c.must(["down", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        let after = try await c.waitForStatus("convergence after the restart") { ProcessCluster.converged($0, members: 3) }
        #expect(after["tenants"] as? Int == 20)
        // New entries (the new leader's no-op) may follow, but the tenants are all there.
        let list = try await c.must(["tenants", "list", "--config", cfg, "--output", "json", "--consistent"])
        for i in 0..<20 { #expect(list.contains("\"t\(i)\"")) }
        #expect(digest != nil)
        try await c.must(["down", "--config", cfg])
    }

    @Test("a peer that was down while the leader compacted catches up through a snapshot")
    func catchUpThroughSnapshot() async throws {
        let c = try ProcessCluster(snapshotEveryEntries: 16)
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        let s1 = try await c.statusJSON()
        let leader = try #require(s1["leader"] as? Int)
        let follower = try #require(c.members(s1).first { $0["id"] as? Int != leader })
        let fid = try #require(follower["id"] as? Int)
        #expect(kill(try #require(c.pid(of: fid)), SIGKILL) == 0)
        for i in 0..<50 { try await c.must(["tenants", "create", "snap-\(i)", "--config", cfg]) }
        // The survivors compacted past everything the dead peer has (the snapshot is encoded
        // on its own thread, so it lands a moment after the entry that triggered it).
        _ = try await c.waitForStatus("the leader's snapshot") { s in
            c.members(s).contains { $0["id"] as? Int == leader && ($0["snapshotIndex"] as? Int ?? 0) >= 16 }
        }
        try await c.must(["up", "--config", cfg])
        let s3 = try await c.waitForStatus("convergence after catch-up") { ProcessCluster.converged($0, members: 3) }
        let back = try #require(c.members(s3).first { $0["id"] as? Int == fid })
        #expect((back["snapshotsInstalled"] as? Int ?? 0) >= 1, "the restarted peer must have caught up through a snapshot: \(back)")
        #expect(s3["tenants"] as? Int == 50)
        try await c.must(["down", "--config", cfg])
    }

    @Test("a wrong configuration is refused with the key and the reason")
    func wrongConfigRefused() async throws {
        let c = try ProcessCluster()
        let bad = c.dir + "/bad.yaml"
        try String(contentsOfFile: c.configPath, encoding: .utf8)
            .replacingOccurrences(of: "tickMs:", with: "tikMs:")
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let o = try await c.run(["up", "--config", bad])
        #expect(o.status != 0)
        #expect(o.stderr.contains("tikMs"), "stderr: \(o.stderr)")
    }
}
