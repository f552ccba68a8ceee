import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 21 with real processes: three peers (NGINX and tenant-app each), the process provider
/// and the balancer, driven only by load. Seed scenario 1: one tenant made hot under wrk, the
/// overload found from the routers' statistics, a new instance provisioned and joined, the hot
/// tenant moved there, the load on its old instance falls. Scenario 2: wrk stops, low usage is
/// found, the added instance drained and destroyed. The steps are checked in the seed's order
/// from `peer events`; no request fails; the provider's list ends equal to the membership.
/// Nested in the serialized data-plane suite (four peers and wrk).
extension DataPlaneProcessTests {
@Suite struct BalancerProcessTests {
    static func events(_ c: ProcessCluster) async throws -> [[String: Any]] {
        let out = try await c.must(["events", "--config", c.configPath, "--output", "json", "--limit", "100"])
        // Newest first from the API; oldest first here.
        return ((try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]) ?? []).reversed()
    }

    /// Requests per second that every router sent to `instance`, summed (the routers' window).
    static func instanceLoad(_ c: ProcessCluster, _ instance: String) async throws -> Double {
        let status = try await c.statusJSON()
        var sum = 0.0
        for m in status["members"] as? [[String: Any]] ?? [] {
            let load = (m["dataPlane"] as? [String: Any])?["load"] as? [String: Any]
            for i in load?["instances"] as? [[String: Any]] ?? [] where i["instance"] as? String == instance {
                sum += i["requestsPerSecond"] as? Double ?? 0
            }
        }
        return sum
    }

    /// Every peer's last router lines (configs live, restarts, reloads, refusals): what to
    /// look at when a request through a router failed.
    static func routerLogLines(_ c: ProcessCluster) -> String {
        (1...c.size).map { id in
            let log = (try? String(contentsOfFile: "\(c.dir)/run/peer-\(id).log", encoding: .utf8)) ?? ""
            let lines = log.split(separator: "\n").filter { $0.contains("router:") || $0.contains("[Router]") }
            return "peer \(id): " + (lines.isEmpty ? "no router warnings" : lines.suffix(20).joined(separator: "\n  "))
        }.joined(separator: "\n")
    }

