import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 20's graceful drain with real processes: three peers, each with NGINX and tenant-app,
/// wrk sending one tenant's requests through a router while its instance drains, and the
/// leader made to die (a failpoint, armed in exactly that peer) right after it started the
/// drain's first move. The new leader finishes the drain from the log.
@Suite(.sharesMachine) struct DrainProcessTests {
    @Test func aDrainUnderLoadLosesNoRequestAndSurvivesTheLeaderDyingAfterItsFirstMove() async throws {
        let c = try ProcessCluster(instanceLostAfterMs: 2_000, extraYAML: DataPlaneProcessTests.unlimitedCatalog, dataPlane: true)
        c.environment = ["PEER_FAILPOINT": "armable"]
        try await c.must(["init", "--config", c.configPath])
        try await c.must(["up", "--config", c.configPath])
        let tenants = ["hot", "cold"]
        for t in tenants { try await c.must(["tenants", "create", t, "--plan", "unlimited", "--config", c.configPath, "--wait"]) }
        let leader = "\(try #require(try await c.statusJSON(consistent: true)["leader"] as? Int))"
        let drained = ["1", "2", "3"].first { $0 != leader }!
        let third = ["1", "2", "3"].first { $0 != leader && $0 != drained }!
        let thirdRouter = c.routerPorts[Int(third)! - 1]

        // Both tenants on the instance to drain (moves in parallel), routed there.
        let placed = try await DataPlaneProcessTests.waitPlaced(c, tenants)
        var movers: [pid_t] = []
        for t in tenants where placed[t] != drained {
            movers.append(try c.spawn(["tenants", "move", t, "--to", drained, "--config", c.configPath, "--timeout", "60"]).pid)
        }
        for m in movers { #expect(try await c.waitProgram(m, timeoutSeconds: 70) == 0) }
        for t in tenants { try await DataPlaneProcessTests.waitRouted(c, tenant: t, to: drained, routers: [thirdRouter]) }
        // `peer members` touches Raft membership only: a member holding tenants is drained first.
        let remove = try await c.run(["members", "remove", drained, "--config", c.configPath])
        #expect(remove.status != 0 && remove.stderr.contains("instance \(drained) still holds 2 placement(s): drain it first"), "\(remove.stderr)")

        // Load on "hot" through the router of the instance that neither drains nor dies.
        let wrkOut = "\(c.dir)/wrk.out", pace = "\(c.dir)/pace.lua"
        try "function delay() return 10 end\n".write(toFile: pace, atomically: true, encoding: .utf8)
        let wrk = try c.spawnProgram("/usr/bin/wrk", [
            "-t", "2", "-c", "8", "-d", "20s", "--timeout", "5s", "-s", pace, "-H", "X-Tenant-ID: hot", "http://127.0.0.1:\(thirdRouter)/",
        ], out: wrkOut)

        // Exactly the leader dies right after it commits the drain's first move.
        let armed = try await c.must(["failpoints", "arm", "drain.after-move-started", "--member", leader, "--config", c.configPath])
        #expect(armed.contains("armed"))
        let leaderPid = try #require(c.pid(of: Int(leader)!))
        let drain = try c.spawn(["instances", "drain", drained, "--config", c.configPath, "--wait", "120", "--timeout", "30"])
        let code = try await c.waitProgram(drain.pid, timeoutSeconds: 130)
        let out = (try? String(contentsOfFile: drain.out, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: drain.err, encoding: .utf8)) ?? ""
        #expect(code == 0, "peer instances drain: \(out)\n\(err)")
        #expect(out.contains("instance \(drained) drained: 0 tenant(s) served, 0 placed"), "\(out)")
        print("peer instances drain \(drained) (leader \(leader) killed at drain.after-move-started):\n\(out)")

        // The leader died at the failpoint (not of anything else).
        // Gone, or a zombie that init has not reaped yet (the peer's parent, `peer up`, exited).
        let stat = (try? String(contentsOfFile: "/proc/\(leaderPid)/stat", encoding: .utf8)) ?? ""
        #expect(stat.isEmpty || stat.split(separator: ")").last?.split(separator: " ").first == "Z", "the leader still runs: \(stat)")
        let leaderLog = (try? String(contentsOfFile: "\(c.dir)/run/peer-\(leader).log", encoding: .utf8)) ?? ""
        #expect(leaderLog.contains("failpoint drain.after-move-started reached: exiting with status 86"), "the leader's log ends: \(leaderLog.suffix(600))")

        // No request failed while the instance drained under the leader's death.
        let wrkCode = try await c.waitProgram(wrk, timeoutSeconds: 40)
        let report = (try? String(contentsOfFile: wrkOut, encoding: .utf8)) ?? ""
        #expect(wrkCode == 0 && report.contains("requests in"), "wrk: \(report)")
        #expect(!report.contains("Non-2xx"), "a request failed during the drain:\n\(report)")
        #expect(DataPlaneProcessTests.wrkSocketErrors(report) == (0, 0, 0, 0), "\(report)")
        print("drain under load with a leader kill: \(DataPlaneProcessTests.wrkRequests(report)) requests, 0 non-2xx, 0 socket errors")

        // Every tenant is served by the one live instance left, and the drained one holds nothing.
        for t in tenants {
            let a = try await DataPlaneProcessTests.request(c, router: thirdRouter, tenant: t)
            #expect(a.status == 200 && a.servedBy.hasPrefix("\(third)/"), "\(t): \(a)")
        }
        let list = try await c.must(["instances", "list", "--config", c.configPath, "--output", "json", "--consistent"])
        let instances = try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]] ?? []
        let row = try #require(instances.first { $0["id"] as? String == drained })
        #expect(row["state"] as? String == "drained" && row["placements"] as? Int == 0, "\(row)")
        try await c.must(["down", "--config", c.configPath])
    }
}
