import ChildProcesses
import Foundation
import LoopbackHTTP
import Providers
import Testing
#if canImport(Glibc)
import Glibc
#endif

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum Paths {
    /// The package's root (this file is Tests/ProviderTests/Support.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The directory of the products built beside the tests (`swift build` puts every product there).
    static func productDirectory() throws -> String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] where FileManager.default.isExecutableFile(atPath: candidate.appendingPathComponent("tenant-app").path) {
            return candidate.path
        }
        throw TestFailure("tenant-app not found next to \(dir.path); run `swift build --product tenant-app`")
    }

    static func temporaryDirectory(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peer-provider-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// The workload every contract test starts: the demo component, listening on the instance's
/// API port and serving the tenants of the bootstrap file `tenants`, so an answer proves the
/// instance runs with its addresses and its bootstrap files.
enum Workload {
    static func argv(tenantApp: String) -> [String] {
        [tenantApp, "--instance", "{id}", "--component", "probe", "--host", "{host}", "--port", "{apiPort}", "--tenant-file", "{bootstrap}/tenants"]
    }

    /// Polls (bounded: `within`) until the instance answers that it serves `tenant`.
    static func waitServing(_ instance: ProvidedInstance, tenant: String, within: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + within
        var last = ""
        while ContinuousClock.now < deadline {
            do {
                let reply = try await LoopbackHTTPClient.shared.request(
                    instance.addresses.api, path: "/healthz", headers: [("X-Tenant-ID", tenant)], timeout: .seconds(2), responseBytesMax: 64 * 1024)
                if reply.status == 200 {
                    #expect(reply.header("X-Served-By") == "\(instance.instanceID)/probe")
                    return
                }
                last = "HTTP \(reply.status): \(reply.bodyText)"
            } catch {
                last = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("instance \(instance.instanceID) at \(instance.addresses.api) did not serve \(tenant) within \(within): \(last)")
    }

    /// Polls (bounded) until nothing accepts connections at the instance's API address.
    static func waitGone(_ instance: ProvidedInstance, within: Duration = .seconds(15)) async throws {
        let deadline = ContinuousClock.now + within
        while ContinuousClock.now < deadline {
            do {
                _ = try await LoopbackHTTPClient.shared.request(instance.addresses.api, path: "/healthz", timeout: .seconds(1), responseBytesMax: 64 * 1024)
            } catch .connect {
                return
            } catch {}
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("instance \(instance.instanceID) still answers at \(instance.addresses.api) \(within) after it was destroyed")
    }
}

/// The contract every provider keeps (docs/providers.md), run against each implementation.
/// `makeProvider` returns a new provider object over the same backing store each call (a new
/// leader's); `stopBehindItsBack` ends an instance's workload without the provider.
func runContract(
    cluster: String, makeProvider: () throws -> any InstanceProvider, stopBehindItsBack: (ProvidedInstance) async throws -> Void
) async throws {
    let provider = try makeProvider()
    #expect(try await provider.list(clusterID: cluster).isEmpty, "a new cluster has no instances")

    // Create: runs, with its addresses and its bootstrap files.
    let a = try await provider.create(ProvisionRequest(clusterID: cluster, instanceID: "1", bootstrap: ["tenants": "acme\n"]))
    #expect(a.instanceID == "1" && a.clusterID == cluster && a.state == .running)
    try await Workload.waitServing(a, tenant: "acme")

    // Idempotent: the same id again is the same instance.
    let again = try await provider.create(ProvisionRequest(clusterID: cluster, instanceID: "1", bootstrap: ["tenants": "acme\n"]))
    #expect(again.addresses == a.addresses && again.handle == a.handle && again.state == .running)

    let b = try await provider.create(ProvisionRequest(clusterID: cluster, instanceID: "2", bootstrap: ["tenants": "globex\n"]))
    #expect(b.addresses.api != a.addresses.api && b.addresses.peer != a.addresses.peer)
    try await Workload.waitServing(b, tenant: "globex")

    // List: both, as created; nothing of another cluster; the same from a new provider object.
    let listed = try await provider.list(clusterID: cluster)
    #expect(listed.map(\.instanceID) == ["1", "2"])
    #expect(listed.map(\.addresses) == [a.addresses, b.addresses])
    #expect(listed.allSatisfy { $0.state == .running && $0.clusterID == cluster })
    #expect(try await provider.list(clusterID: cluster + "-other").isEmpty, "instances are labelled with their cluster")
    let successor = try makeProvider()
    #expect(try await successor.list(clusterID: cluster) == listed, "a new leader's provider sees what the old one created")

    // A stopped instance is listed as stopped, and create starts it again on the same addresses.
    try await stopBehindItsBack(b)
    try await Workload.waitGone(b)
    let stopped = try await successor.list(clusterID: cluster).first { $0.instanceID == "2" }
    #expect(stopped?.state == .stopped)
    let restarted = try await successor.create(ProvisionRequest(clusterID: cluster, instanceID: "2", bootstrap: ["tenants": "globex\n"]))
    #expect(restarted.addresses == b.addresses && restarted.state == .running)
    try await Workload.waitServing(restarted, tenant: "globex")

    // Destroy: gone, idempotent, and nothing left.
    try await successor.destroy(clusterID: cluster, instanceID: "1")
    try await Workload.waitGone(a)
    #expect(try await provider.list(clusterID: cluster).map(\.instanceID) == ["2"])
    try await successor.destroy(clusterID: cluster, instanceID: "1")
    try await provider.destroy(clusterID: cluster, instanceID: "2")
    try await Workload.waitGone(b)
    #expect(try await provider.list(clusterID: cluster).isEmpty)
    try await provider.destroy(clusterID: cluster, instanceID: "never-created")
}

/// Runs `argv` to completion (bounded by `timeout`), returning its exit and output.
func runCommand(_ argv: [String], timeout: Duration = .seconds(120)) async throws -> (exit: ChildExit, output: String) {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("peer-provider-cmd-\(UInt64.random(in: 0...UInt64.max))").path
    defer { try? FileManager.default.removeItem(atPath: out) }
    let pid = try ChildProcess.spawn(argv, .init(outputPath: out))
    let deadline = ContinuousClock.now + timeout
    while true {
        if let exit = ChildProcess.reapIfExited(pid) {
            return (exit, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
        }
        guard ContinuousClock.now < deadline else {
            ChildProcess.signalGroup(pid, SIGKILL)
            _ = ChildProcess.reapBlocking(pid)
            throw TestFailure("\(argv.joined(separator: " ")) did not finish within \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}