    static func waitEvent(_ c: ProcessCluster, seconds: Double, _ what: String, _ match: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [[String: Any]] = []
        while Date() < deadline {
            last = try await events(c)
            if let e = last.first(where: match) { return e }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw ProcessTestError("no \(what) event within \(seconds) s; events: \(last.map { "\($0["kind"] ?? "?"): \($0["reason"] ?? "")" })")
    }

    @Test func bothSeedScenariosPlayOutAutonomouslyUnderLoadInTheSeedsOrder() async throws {
        let base = try ProcessCluster.freeRange(21, avoiding: [])
        let extra = DataPlaneProcessTests.unlimitedCatalog + """
            providers:
              - kind: process
                ports: \(base)-\(base + 20)
                addTimeoutMs: 120000
            balancer:
              instanceRequestsPerSecond: 100
              overloadWindowMs: 5000
              underloadWindowMs: 15000
              cooldownMs: 5000
              minInstances: 3
              maxInstances: 4

            """
        let c = try ProcessCluster(instanceLostAfterMs: 2_000, extraYAML: extra, dataPlane: true)
        defer { InstanceLifecycleProcessTests.killProvided(records: "\(c.dir)/data/instances/process/proc-test") }
        try await c.must(["init", "--config", c.configPath])
        try await c.must(["up", "--config", c.configPath])
        // Two tenants per instance: the hot one is not alone where it starts (alone, it could
        // only raise an alert).
        let tenants = ["hot", "calm-1", "calm-2", "calm-3", "calm-4", "calm-5"]
        for t in tenants { try await c.must(["tenants", "create", t, "--plan", "unlimited", "--config", c.configPath, "--wait"]) }
        let placed = try await DataPlaneProcessTests.waitPlaced(c, tenants)
        let source = try #require(placed["hot"])
        #expect(placed.values.filter { $0 == source }.count >= 2, "\(placed)")

        // Scenario 1: ~150-200 req/s on hot (capacity 100 per instance, mark 80). wrk starts once
        // the router serves hot: a connection wrk cannot open at its start it never retries (a
        // CI run began before router 1's NGINX listened: 1 connect error, 3 connections of 4).
        let router = c.routerPorts[0]
        try await DataPlaneProcessTests.waitRouted(c, tenant: "hot", to: source, routers: [router])
        let wrkOut = "\(c.dir)/wrk.out", pace = "\(c.dir)/pace.lua"
        try "function delay() return 20 end\n".write(toFile: pace, atomically: true, encoding: .utf8)
        let started = Date()
        let wrk = try c.spawnProgram("/usr/bin/wrk", [
            "-t", "2", "-c", "4", "-d", "50s", "--timeout", "5s", "-s", pace, "-H", "X-Tenant-ID: hot", "http://127.0.0.1:\(router)/",
        ], out: wrkOut)
        let up = try await Self.waitEvent(c, seconds: 45, "scale-up") { $0["kind"] as? String == "scale-up" }
        let decidedAfter = Date().timeIntervalSince(started)
        #expect(up["instance"] as? String == source, "\(up)")
        let added = try #require(up["newInstance"] as? String)
        let moves = up["moves"] as? [[String: Any]] ?? []
        #expect(moves.map { $0["tenant"] as? String } == ["hot"], "\(up)")
        try await DataPlaneProcessTests.waitRouted(c, tenant: "hot", to: added, routers: c.routerPorts, seconds: 60)
        let movedAfter = Date().timeIntervalSince(started)
        // The load on the source falls below its mark while wrk still runs (the routers' 10 s window).
        // The routers' rates are 10 s averages: both cross the mark within a window or two.
        var sourceLoad = try await Self.instanceLoad(c, source)
        var addedLoad = try await Self.instanceLoad(c, added)
        let fallDeadline = Date().addingTimeInterval(25)
        while (sourceLoad >= 80 || addedLoad <= 80) && Date() < fallDeadline {
            try await Task.sleep(for: .milliseconds(500))
            sourceLoad = try await Self.instanceLoad(c, source)
            addedLoad = try await Self.instanceLoad(c, added)
        }
        #expect(sourceLoad < 80 && addedLoad > 80, "instance \(source): \(sourceLoad) req/s, instance \(added): \(addedLoad) req/s")
        print("balancer scenario 1: scale-up decided \(String(format: "%.1f", decidedAfter)) s after wrk started, hot served by instance \(added) after \(String(format: "%.1f", movedAfter)) s; instance \(source) now \(String(format: "%.0f", sourceLoad)) req/s, \(added) \(String(format: "%.0f", addedLoad)) req/s")

        let wrkCode = try await c.waitProgram(wrk, timeoutSeconds: 70)
        let report = (try? String(contentsOfFile: wrkOut, encoding: .utf8)) ?? ""
        #expect(wrkCode == 0 && report.contains("requests in"), "wrk: \(report)")
        #expect(!report.contains("Non-2xx"), "a request failed during the scale-up:\n\(report)")
        #expect(DataPlaneProcessTests.wrkSocketErrors(report) == (0, 0, 0, 0), "\(report)\n\(Self.routerLogLines(c))")

        // Scenario 2: quiet; the added instance is drained and destroyed.
        let quiet = Date()
        let down = try await Self.waitEvent(c, seconds: 90, "scale-down") { $0["kind"] as? String == "scale-down" }
        #expect(down["instance"] as? String == added, "\(down)")
        let deadline = Date().addingTimeInterval(90)
        var state = ""
        while Date() < deadline {
            let list = try await c.must(["instances", "list", "--config", c.configPath, "--output", "json", "--consistent"])
            let instances = try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]] ?? []
            state = instances.first { $0["id"] as? String == added }?["state"] as? String ?? "?"
            if state == "removed" && instances.allSatisfy({ $0["intent"] == nil }) { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(state == "removed", "instance \(added) is \(state)")
        print("balancer scenario 2: instance \(added) removed \(String(format: "%.1f", Date().timeIntervalSince(quiet))) s after the load stopped")
        let served = try await DataPlaneProcessTests.request(c, router: router, tenant: "hot")
        #expect(served.status == 200 && !served.servedBy.hasPrefix("\(added)/"), "\(served)")

        // The seed's order, from the events: scale-up of the source for hot, then scale-down of the new instance.
        let kinds = try await Self.events(c).compactMap { $0["kind"] as? String }.filter { $0 != "alert" }
        #expect(kinds == ["scale-up", "scale-down"], "\(kinds)")
        // The provider holds nothing; the membership is the three configured peers.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "\(c.dir)/data/instances/process/proc-test")) ?? []
        #expect(left.isEmpty, "the provider still holds \(left)")
        let list = try await c.must(["instances", "list", "--config", c.configPath, "--output", "json", "--consistent"])
        let instances = try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]] ?? []
        let live = instances.filter { $0["state"] as? String != "removed" }.compactMap { $0["id"] as? String }.sorted()
        #expect(live == ["1", "2", "3"], "\(instances)")

