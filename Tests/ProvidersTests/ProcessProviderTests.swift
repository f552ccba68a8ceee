import ChildProcesses
import Foundation
import Providers
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The process provider: instances are processes on this host, known from files under its
/// directory. Ports 32100-32299 (below the ephemeral range, apart from the process tests').
@Suite struct ProcessProviderTests {
    static func provider(directory: String, range: ClosedRange<Int> = 32100...32199, command: [String]? = nil) throws -> ProcessProvider {
        let tenantApp = try Paths.productDirectory() + "/tenant-app"
        var settings = ProcessProvider.Settings(
            directory: directory, ports: try PortPlan(host: "127.0.0.1", range: range, componentPorts: 3),
            command: try CommandTemplate(command ?? Workload.argv(tenantApp: tenantApp)))
        settings.stopTimeout = .seconds(5)
        return ProcessProvider(settings)
    }

    @Test func keepsTheProviderContract() async throws {
        let dir = try Paths.temporaryDirectory("process")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await runContract(cluster: "contract", makeProvider: { try Self.provider(directory: dir) }) { instance in
            let pid = try #require(Int32(instance.handle.dropFirst("pid ".count)))
            ChildProcess.signalProcess(pid, SIGKILL)
        }
        // Nothing left: no instance directory (their data lived there), no process.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/contract")) ?? []
        #expect(left.isEmpty, "left behind: \(left)")
    }

    @Test func anExhaustedPortRangeIsAClearErrorAndHoldsNothing() async throws {
        let dir = try Paths.temporaryDirectory("process-ports")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // One block of 7 ports: room for exactly one instance.
        let provider = try Self.provider(directory: dir, range: 32200...32206)
        let first = try await provider.create(ProvisionRequest(clusterID: "ports", instanceID: "1", bootstrap: ["tenants": "acme\n"]))
        let error = await #expect(throws: ProviderError.self) {
            try await provider.create(ProvisionRequest(clusterID: "ports", instanceID: "2", bootstrap: ["tenants": "acme\n"]))
        }
        #expect(error?.reason == .portsExhausted)
        #expect(error?.description.contains("no free block of 7 ports in 32200-32206") == true, "\(String(describing: error))")
        #expect(try await provider.list(clusterID: "ports").map(\.instanceID) == ["1"], "the failed create left no record")
        try await provider.destroy(clusterID: "ports", instanceID: "1")
        try await Workload.waitGone(first)
        // The freed block is free again.
        let second = try await provider.create(ProvisionRequest(clusterID: "ports", instanceID: "2", bootstrap: ["tenants": "acme\n"]))
        #expect(second.addresses == first.addresses)
        try await provider.destroy(clusterID: "ports", instanceID: "2")
    }

    @Test func aProgramThatCannotStartIsNamedAndItsPortsAreFreedByDestroy() async throws {
        let dir = try Paths.temporaryDirectory("process-missing")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let provider = try Self.provider(directory: dir, range: 32210...32239, command: ["/nonexistent/peer", "run", "--bootstrap", "{bootstrap}"])
        let error = await #expect(throws: ProviderError.self) {
            try await provider.create(ProvisionRequest(clusterID: "missing", instanceID: "1"))
        }
        #expect(error?.reason == .unavailable)
        #expect(error?.description.contains("cannot start /nonexistent/peer") == true, "\(String(describing: error))")
        // Its ports stay reserved for a retry; the instance is listed as stopped until destroyed.
        #expect(try await provider.list(clusterID: "missing").map(\.state) == [.stopped])
        try await provider.destroy(clusterID: "missing", instanceID: "1")
        #expect(try await provider.list(clusterID: "missing").isEmpty)
    }

    @Test func aRestartRunsAnotherProgramOnTheSameDirectoryAndAddressesAndLaterStartsKeepIt() async throws {
        let dir = try Paths.temporaryDirectory("process-restart")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let provider = try Self.provider(directory: dir, range: 32260...32279)
        let first = try await provider.create(ProvisionRequest(clusterID: "up", instanceID: "1", bootstrap: ["tenants": "acme\n"]))
        try await Workload.waitServing(first, tenant: "acme")
        // "The new release": a program that notes its arguments, then runs the same workload.
        let marker = dir + "/new-release-ran"
        let newRelease = dir + "/new-release"
        try "#!/bin/sh\necho \"$@\" > \(marker)\nexec \(try Paths.productDirectory())/tenant-app \"$@\"\n".write(toFile: newRelease, atomically: true, encoding: .utf8)
        chmod(newRelease, 0o755)

        let second = try await provider.restart(clusterID: "up", instanceID: "1", executable: newRelease)
        #expect(second.addresses == first.addresses && second.handle != first.handle, "\(first.handle) -> \(second.handle)")
        let oldPID = try #require(Int32(first.handle.dropFirst("pid ".count)))
        #expect(kill(oldPID, 0) != 0, "the old process is gone")
        try await Workload.waitServing(second, tenant: "acme")
        #expect(FileManager.default.fileExists(atPath: marker), "the new program ran")

        // Killed, it is started again by create (as the provisioner does) with the new program.
        try FileManager.default.removeItem(atPath: marker)
        ChildProcess.signalProcess(try #require(Int32(second.handle.dropFirst("pid ".count))), SIGKILL)
        let deadline = ContinuousClock.now + .seconds(10)
        while try await provider.list(clusterID: "up").first?.state != .stopped, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let third = try await provider.create(ProvisionRequest(clusterID: "up", instanceID: "1", bootstrap: ["tenants": "acme\n"]))
        try await Workload.waitServing(third, tenant: "acme")
        #expect(FileManager.default.fileExists(atPath: marker), "a later start keeps the new program")

        for (executable, id, reason) in [("new-release", "1", ProviderError.Reason.invalidRequest), (newRelease, "2", .refused)] {
            let error = await #expect(throws: ProviderError.self) { try await provider.restart(clusterID: "up", instanceID: id, executable: executable) }
            #expect(error?.reason == reason, "\(executable) \(id): \(String(describing: error))")
        }
        try await provider.destroy(clusterID: "up", instanceID: "1")
        try await Workload.waitGone(third)
    }

    @Test func badRequestsAreRefusedBeforeAnythingHappens() async throws {
        let dir = try Paths.temporaryDirectory("process-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let provider = try Self.provider(directory: dir, range: 32240...32259)
        for request in [
            ProvisionRequest(clusterID: "Bad Cluster", instanceID: "1"),
            ProvisionRequest(clusterID: "ok", instanceID: "../escape"),
            ProvisionRequest(clusterID: "ok", instanceID: "1", bootstrap: ["../ca.pem": "x"]),
            ProvisionRequest(clusterID: "ok", instanceID: "1", bootstrap: ["big": String(repeating: "x", count: Bootstrap.bytesMax + 1)]),
        ] {
            let error = await #expect(throws: ProviderError.self) { try await provider.create(request) }
            #expect(error?.reason == .invalidRequest, "\(request.instanceID): \(String(describing: error))")
        }
        #expect(throws: ProviderError.self) { try CommandTemplate(["peer", "{nope}"]) }
        #expect(throws: ProviderError.self) { try PortPlan(host: "0.0.0.0", range: 32000...32100, componentPorts: 3) }
        #expect(throws: ProviderError.self) { try PortPlan(host: "127.0.0.1", range: 32000...32002, componentPorts: 3) }
        #expect(try await provider.list(clusterID: "ok").isEmpty)
    }
}
