import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Rolling upgrades with version skew, on real clusters: two releases from one tree (the peer
/// run with `PEER_PROTOCOL_VERSION=1` is the previous release, 0.1.0-dev; without it, 0.2.0-dev,
/// whose protocol version 2 adds `LowerMinVersion` and an instance's state reason). docs/operations.md §Upgrades.
@Suite("Process-level: rolling upgrades and the cluster version", .serialized, .sharesMachine)
struct UpgradeProcessTests {
    /// An executable that runs this tree's peer as release `protocol` ("1", "2-2"; nil: the newest).
    static func release(_ c: ProcessCluster, _ name: String, protocol version: String?) throws -> String {
        let path = "\(c.dir)/\(name)"
        let env = version.map { "env PEER_PROTOCOL_VERSION=\($0)" } ?? "env -u PEER_PROTOCOL_VERSION"
        try "#!/bin/sh\nexec \(env) \(c.binary) \"$@\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func version(_ c: ProcessCluster) async throws -> (cluster: Int, builds: [String: String], reasons: [String: String]) {
        let out = try await c.must(["version", "--config", c.configPath, "--output", "json"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "\(out)")
        var builds: [String: String] = [:]
        for i in obj["instances"] as? [[String: Any]] ?? [] { builds[i["id"] as? String ?? "?"] = i["version"] as? String }
        let list = try await c.must(["instances", "list", "--config", c.configPath, "--output", "json", "--consistent"])
        var reasons: [String: String] = [:]
        for i in (try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]]) ?? [] {
            if let r = i["stateReason"] as? String { reasons[i["id"] as? String ?? "?"] = r }
        }
        return (obj["clusterVersion"] as? Int ?? 0, builds, reasons)
    }

    func leader(_ c: ProcessCluster) async throws -> Int {
        let out = try await c.must(["members", "list", "--config", c.configPath, "--output", "json"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        return try #require(obj["leader"] as? Int)
    }

    /// Polls until the leader has recorded the builds (bounded).
    func waitForBuilds(_ c: ProcessCluster, _ wanted: [String: String]) async throws {
        let deadline = Date().addingTimeInterval(30)
        var last: [String: String] = [:]
        while Date() < deadline {
            last = (try? await version(c).builds) ?? [:]
            if wanted.allSatisfy({ last[$0.key] == $0.value }) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ProcessTestError("the recorded builds stayed \(last), wanted \(wanted)")
    }

    @Test("a cluster of 0.1 upgraded to 0.2 peer by peer: leaders of either version while mixed; no raise until all run 0.2; back to 0.1 before it; the feature of 0.2 only after; too old and too new refused; downgrade")
    func rollingUpgradeWithSkewBothWays() async throws {
        let c = try ProcessCluster(size: 3)
        c.environment = ["PEER_PROTOCOL_VERSION": "1"]  // `peer up` starts the old release
        let old = try Self.release(c, "peer-0.1", protocol: "1")
        let new = try Self.release(c, "peer-0.2", protocol: nil)
        let tooNew = try Self.release(c, "peer-0.3", protocol: "2-2")
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        let all1 = ["1": "0.1.0-dev", "2": "0.1.0-dev", "3": "0.1.0-dev"]
        try await waitForBuilds(c, all1)
        #expect(try await version(c).cluster == 1)
        for i in 0..<5 { try await c.must(["tenants", "create", "u\(i)", "--config", cfg]) }

        // One follower on 0.2: leaders of either release while the versions are mixed.
        let first = try await leader(c)
        let f = [1, 2, 3].first { $0 != first }!
        let stepped = try await c.must(["upgrade", "step", "\(f)", "--binary", new, "--config", cfg])
        #expect(stepped.contains("peer \(f): caught up and running 0.2.0-dev"), "\(stepped)")
        try await waitForBuilds(c, ["\(f)": "0.2.0-dev"])
        try await c.must(["leader", "transfer", "--to", "\(f)", "--config", cfg])
        try await c.must(["tenants", "create", "on-new-leader", "--config", cfg])
        // Cluster version 1: the 0.2 leader does not record a reason (a 0.1 member would not).
        let other = [1, 2, 3].first { $0 != f }!
        try await c.must(["instances", "drain", "\(other)", "--reason", "maintenance", "--config", cfg])
        #expect(try await version(c).reasons["\(other)"] == nil)
        try await c.must(["instances", "activate", "\(other)", "--config", cfg])
        try await c.must(["leader", "transfer", "--to", "\(other)", "--config", cfg])
        try await c.must(["tenants", "create", "on-old-leader", "--config", cfg])
        _ = try await c.waitForStatus("the mixed cluster converges") { ProcessCluster.converged($0, members: 3) }

        // No raise while a member runs 0.1; back to 0.1 works before the raise.
        let refused = try await c.run(["upgrade", "finish", "--config", cfg])
        #expect(refused.status != 0 && refused.stderr.contains("run no higher protocol version"), "\(refused.stderr)")
        try await c.must(["upgrade", "step", "\(f)", "--binary", old, "--config", cfg])
        try await waitForBuilds(c, all1)

        // Everyone to 0.2, the leader last, then the raise.
        let leaderBefore = try await leader(c)
        let rolled = try await c.must(["upgrade", "--binary", new, "--config", cfg], timeoutSeconds: 300)
        let order = rolled.split(separator: "\n").filter { $0.hasSuffix(": upgrading to 0.2.0-dev") }.map { String($0.split(separator: ":")[0]) }
        #expect(order.last == "peer \(leaderBefore)", "the leader goes last: \(order)\n\(rolled)")
        #expect(rolled.contains("cluster version raised to 2"), "\(rolled)")
        var v = try await version(c)
        #expect(v.cluster == 2 && v.builds == ["1": "0.2.0-dev", "2": "0.2.0-dev", "3": "0.2.0-dev"], "\(v)")

        // Version 2's feature is on: the reason is recorded.
        try await c.must(["instances", "drain", "\(other)", "--reason", "maintenance", "--config", cfg])
        #expect(try await version(c).reasons["\(other)"] == "maintenance")

        // Too old: 0.1 refused by the upgrade, and a 0.1 peer on the data (whose snapshot holds
        // cluster version 2) refuses to start, saying why.
        let tooOld = try await c.run(["upgrade", "step", "\(other)", "--binary", old, "--config", cfg])
        #expect(tooOld.status != 0 && tooOld.stderr.contains("it is too old for this cluster") && tooOld.stderr.contains("peer downgrade --to 1"), "\(tooOld.stderr)")
        try await c.must(["down", "--config", cfg, "--id", "\(other)"])
        let oldRun = try await c.run(["run", "--config", cfg, "--id", "\(other)"], timeoutSeconds: 30)  // the environment's 0.1
        #expect(oldRun.status != 0 && oldRun.stderr.contains("it is too old for this cluster"), "\(oldRun.stderr)")
        let restarted = try c.spawnProgram(new, ["up", "--config", cfg, "--id", "\(other)"], out: "\(c.dir)/up-new.out")
        #expect(try await c.waitProgram(restarted, timeoutSeconds: 60) == 0)
        try await c.must(["instances", "activate", "\(other)", "--config", cfg])
        _ = try await c.waitForStatus("all three on 0.2 converge") { ProcessCluster.converged($0, members: 3) }

        // Downgrade: the cluster version goes down and version 2's reasons go with it; then 0.1
        // everywhere again. A release that runs only version 2 is then too new.
        try await c.must(["instances", "drain", "\(other)", "--reason", "before downgrade", "--config", cfg])
        try await c.must(["downgrade", "--to", "1", "--config", cfg])
        v = try await version(c)
        #expect(v.cluster == 1 && v.reasons.isEmpty, "\(v)")
        try await c.must(["instances", "activate", "\(other)", "--config", cfg])
        try await c.must(["upgrade", "--binary", old, "--no-finish", "--config", cfg], timeoutSeconds: 300)
        try await waitForBuilds(c, all1)
        try await c.must(["down", "--config", cfg, "--id", "\(other)"])
        let newer = try c.spawnProgram(tooNew, ["run", "--config", cfg, "--id", "\(other)"], out: "\(c.dir)/too-new.out")
        #expect(try await c.waitProgram(newer, timeoutSeconds: 30) != 0)
        let why = (try? String(contentsOfFile: "\(c.dir)/too-new.out.err", encoding: .utf8)) ?? ""
        #expect(why.contains("it is too new for this cluster"), "\(why)")
        try await c.must(["up", "--config", cfg, "--id", "\(other)"])
        try await c.must(["tenants", "create", "after-downgrade", "--config", cfg])
        let end = try await c.waitForStatus("the downgraded cluster converges") { ProcessCluster.converged($0, members: 3) }
        #expect(end["tenants"] as? Int == 8)
        try await c.must(["down", "--config", cfg])
    }
    @Test("an instance a provider made is upgraded by its provider, through the leader: the same data and addresses, the new build; the rest as before, the leader last")
    func providerMadeInstanceIsUpgradedInPlace() async throws {
        let base = try ProcessCluster.freeRange(21, avoiding: [])
        let provider = "providers:\n  - kind: process\n    ports: \(base)-\(base + 20)\n    addTimeoutMs: 120000\n"
        let c = try ProcessCluster(size: 3, extraYAML: provider)
        let records = "\(c.dir)/data/instances/process/proc-test"
        defer { DataPlaneProcessTests.InstanceLifecycleProcessTests.killProvided(records: records) }
        c.environment = ["PEER_PROTOCOL_VERSION": "1"]  // the old release, and so the instances it provisions
        let new = try Self.release(c, "peer-0.2", protocol: nil)
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        let added = try await c.must(["instances", "add", "--config", cfg, "--wait", "90"], timeoutSeconds: 100)
        #expect(added.contains("instance 4 active"), "\(added)")
        try await waitForBuilds(c, ["1": "0.1.0-dev", "2": "0.1.0-dev", "3": "0.1.0-dev", "4": "0.1.0-dev"])
        for i in 0..<4 { try await c.must(["tenants", "create", "t\(i)", "--config", cfg]) }
        func record() throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(records)/4/record.json"))) as? [String: Any] ?? [:]
        }
        let before = try record()

        let leaderBefore = try await leader(c)
        let rolled = try await c.must(["upgrade", "--binary", new, "--config", cfg], timeoutSeconds: 400)
        #expect(rolled.contains("peer 4: restarted by its provider with \(new)"), "\(rolled)")
        let order = rolled.split(separator: "\n").filter { $0.hasSuffix(": upgrading to 0.2.0-dev") }.map { String($0.split(separator: ":")[0]) }
        #expect(Set(order) == ["peer 1", "peer 2", "peer 3", "peer 4"] && order.last == "peer \(leaderBefore)", "\(order)")
        #expect(rolled.contains("cluster version raised to 2"), "\(rolled)")
        try await waitForBuilds(c, ["1": "0.2.0-dev", "2": "0.2.0-dev", "3": "0.2.0-dev", "4": "0.2.0-dev"])

        // The same instance: its directory, addresses and data; another process, of the new program.
        let after = try record()
        #expect(after["executable"] as? String == new && after["pid"] as? Int != before["pid"] as? Int, "\(before) -> \(after)")
        #expect(after["addresses"] as? [String: String] == before["addresses"] as? [String: String])
        try await c.must(["tenants", "create", "after-upgrade", "--config", cfg])
        let end = try await c.waitForStatus("4 members converge on 5 tenants") { ProcessCluster.converged($0, members: 4) && $0["tenants"] as? Int == 5 }
        #expect(end["tenants"] as? Int == 5)
        try await c.must(["instances", "remove", "4", "--config", cfg, "--wait", "60"], timeoutSeconds: 70)
        try await c.must(["down", "--config", cfg])
    }
}
