import ChildProcesses
import Foundation
import LoopbackHTTP
import Providers
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A Docker Engine of the test's own: `dockerd` with its data, exec root and socket in a
/// temporary directory, without the networking features this VM lacks (docs/testing.md). Ended
/// by its pid. If no engine can run here, `start` throws with the reason: the test fails, never
/// skips.
final class DockerDaemon {
    let dir: String
    let socketPath: String
    let pid: pid_t

    init() async throws {
        guard let dockerd = ["/usr/sbin/dockerd", "/usr/bin/dockerd"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw TestFailure("dockerd is not installed: apt-get install -y docker.io (.ci/install-deps installs it)")
        }
        // Short paths: a Unix socket's path is limited to 107 bytes.
        dir = "/tmp/peer-dockerd-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        socketPath = dir + "/docker.sock"
        pid = try ChildProcess.spawn([
            dockerd, "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
            "--storage-driver=vfs", "--data-root=\(dir)/root", "--exec-root=\(dir)/exec", "--pidfile=\(dir)/docker.pid",
            "--host=unix://\(socketPath)",
        ], .init(outputPath: dir + "/dockerd.log"))
        let engine = DockerEngine(socketPath: socketPath, timeout: .seconds(2))
        let deadline = ContinuousClock.now + .seconds(30)
        var reason = await engine.ping()
        while let why = reason {
            if let exit = ChildProcess.reapIfExited(pid) {
                throw TestFailure("dockerd exited (\(exit)) before it answered: \(why); its log: \(Self.tail(dir + "/dockerd.log"))")
            }
            guard ContinuousClock.now < deadline else {
                stop()
                throw TestFailure("dockerd did not answer within 30 s: \(why); its log: \(Self.tail(dir + "/dockerd.log"))")
            }
            try await Task.sleep(for: .milliseconds(50))
            reason = await engine.ping()
        }
    }

    /// SIGTERM (dockerd stops its containers), then SIGKILL after 20 s; then its files go.
    func stop() {
        ChildProcess.signalProcess(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(20)
        while !ChildProcess.hasExited(pid), ContinuousClock.now < deadline { usleep(20_000) }
        if !ChildProcess.hasExited(pid) { ChildProcess.signalGroup(pid, SIGKILL) }
        _ = ChildProcess.reapBlocking(pid)
        // dockerd leaves its network namespace file mounted under the exec root: unmount
        // whatever is still mounted under the directory before removing it.
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 1, fields[1].hasPrefix(dir + "/") { _ = umount2(String(fields[1]), Int32(MNT_DETACH)) }
        }
        try? FileManager.default.removeItem(atPath: dir)
        #expect(!FileManager.default.fileExists(atPath: dir), "dockerd's directory \(dir) could not be removed")
    }

    static func tail(_ path: String) -> String {
        String(((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").suffix(800))
    }
}

@Suite(.serialized) struct DockerProviderTests {
    /// The image the provider runs, built from this tree's binaries by `.ci/build-image`.
    static func importImage(_ engine: DockerEngine) async throws {
        let tar = FileManager.default.temporaryDirectory.appendingPathComponent("peer-rootfs-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tar").path
        defer { try? FileManager.default.removeItem(atPath: tar) }
        let built = try await runCommand(["bash", Paths.root + "/.ci/build-image", try Paths.productDirectory(), tar])
        guard built.exit == .exited(code: 0) else { throw TestFailure(".ci/build-image failed (\(built.exit)): \(built.output)") }
        let bytes = try #require(FileManager.default.contents(atPath: tar))
        try await engine.importImage(rootFileSystemTar: Array(bytes), repository: "peer-test", tag: "contract")
    }

    static func provider(_ daemon: DockerDaemon, image: String = "peer-test:contract") throws -> DockerProvider {
        var settings = DockerProvider.Settings(
            image: image, ports: try PortPlan(host: "127.0.0.1", range: 32300...32399, componentPorts: 3),
            command: try CommandTemplate(Workload.argv(tenantApp: "/usr/local/bin/tenant-app")))
        settings.socketPath = daemon.socketPath
        settings.stopTimeoutSeconds = 5
        return DockerProvider(settings)
    }

    @Test func keepsTheProviderContractWithARealEngine() async throws {
        let daemon = try await DockerDaemon()
        defer { daemon.stop() }
        let engine = DockerEngine(socketPath: daemon.socketPath)
        try await Self.importImage(engine)
        try await runContract(cluster: "contract", makeProvider: { try Self.provider(daemon) }) { instance in
            let name = "peer-contract-\(instance.instanceID)"
            let reply = try await LoopbackHTTPClient.shared.request(
                .unixSocket(daemon.socketPath), method: .POST, path: "/\(DockerEngine.apiVersion)/containers/\(name)/kill", timeout: .seconds(10), responseBytesMax: 65536)
            #expect(reply.status == 204, "kill \(name): \(reply.status) \(reply.bodyText)")
        }
        // Nothing left in the engine: no container of any state.
        let all = try await LoopbackHTTPClient.shared.request(
            .unixSocket(daemon.socketPath), path: "/\(DockerEngine.apiVersion)/containers/json?all=true", timeout: .seconds(10), responseBytesMax: 1 << 20)
        #expect(all.bodyText.trimmingCharacters(in: .whitespacesAndNewlines) == "[]", "left behind: \(all.bodyText)")

        // An image that does not exist: a clear error, no container.
        let missing = try Self.provider(daemon, image: "peer-test:absent")
        let error = await #expect(throws: ProviderError.self) { try await missing.create(ProvisionRequest(clusterID: "contract", instanceID: "7")) }
        #expect(error?.reason == .refused, "\(String(describing: error))")
        #expect(error?.description.contains("image \"peer-test:absent\" does not exist in the engine") == true, "\(String(describing: error))")
        #expect(try await missing.list(clusterID: "contract").isEmpty)
    }

    @Test func anEngineThatIsNotRunningIsNamed() async throws {
        var settings = DockerProvider.Settings(
            image: "peer-test:contract", ports: try PortPlan(host: "127.0.0.1", range: 32400...32499, componentPorts: 3),
            command: try CommandTemplate(["/usr/local/bin/peer", "run"]))
        settings.socketPath = "/tmp/peer-no-engine-\(getpid()).sock"
        let provider = DockerProvider(settings)
        for call in ["list", "create", "destroy"] {
            let error = await #expect(throws: ProviderError.self) {
                switch call {
                case "list": _ = try await provider.list(clusterID: "c")
                case "create": _ = try await provider.create(ProvisionRequest(clusterID: "c", instanceID: "1"))
                default: try await provider.destroy(clusterID: "c", instanceID: "1")
                }
            }
            #expect(error?.reason == .unavailable, "\(call): \(String(describing: error))")
            #expect(error?.description.contains("cannot reach the Docker engine at unix://\(settings.socketPath)") == true, "\(call): \(String(describing: error))")
        }
    }
}
