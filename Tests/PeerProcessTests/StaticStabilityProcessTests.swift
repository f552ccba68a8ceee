import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Static stability of the data plane (issue 24, part 5): with no leader at all (two of three
/// peer processes paused, their NGINX and components untouched), every router keeps sending each
/// tenant to its last placement. Nested in the serialized data-plane suite (NGINX on every peer).
extension DataPlaneProcessTests {
@Suite struct StaticStabilityProcessTests {
    @Test func withTheControlPlaneLeaderlessEveryRouterServesASteadyTenant() async throws {
        let c = try ProcessCluster(dataPlane: true)
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        try await c.must(["tenants", "create", "steady", "--plan", "deployment", "--config", cfg, "--wait"])
        let placed = try #require(try await DataPlaneProcessTests.waitPlaced(c, ["steady"])["steady"])
        try await DataPlaneProcessTests.waitRouted(c, tenant: "steady", to: placed, routers: c.routerPorts)

        // No leader: two peer processes stopped (a majority), whichever they are.
        let paused = try [1, 2].map { try #require(c.pid(of: $0)) }
        for pid in paused { #expect(kill(pid, SIGSTOP) == 0) }
        defer { for pid in paused { kill(pid, SIGCONT) } }
        // Peer 3 drops its leader within an election timeout or two (check quorum, or no heartbeat).
        let deadline = Date().addingTimeInterval(15)
        var last = ""
        while true {
            let seen = try await c.run(["status", "--config", cfg, "--endpoint", "127.0.0.1:\(c.apiPorts[2])", "--output", "json"], timeoutSeconds: 30)
            if seen.status == 2 { break }
            last = seen.stdout
            guard Date() < deadline else { throw ProcessTestError("peer 3 still reports a leader 15 s after peers 1 and 2 stopped: \(last)") }
            try await Task.sleep(for: .milliseconds(100))
        }

        // 10 rounds, 300 ms apart, through every router: 30 requests, each must be served by the
        // tenant's instance.
        var failed: [String] = []
        for round in 0..<10 {
            for (i, router) in c.routerPorts.enumerated() {
                let answer = try await DataPlaneProcessTests.request(c, router: router, tenant: "steady")
                if answer.status != 200 || !answer.servedBy.hasPrefix("\(placed)/") { failed.append("round \(round) router \(i + 1): \(answer.status) \(answer.servedBy)") }
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(failed.isEmpty, "requests failed while the control plane had no leader: \(failed)")
        print("no leader (peers 1 and 2 stopped): \(30 - failed.count) of 30 requests to a steady tenant through the 3 routers served by instance \(placed)")
        for pid in paused { kill(pid, SIGCONT) }
        try await c.must(["down", "--config", cfg])
    }
}
}