        // The operator's pause: an event, shown by `peer balancer` and `peer status`; a second
        // pause commits nothing; resume.
        let paused = try await c.must(["balancer", "pause", "--reason", "maintenance", "--config", c.configPath])
        #expect(paused.contains("paused") && paused.contains("paused by an operator: maintenance"), "\(paused)")
        _ = try await c.must(["balancer", "pause", "--config", c.configPath])
        let shown = try await c.must(["status", "--config", c.configPath])
        #expect(shown.contains("balancer: PAUSED"), "\(shown)")
        let resumed = try await c.must(["balancer", "resume", "--config", c.configPath])
        #expect(resumed.contains("acting"), "\(resumed)")
        let last = try await Self.events(c).suffix(2).compactMap { $0["kind"] as? String }
        #expect(last == ["paused", "resumed"], "\(last)")
        try await c.must(["down", "--config", c.configPath])
    }

    /// Requests round-robin over TENANTS through one router for DURATION seconds (one at a
    /// time, 2 s timeout each, a 20 ms pause between rounds), each recorded as
    /// [seconds since start, tenant, status or 0 for a socket error, X-Served-By]; prints the
    /// list as JSON.
    static let prober = #"""
    import http.client, json, sys, time
    port, duration, tenants = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3].split(",")
    t0 = time.time()
    print(json.dumps({"t0": t0}), flush=True)
    out = []
    while time.time() - t0 < duration:
        for t in tenants:
            at = time.time() - t0
            served = ""
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/", headers={"X-Tenant-ID": t})
                r = c.getresponse()
                status, served = r.status, r.getheader("X-Served-By") or ""
                c.close()
            except Exception:
                status = 0
            out.append([round(at, 3), t, status, served])
        time.sleep(0.02)
    print(json.dumps(out))
    """#

    @Test func aKilledInstancesTenantsAreServedElsewhereWithinTheWindowPlusFiveSecondsAndOnlyTheyFailAndItComesBackEmpty() async throws {
        let lostAfter = 2_000
        let extra = DataPlaneProcessTests.unlimitedCatalog + """
            balancer:
              instanceRequestsPerSecond: 100000

            """
        let c = try ProcessCluster(instanceLostAfterMs: lostAfter, extraYAML: extra, dataPlane: true)
        try await c.must(["init", "--config", c.configPath])
        try await c.must(["up", "--config", c.configPath])
        let tenants = (1...6).map { "t\($0)" }
        for t in tenants { try await c.must(["tenants", "create", t, "--plan", "unlimited", "--config", c.configPath, "--wait"]) }
        let placed = try await DataPlaneProcessTests.waitPlaced(c, tenants)
        let status = try await c.statusJSON(consistent: true)
        let leader = try #require(status["leader"] as? Int)
        // The victim: a follower serving tenants; the probe goes through the third router.
        let victim = try #require([1, 2, 3].first { $0 != leader && placed.values.contains("\($0)") })
        let prober = 6 - leader - victim
        let doomed = Set(placed.filter { $0.value == "\(victim)" }.keys)
        for t in tenants { try await DataPlaneProcessTests.waitRouted(c, tenant: t, to: placed[t]!, routers: [c.routerPorts[prober - 1]]) }

        let script = c.dir + "/probe.py", out = c.dir + "/probe.out"
        try Self.prober.write(toFile: script, atomically: true, encoding: .utf8)
        let probe = try c.spawnProgram("/usr/bin/env", ["python3", script, "\(c.routerPorts[prober - 1])", "20", tenants.joined(separator: ",")], out: out)
        // Three seconds of a healthy cluster first: the probe's clock starts at its first line.
        var t0: Double?
        for _ in 0..<100 where t0 == nil {
            let first = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").first
            t0 = first.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }?["t0"] as? Double
            if t0 == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let start = try #require(t0, "the probe did not start")
        while Date().timeIntervalSince1970 - start < 3 { try await Task.sleep(for: .milliseconds(50)) }
        let victimPid = try #require(c.pid(of: victim))
        #expect(kill(victimPid, SIGKILL) == 0)
        let killedAt = Date().timeIntervalSince1970 - start
        let code = try await c.waitProgram(probe, timeoutSeconds: 40)
        #expect(code == 0, "\((try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? "")")
        let lines = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n")
        let records = try #require(lines.count == 2 ? try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [[Any]] : nil, "\(lines.suffix(1))")
        let window = Double(lostAfter) / 1000 + 5
        var failedOthers: [String] = [], lateFailures: [String] = [], recoveredAfter: [String: Double] = [:], failuresByTenant: [String: Int] = [:]
        for r in records {
            guard let at = r[0] as? Double, let tenant = r[1] as? String, let status = r[2] as? Int, let served = r[3] as? String else { continue }
            if status == 200 {
                // Served by a live instance after the kill: that tenant is back.
                if doomed.contains(tenant), at > killedAt, !served.hasPrefix("\(victim)/"), recoveredAfter[tenant] == nil {
                    recoveredAfter[tenant] = at - killedAt
                }
                continue
            }
            failuresByTenant[tenant, default: 0] += 1
            if !doomed.contains(tenant) { failedOthers.append("\(tenant) at \(at) s: \(status)") }
            if at < killedAt || at > killedAt + window { lateFailures.append("\(tenant) at \(at) s (killed at \(killedAt) s): \(status)") }
        }
        #expect(failedOthers.isEmpty, "tenants of live instances failed: \(failedOthers.prefix(10))")
        #expect(lateFailures.isEmpty, "failures outside the window: \(lateFailures.prefix(10))")
        for tenant in doomed {
            let after = try #require(recoveredAfter[tenant], "\(tenant) was never served again")
            #expect(after <= window, "\(tenant) served again \(after) s after the kill (window \(window) s)")
        }
        let events = try await Self.events(c)
        let failover = try #require(events.first { $0["kind"] as? String == "failover" }, "\(events)")
        #expect(failover["instance"] as? String == "\(victim)", "\(failover)")
        // The lost instance comes back: its tenants are gone from it; it serves nothing, and its
        // router sends them where they are now.
        try await c.must(["up", "--config", c.configPath])
        let now = try await DataPlaneProcessTests.placements(c, consistent: true)
        for tenant in doomed {
            let at = try #require(now[tenant])
            #expect(at != "\(victim)", "\(tenant) is still placed on the lost instance")
            try await DataPlaneProcessTests.waitRouted(c, tenant: tenant, to: at, routers: [c.routerPorts[victim - 1]])
        }
        let back = try await c.waitForStatus("peer \(victim) back and reporting") { status in
            c.members(status).contains { ($0["id"] as? Int) == victim && ($0["dataPlane"] as? [String: Any]) != nil }
        }
        let plane = c.members(back).first { ($0["id"] as? Int) == victim }?["dataPlane"] as? [String: Any]
        #expect((plane?["servingTenants"] as? [String]) == [], "the instance that came back serves \(plane?["servingTenants"] ?? "?")")
        let worst = recoveredAfter.values.max() ?? 0
        print("instance \(victim) killed at \(String(format: "%.1f", killedAt)) s: its \(doomed.count) tenant(s) served elsewhere within \(String(format: "%.2f", worst)) s (window \(window) s); \(records.count) requests, failures by tenant \(failuresByTenant), none to other tenants")
        try await c.must(["down", "--config", c.configPath])
    }
}
}
