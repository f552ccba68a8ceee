import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A `peer` binary whose siblings (`peer-exec`, `tenant-app`) were not built: the peer refuses
/// to start and names the exact command that builds what is missing (a fresh clone built with
/// one `swift build --product peer` gets there; issue 17).
@Suite(.sharesMachine) struct MissingSiblingTests {
    /// `peer` alone in a folder named like SwiftPM's `debug` build folder, hard-linked (so
    /// /proc/self/exe names this folder) or copied.
    static func lonePeer(in dir: String, siblings: [String] = []) throws -> String {
        let folder = dir + "/alone/debug"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let built = try ProcessCluster.peerBinary()
        let builtFolder = URL(fileURLWithPath: built).deletingLastPathComponent().path
        for name in ["peer"] + siblings {
            let from = builtFolder + "/" + name, to = folder + "/" + name
            if link(from, to) != 0 { try FileManager.default.copyItem(atPath: from, toPath: to) }
        }
        return folder + "/peer"
    }

    @Test func peerWithoutPeerExecRefusesToStartAndNamesTheBuildCommand() async throws {
        let scratch = try ProcessCluster(size: 1, dataPlane: true)
        let lone = try Self.lonePeer(in: scratch.dir)
        let c = try ProcessCluster(size: 1, dataPlane: true, binary: lone)
        try await c.must(["init", "--config", c.configPath])
        let run = try await c.run(["run", "--config", c.configPath, "--id", "1"], timeoutSeconds: 30)
        #expect(run.status != 0)
        #expect(run.stderr.contains("peer-exec not found"), "stderr: \(run.stderr)")
        #expect(run.stderr.contains("`swift build --product peer-exec`"), "stderr: \(run.stderr)")
        let up = try await c.run(["up", "--config", c.configPath, "--timeout", "20"], timeoutSeconds: 40)
        #expect(up.status != 0, "peer up exited 0 although its peer could not start: \(up.stdout)")
    }

    @Test func peerWithoutTenantAppRefusesToStartAndNamesTheBuildCommand() async throws {
        let scratch = try ProcessCluster(size: 1, dataPlane: true)
        let lone = try Self.lonePeer(in: scratch.dir, siblings: ["peer-exec"])
        let c = try ProcessCluster(size: 1, dataPlane: true, binary: lone)
        try await c.must(["init", "--config", c.configPath])
        let run = try await c.run(["run", "--config", c.configPath, "--id", "1"], timeoutSeconds: 30)
        #expect(run.status != 0)
        #expect(run.stderr.contains("command 'tenant-app' is not an executable file"), "stderr: \(run.stderr)")
        #expect(run.stderr.contains("`swift build --product tenant-app`"), "stderr: \(run.stderr)")
    }
}
