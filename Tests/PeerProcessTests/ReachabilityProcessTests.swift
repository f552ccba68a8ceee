import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The CLI reaches the leader whenever a majority is reachable from where it runs (issue 24,
/// part 7): members that accept connections but never answer (paused, as behind a partition
/// that drops packets) cost it one short probe, not an attempt timeout each.
@Suite("Process-level: the CLI and unreachable members", .serialized, .sharesMachine)
struct ReachabilityProcessTests {
    @Test("with the first two members of the file paused, a write with a 4 s budget reaches the leader among the other three; --endpoint aims at one member")
    func writesReachTheLeaderPastSilentMembers() async throws {
        let c = try ProcessCluster(size: 5)
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        _ = try await c.waitForStatus("5 members converged") { ProcessCluster.converged($0, members: 5) }
        try await c.must(["leader", "transfer", "--to", "3", "--config", cfg])
        let paused = try [1, 2].map { try #require(c.pid(of: $0)) }
        for pid in paused { #expect(kill(pid, SIGSTOP) == 0) }
        defer { for pid in paused { kill(pid, SIGCONT) } }

        let began = ContinuousClock.now
        let created = try await c.run(["tenants", "create", "past-silence", "--config", cfg, "--timeout", "4"], timeoutSeconds: 30)
        let took = ContinuousClock.now - began
        #expect(created.status == 0, "\(created.stdout)\n\(created.stderr)")
        #expect(took < .seconds(4), "the write took \(took)")

        // One member named: the request goes there (a follower forwards it to the leader).
        let viaFour = try await c.run(["tenants", "create", "via-four", "--config", cfg, "--endpoint", "127.0.0.1:\(c.apiPorts[3])", "--timeout", "4"])
        #expect(viaFour.status == 0, "\(viaFour.stderr)")
        let listed = try await c.must(["tenants", "list", "--config", cfg, "--endpoint", "https://127.0.0.1:\(c.apiPorts[4])/", "--output", "json"])
        #expect(listed.contains("past-silence") && listed.contains("via-four"), "\(listed)")
        // Only a silent member named: nothing else is tried, and the budget is kept.
        let silentBegan = ContinuousClock.now
        let silent = try await c.run(["tenants", "create", "never", "--config", cfg, "--endpoint", "127.0.0.1:\(c.apiPorts[0])", "--timeout", "2"], timeoutSeconds: 30)
        #expect(silent.status != 0 && silent.stderr.contains("gave up after 2 s"), "\(silent.stderr)")
        #expect(ContinuousClock.now - silentBegan < .seconds(3), "an attempt outlived the 2 s budget")
        let bad = try await c.run(["tenants", "list", "--config", cfg, "--endpoint", "no-port"])
        #expect(bad.status != 0 && bad.stderr.contains("--endpoint no-port is not host:port"), "\(bad.stderr)")

        for pid in paused { kill(pid, SIGCONT) }
        try await c.must(["down", "--config", cfg])
    }
}
