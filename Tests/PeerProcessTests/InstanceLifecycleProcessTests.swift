import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 20 with real processes: three peers (NGINX and tenant-app each) and the process
/// provider. Under wrk load on one tenant through a router: `peer instances add` starts a fourth
/// peer from the leader's join files, it joins as a learner and becomes active, the tenant moves
/// onto it, then `peer instances remove` drains it, takes it out of the membership and destroys
/// it. No request fails; afterwards the provider holds nothing and the membership is the three.
/// Nested in the serialized data-plane suite: its four peers and wrk would otherwise run beside
/// the other wrk-driven clusters and starve the timing-bound tests (HostileClientTests) of CPU.
extension DataPlaneProcessTests {
@Suite struct InstanceLifecycleProcessTests {
    @Test func anAddedInstanceServesAMovedTenantAndIsRemovedUnderLoadWithoutAFailedRequestOrALeftover() async throws {
        let base = try ProcessCluster.freeRange(21, avoiding: [])
        let provider = "providers:\n  - kind: process\n    ports: \(base)-\(base + 20)\n    addTimeoutMs: 120000\n"
        let c = try ProcessCluster(instanceLostAfterMs: 2_000, extraYAML: DataPlaneProcessTests.unlimitedCatalog + provider, dataPlane: true)
        // Whatever happens, no provided peer outlives the test (they run in sessions of their own).
        defer { Self.killProvided(records: "\(c.dir)/data/instances/process/proc-test") }
        try await c.must(["init", "--config", c.configPath])
        try await c.must(["up", "--config", c.configPath])
        try await c.must(["tenants", "create", "hot", "--plan", "unlimited", "--config", c.configPath, "--wait"])
        let placed = try await DataPlaneProcessTests.waitPlaced(c, ["hot"])
        let router = c.routerPorts[0]
        // wrk never retries a connection it could not open at its start: begin once the router serves hot.
        try await DataPlaneProcessTests.waitRouted(c, tenant: "hot", to: try #require(placed["hot"]), routers: [router])
        let wrkOut = "\(c.dir)/wrk.out", pace = "\(c.dir)/pace.lua"
        try "function delay() return 10 end\n".write(toFile: pace, atomically: true, encoding: .utf8)
        let wrk = try c.spawnProgram("/usr/bin/wrk", [
            "-t", "2", "-c", "8", "-d", "35s", "--timeout", "5s", "-s", pace, "-H", "X-Tenant-ID: hot", "http://127.0.0.1:\(router)/",
        ], out: wrkOut)

        // Add: the provider starts peer 4, which joins and becomes active. Every router learns
        // its upstreams as route-table entries: no NGINX reload under the load.
        let added = try await c.must(["instances", "add", "--config", c.configPath, "--wait", "90"], timeoutSeconds: 100)
        #expect(added.contains("instance 4 active"), "\(added)")
        print("peer instances add:\n\(added)")
        let record = "\(c.dir)/data/instances/process/proc-test/4/record.json"
        let recordJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: record))) as? [String: Any] ?? [:]
        let joinerPid = pid_t(try #require(recordJSON["pid"] as? Int))
        #expect(kill(joinerPid, 0) == 0, "the provider's process for instance 4 runs")

        // The tenant moves onto it and every router sends it there.
        try await c.must(["tenants", "move", "hot", "--to", "4", "--config", c.configPath, "--timeout", "60"], timeoutSeconds: 70)
        try await DataPlaneProcessTests.waitRouted(c, tenant: "hot", to: "4", routers: c.routerPorts)
        let served = try await DataPlaneProcessTests.request(c, router: router, tenant: "hot")
        #expect(served.status == 200 && served.servedBy.hasPrefix("4/"), "\(served)")

        // Remove: drained (the tenant moves back), out of the membership, destroyed.
        let removed = try await c.must(["instances", "remove", "4", "--config", c.configPath, "--wait", "120"], timeoutSeconds: 130)
        #expect(removed.contains("instance 4 removed"), "\(removed)")
        print("peer instances remove 4:\n\(removed)")

        let wrkCode = try await c.waitProgram(wrk, timeoutSeconds: 60)
        let report = (try? String(contentsOfFile: wrkOut, encoding: .utf8)) ?? ""
        #expect(wrkCode == 0 && report.contains("requests in"), "wrk: \(report)")
        #expect(!report.contains("Non-2xx"), "a request failed while the instance came and went:\n\(report)")
        #expect(DataPlaneProcessTests.wrkSocketErrors(report) == (0, 0, 0, 0), "\(report)")
        print("add, move, remove under load: \(DataPlaneProcessTests.wrkRequests(report)) requests, 0 non-2xx, 0 socket errors")

        // NGINX took the new instance's upstreams without a reload: each router's config went
        // live once, when it started.
        for id in 1...3 {
            let log = (try? String(contentsOfFile: "\(c.dir)/run/peer-\(id).log", encoding: .utf8)) ?? ""
            let configs = log.components(separatedBy: "\n").filter { $0.contains("router config live") }
            #expect(configs.count == 1, "peer \(id) reloaded NGINX: \(configs)")
        }
        let after = try await DataPlaneProcessTests.request(c, router: router, tenant: "hot")
        #expect(after.status == 200 && !after.servedBy.hasPrefix("4/"), "\(after)")
        // The provider holds nothing; the membership is the three configured peers.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "\(c.dir)/data/instances/process/proc-test")) ?? []
        #expect(left.isEmpty, "the provider still holds \(left)")
        let stat = (try? String(contentsOfFile: "/proc/\(joinerPid)/stat", encoding: .utf8)) ?? ""
        #expect(stat.isEmpty || stat.split(separator: ")").last?.split(separator: " ").first == "Z", "instance 4's process still runs: \(stat)")
        let list = try await c.must(["instances", "list", "--config", c.configPath, "--output", "json", "--consistent"])
        let instances = try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]] ?? []
        let live = instances.filter { $0["state"] as? String != "removed" }.compactMap { $0["id"] as? String }.sorted()
        #expect(live == ["1", "2", "3"], "\(instances)")
        #expect(instances.first { $0["id"] as? String == "4" }?["state"] as? String == "removed")
        // An unknown provider is refused at once, naming the ones there are.
        let unknown = try await c.run(["instances", "add", "--provider", "nope", "--config", c.configPath, "--wait", "5"], timeoutSeconds: 30)
        #expect(unknown.status != 0 && unknown.stderr.contains("no provider nope; the cluster file's providers: process"), "\(unknown.stderr)")
        // A voter the cluster needs is refused at once, with the reason, and nothing recorded.
        let refused = try await c.run(["instances", "remove", "1", "--config", c.configPath, "--wait", "5"], timeoutSeconds: 30)
        #expect(refused.status != 0 && refused.stderr.contains("below voters_target 3") && refused.stderr.contains("add an instance first"), "\(refused.stderr)")
        let status = try await c.statusJSON(consistent: true)
        let roles = (status["members"] as? [[String: Any]] ?? []).compactMap { $0["role"] as? String }
        #expect(roles == ["voter", "voter", "voter"], "\(status)")
        try await c.must(["down", "--config", c.configPath])
    }

    /// SIGKILL to the process group of every instance the process provider recorded.
    static func killProvided(records: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: records)) ?? [] {
            guard let data = FileManager.default.contents(atPath: "\(records)/\(name)/record.json"),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let pid = json["pid"] as? Int, pid > 1
            else { continue }
            kill(-pid_t(pid), SIGKILL)
        }
    }
}
}
