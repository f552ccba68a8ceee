import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The operator's membership commands, backups and the way out of a lost quorum, on real
/// clusters of `peer` processes (docs/operations.md §Membership, §Backup and restore, §Recovery).
@Suite("Process-level: membership, snapshots, recovery", .serialized, .sharesMachine)
struct MembershipProcessTests {
    func membersJSON(_ c: ProcessCluster) async throws -> [String: Any] {
        let out = try await c.must(["members", "list", "--config", c.configPath, "--output", "json"])
        return try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "members list printed \(out)")
    }

    func roles(_ info: [String: Any]) -> [Int: String] {
        var out: [Int: String] = [:]
        for m in info["members"] as? [[String: Any]] ?? [] { if let id = m["id"] as? Int, let r = m["role"] as? String { out[id] = r } }
        return out
    }

    /// Polls `peer members list` until `done` holds (bounded).
    @discardableResult
    func waitForMembers(_ c: ProcessCluster, _ what: String, seconds: Double = 30, _ done: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any] = [:]
        while Date() < deadline {
            if let info = try? await membersJSON(c) {
                last = info
                if done(info) { return info }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ProcessTestError("timed out after \(seconds) s waiting for \(what); last: \(last)")
    }

    @Test("members: the leader is not removed without a transfer; a transfer moves it; no removal leaves no answering quorum; a removed member comes back as a learner and is promoted")
    func membershipByHand() async throws {
        let c = try ProcessCluster(size: 3, timing: ["learnerStableMs": 1_000])
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        let first = try await waitForMembers(c, "3 caught-up voters") { info in
            roles(info).values.filter { $0 == "voter" }.count == 3
                && (info["members"] as? [[String: Any]] ?? []).allSatisfy { $0["caughtUp"] as? Bool == true }
        }
        let leader = try #require(first["leader"] as? Int)
        let followers = [1, 2, 3].filter { $0 != leader }

        let removeLeader = try await c.run(["members", "remove", "\(leader)", "--config", cfg])
        #expect(removeLeader.status != 0)
        #expect(removeLeader.stderr.contains("leads: hand leadership to another voter first"), "\(removeLeader.stderr)")

        let transfer = try await c.must(["leader", "transfer", "--to", "\(followers[0])", "--config", cfg])
        #expect(transfer.contains("to peer \(followers[0])"), "\(transfer)")
        let moved = try await membersJSON(c)
        #expect(moved["leader"] as? Int == followers[0])
        let newLeader = followers[0]
        let y = followers[1]  // stays a follower
        let z = leader  // the old leader, a follower now

        // z stopped: removing y would leave {newLeader, z} with only the leader answering.
        let zPID = try #require(c.pid(of: z))
        #expect(kill(zPID, SIGKILL) == 0)
        _ = try await waitForMembers(c, "the leader to see peer \(z) inactive", seconds: 20) { info in
            (info["members"] as? [[String: Any]] ?? []).first { $0["id"] as? Int == z }?["recentActive"] as? Bool == false
        }
        let noQuorum = try await c.run(["members", "remove", "\(y)", "--config", cfg])
        #expect(noQuorum.status != 0)
        #expect(noQuorum.stderr.contains("fewer than the 2 a quorum needs"), "\(noQuorum.stderr)")
        #expect(roles(try await membersJSON(c)).count == 3, "a refused removal changed the configuration")

        // z back; y removed, wiped, started as an existing member, added, promoted (the
        // provisioner keeps voters_target 3).
        try await c.must(["up", "--config", cfg, "--id", "\(z)"])
        _ = try await waitForMembers(c, "peer \(z) caught up again") { info in
            (info["members"] as? [[String: Any]] ?? []).first { $0["id"] as? Int == z }?["caughtUp"] as? Bool == true
        }
        let removed = try await c.must(["members", "remove", "\(y)", "--config", cfg, "--output", "json"])
        #expect(roles(try #require(try JSONSerialization.jsonObject(with: Data(removed.utf8)) as? [String: Any])) == [newLeader: "voter", z: "voter"])
        let again = try await c.run(["members", "remove", "\(y)", "--config", cfg])
        #expect(again.status != 0 && again.stderr.contains("is not a member"), "\(again.stderr)")

        try await c.must(["down", "--config", cfg, "--id", "\(y)"])
        try FileManager.default.moveItem(atPath: "\(c.dir)/data/\(y)", toPath: "\(c.dir)/data-\(y)-old")
        // Without --existing, the empty peer would found a cluster; the running members'
        // configuration does not hold it, so it refuses and says how to join.
        let founding = try await c.run(["run", "--config", cfg, "--id", "\(y)"], timeoutSeconds: 30)
        #expect(founding.status != 0)
        #expect(founding.stderr.contains("founding a cluster now would split it"), "\(founding.stderr)")
        try await c.must(["up", "--config", cfg, "--id", "\(y)", "--existing"])
        try await c.must(["members", "add", "\(y)", "--config", cfg])
        let twice = try await c.run(["members", "add", "\(y)", "--config", cfg])
        #expect(twice.status != 0 && twice.stderr.contains("already a"), "\(twice.stderr)")
        _ = try await waitForMembers(c, "peer \(y) promoted by the provisioner (voters_target 3)") { roles($0) == [newLeader: "voter", y: "voter", z: "voter"] }
        try await c.must(["tenants", "create", "after-rejoin", "--config", cfg])
        _ = try await c.waitForStatus("convergence") { ProcessCluster.converged($0, members: 3) }
        try await c.must(["down", "--config", cfg])
    }

    @Test("snapshot: save from the leader, inspect, bad files refused, restore into a new cluster with the same tenants and digest")
    func snapshotRoundTrip() async throws {
        let a = try ProcessCluster(size: 3)
        try await a.must(["init", "--config", a.configPath])
        try await a.must(["up", "--config", a.configPath])
        for i in 0..<12 { try await a.must(["tenants", "create", "s\(i)", "--config", a.configPath]) }
        let file = a.dir + "/backup.snap"
        let saved = try await a.must(["snapshot", "save", file, "--config", a.configPath, "--output", "json"])
        let savedInfo = try #require(try JSONSerialization.jsonObject(with: Data(saved.utf8)) as? [String: String])
        let digest = try #require(savedInfo["state digest"])
        #expect(savedInfo["tenants"] == "12")
        #expect(savedInfo["cluster"] == "proc-test")
        let overwrite = try await a.run(["snapshot", "save", file, "--config", a.configPath])
        #expect(overwrite.status != 0 && overwrite.stderr.contains("exists"), "\(overwrite.stderr)")

        let inspected = try await a.must(["snapshot", "inspect", file, "--output", "json"])
        let info = try #require(try JSONSerialization.jsonObject(with: Data(inspected.utf8)) as? [String: String])
        #expect(info["state digest"] == digest && info["tenants"] == "12")

        // Bad files: cut short, one byte flipped, not a snapshot at all.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        let bad = [
            ("truncated", bytes.prefix(bytes.count - 100), "the file's SHA-256 does not match"),
            ("cut", bytes.prefix(20), "truncated"),
            ("flipped", { var d = bytes; d[d.count / 2] ^= 0x40; return d }(), "the file's SHA-256 does not match"),
            ("foreign", Data("hello, not a snapshot, but long enough to be read as one maybe.......".utf8), "not a peer snapshot file"),
        ]
        for (name, data, why) in bad {
            let path = a.dir + "/\(name).snap"
            try data.write(to: URL(fileURLWithPath: path))
            let o = try await a.run(["snapshot", "inspect", path])
            #expect(o.status != 0 && o.stderr.contains(why), "\(name): \(o.stderr)")
        }

        // Restore: refused into the saved cluster's own id, then into a new cluster.
        let same = try ProcessCluster(size: 3)
        try await same.must(["init", "--config", same.configPath])
        let sameID = try await same.run(["snapshot", "restore", file, "--config", same.configPath])
        #expect(sameID.status != 0 && sameID.stderr.contains("give the new cluster a new `cluster:` id"), "\(sameID.stderr)")
        let flipped = a.dir + "/flipped.snap"
        let b = try ProcessCluster(size: 3, cluster: "proc-restored")
        try await b.must(["init", "--config", b.configPath])
        let foreign = try await b.run(["snapshot", "restore", file, "--config", b.configPath, "--keep-cluster-id"])
        #expect(foreign.status != 0 && foreign.stderr.contains("is a snapshot of cluster 'proc-test', but"), "\(foreign.stderr)")
        let corrupt = try await b.run(["snapshot", "restore", flipped, "--config", b.configPath])
        #expect(corrupt.status != 0 && corrupt.stderr.contains("SHA-256 does not match"), "\(corrupt.stderr)")
        #expect(!FileManager.default.fileExists(atPath: b.dir + "/data/1/raft.sqlite"), "a refused restore wrote a store")
        let restored = try await b.must(["snapshot", "restore", file, "--config", b.configPath])
        #expect(restored.components(separatedBy: "digest \(digest)").count == 4, "every store must hold the saved digest: \(restored)")
        let twice = try await b.run(["snapshot", "restore", file, "--config", b.configPath])
        #expect(twice.status != 0 && twice.stderr.contains("never overwrites a store"), "\(twice.stderr)")
        try await b.must(["up", "--config", b.configPath])
        let listA = try await a.must(["tenants", "list", "--config", a.configPath, "--output", "json", "--consistent"])
        let listB = try await b.must(["tenants", "list", "--config", b.configPath, "--output", "json", "--consistent"])
        let ids = { (text: String) -> [String] in
            ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }.sorted()
        }
        #expect(ids(listA).count == 12 && ids(listA) == ids(listB))
        try await b.must(["tenants", "create", "after-restore", "--config", b.configPath])
        let restoredStatus = try await b.waitForStatus("the restored cluster converges") { ProcessCluster.converged($0, members: 3) }
        // Each member reports its data directory's size: at least the restored store.
        let storeBytes = try FileManager.default.attributesOfItem(atPath: b.dir + "/data/1/raft.sqlite")[.size] as? Int ?? 0
        for m in b.members(restoredStatus) { #expect((m["dataBytes"] as? Int ?? 0) >= storeBytes / 2 && storeBytes > 0, "\(m)") }
        try await a.must(["down", "--config", a.configPath])
        try await b.must(["down", "--config", b.configPath])
    }

    @Test("stale data dir (issue 24): a member restarted on an older copy of its data, or on an emptied one, refuses to start and names what the others saw; on its own data it starts and catches up")
    func staleDataDirIsRefused() async throws {
        let c = try ProcessCluster(size: 3)
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        for i in 0..<3 { try await c.must(["tenants", "create", "before-\(i)", "--config", cfg]) }
        _ = try await c.waitForStatus("convergence") { ProcessCluster.converged($0, members: 3) }
        // The copy: peer 3's data dir while it is stopped, as a backup of the host would take it.
        try await c.must(["down", "--config", cfg, "--id", "3"])
        let data = "\(c.dir)/data/3", copy = "\(c.dir)/data-3-copy", current = "\(c.dir)/data-3-current"
        try FileManager.default.copyItem(atPath: data, toPath: copy)
        try await c.must(["up", "--config", cfg, "--id", "3"])
        for i in 0..<5 { try await c.must(["tenants", "create", "after-\(i)", "--config", cfg]) }
        // A new term with peer 3 voting or hearing of it: the copy's term is behind.
        let leader = try #require(try await c.statusJSON()["leader"] as? Int)
        try await c.must(["leader", "transfer", "--to", "\([1, 2, 3].first { $0 != leader }!)", "--config", cfg])
        _ = try await c.waitForStatus("convergence after the transfer") { ProcessCluster.converged($0, members: 3) }
        try await c.must(["down", "--config", cfg, "--id", "3"])

        try FileManager.default.moveItem(atPath: data, toPath: current)
        try FileManager.default.moveItem(atPath: copy, toPath: data)
        let stale = try await c.run(["run", "--config", cfg, "--id", "3"], timeoutSeconds: 30)
        #expect(stale.status != 0)
        // Whichever member answers first names what it saw: a later term (a follower that heard
        // peer 3 in the new term), or an acknowledged append past the copy's log (the leader of
        // the copy's term).
        #expect(stale.stderr.contains("is older than what member"), "\(stale.stderr)")
        #expect(stale.stderr.contains("its data dir holds term") || stale.stderr.contains("its data dir's log ends at"), "\(stale.stderr)")
        #expect(stale.stderr.contains("peer members remove 3"), "\(stale.stderr)")

        // Emptied (a wiped disk, the config file unchanged): refused too, not founded anew.
        try FileManager.default.removeItem(atPath: data)
        let empty = try await c.run(["run", "--config", cfg, "--id", "3"], timeoutSeconds: 30)
        #expect(empty.status != 0)
        #expect(empty.stderr.contains("its data dir holds term 0"), "\(empty.stderr)")
        // The two others kept serving: writes commit with peer 3 away.
        try await c.must(["tenants", "create", "while-refused", "--config", cfg])

        // Its own, newest data: it starts and catches up (no false alarm on a plain restart).
        if FileManager.default.fileExists(atPath: data) { try FileManager.default.removeItem(atPath: data) }
        try FileManager.default.moveItem(atPath: current, toPath: data)
        try await c.must(["up", "--config", cfg, "--id", "3"])
        let s = try await c.waitForStatus("convergence with peer 3 back") { ProcessCluster.converged($0, members: 3) }
        #expect(s["tenants"] as? Int == 9)
        try await c.must(["down", "--config", cfg])
    }

    @Test("recover: 5 members, 3 members' data deleted; refused while a member answers; the survivor alone, then the others added back")
    func recoverFromALostMajority() async throws {
        let c = try ProcessCluster(size: 5, timing: ["learnerStableMs": 1_000])
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        for i in 0..<8 { try await c.must(["tenants", "create", "r\(i)", "--config", cfg]) }
        _ = try await c.waitForStatus("convergence") { ProcessCluster.converged($0, members: 5) }
        try await c.must(["down", "--config", cfg])
        for id in 3...5 { try FileManager.default.removeItem(atPath: "\(c.dir)/data/\(id)") }

        // Peer 2 still runs (no quorum, no leader): recover refuses.
        _ = try? await c.run(["up", "--config", cfg, "--id", "2", "--timeout", "2"])
        let refused = try await c.run(["recover", "--config", cfg, "--id", "1"])
        #expect(refused.status != 0 && refused.stderr.contains("member(s) 2 at"), "\(refused.stderr)")
        let running = try await c.run(["recover", "--config", cfg, "--id", "2"])
        #expect(running.status != 0 && running.stderr.contains("runs (pid"), "\(running.stderr)")
        try await c.must(["down", "--config", cfg])

        let recovered = try await c.must(["recover", "--config", cfg, "--id", "1"])
        #expect(recovered.contains("recovered as the only voter"), "\(recovered)")
        try await c.must(["up", "--config", cfg, "--id", "1"])
        #expect(roles(try await membersJSON(c)) == [1: "voter"])
        let list = try await c.must(["tenants", "list", "--config", cfg, "--output", "json", "--consistent"])
        for i in 0..<8 { #expect(list.contains("\"r\(i)\"")) }

        // Every other member comes back with fresh data, as an existing member, added one at a time.
        try FileManager.default.moveItem(atPath: "\(c.dir)/data/2", toPath: "\(c.dir)/data-2-old")
        try await c.must(["up", "--config", cfg, "--id", "2", "--id", "3", "--id", "4", "--id", "5", "--existing"])
        for id in 2...5 {
            try await c.must(["members", "add", "\(id)", "--config", cfg])
            _ = try await waitForMembers(c, "peer \(id) caught up") { info in
                (info["members"] as? [[String: Any]] ?? []).first { $0["id"] as? Int == id }?["caughtUp"] as? Bool == true
            }
        }
        // The provisioner promotes up to voters_target (3); the operator promotes the rest.
        _ = try await waitForMembers(c, "3 voters") { roles($0).values.filter { $0 == "voter" }.count == 3 }
        for id in 2...5 where roles(try await membersJSON(c))[id] == "learner" {
            try await c.must(["members", "promote", "\(id)", "--config", cfg])
        }
        #expect(roles(try await membersJSON(c)) == [1: "voter", 2: "voter", 3: "voter", 4: "voter", 5: "voter"])
        try await c.must(["tenants", "create", "after-recovery", "--config", cfg])
        let s = try await c.waitForStatus("all five converge") { ProcessCluster.converged($0, members: 5) }
        #expect(s["tenants"] as? Int == 9)
        try await c.must(["down", "--config", cfg])
    }

    @Test("autopilot: a voter that never came up is removed; a killed voter is replaced by a stable learner, then removed; both are events")
    func autopilotReplacesADeadVoter() async throws {
        let c = try ProcessCluster(size: 4, instanceLostAfterMs: 1_000, timing: ["deadVoterRemoveAfterMs": 3_000, "learnerStableMs": 1_000])
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        // Four founding voters (the file's peers), one never started: beyond voters_target 3,
        // autopilot removes it once it has been lost for 3 s.
        try await c.must(["up", "--config", cfg, "--id", "1", "--id", "2", "--id", "3"])
        // Autopilot's events are a kind of cluster version 2: raise it once the four are registered.
        let raiseBy = Date().addingTimeInterval(20)
        while try await c.run(["upgrade", "finish", "--config", cfg]).status != 0 {
            guard Date() < raiseBy else { throw ProcessTestError("the cluster version could not be raised to 2 in 20 s") }
            try await Task.sleep(for: .milliseconds(200))
        }
        _ = try await waitForMembers(c, "autopilot to remove the voter that never came up") { roles($0) == [1: "voter", 2: "voter", 3: "voter"] }

        // Peer 4 joins as a learner (voters are at the target: it stays one).
        try await c.must(["up", "--config", cfg, "--id", "4", "--existing"])
        try await c.must(["members", "add", "4", "--config", cfg])
        _ = try await waitForMembers(c, "learner 4 caught up") { info in
            (info["members"] as? [[String: Any]] ?? []).first { $0["id"] as? Int == 4 }?["caughtUp"] as? Bool == true
        }
        let leader = try #require(try await membersJSON(c)["leader"] as? Int)
        let victim = [1, 2, 3].first { $0 != leader }!
        #expect(kill(try #require(c.pid(of: victim)), SIGKILL) == 0)
        var expected: [Int: String] = [4: "voter"]
        for id in [1, 2, 3] where id != victim { expected[id] = "voter" }
        let after = try await waitForMembers(c, "autopilot to promote 4 and remove \(victim)", seconds: 40) { roles($0) == expected }
        #expect(after["leader"] as? Int == leader)
        try await c.must(["tenants", "create", "after-autopilot", "--config", cfg])

        let events = try await c.must(["events", "--config", cfg, "--output", "json"])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(events.utf8)) as? [[String: Any]], "\(events)")
        let autopilot = list.filter { $0["kind"] as? String == "autopilot" }.compactMap { $0["reason"] as? String }
        #expect(autopilot.contains { $0.contains("voter 4 lost") }, "\(autopilot)")
        #expect(autopilot.contains { $0.contains("voter \(victim) lost") && $0.contains("learner 4 takes its place") }, "\(autopilot)")
        #expect(autopilot.contains { $0.contains("voter \(victim) lost") && $0.contains("voter(s) remain") }, "\(autopilot)")
        try await c.must(["down", "--config", cfg])
    }
}
