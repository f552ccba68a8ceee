import ArgumentParser
import Foundation
import PeerAPI
import PeerConfig
#if canImport(Glibc)
import Glibc
#endif

/// `peer down --config FILE`: stop the peers `peer up` started, gracefully.
struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop every running peer of the configuration gracefully (SIGTERM), waiting for each to exit.")

    @Option(help: "The cluster configuration file.")
    var config: String

    @Option(help: "Seconds to wait for a peer to exit after SIGTERM.")
    var timeout: Int = 20

    @Flag(help: "SIGKILL a peer that has not exited after --timeout.")
    var force = false

    @Option(name: .customLong("id"), help: "Stop only this peer (repeat for several); default: every peer of the file.")
    var ids: [UInt64] = []

    func run() async throws {
        guard timeout > 0 && timeout <= 3_600 else { throw ValidationError("--timeout must be 1...3600 seconds") }
        let cfg: ClusterConfig
        do { cfg = try ClusterConfig.load(path: config) } catch { throw CLIError("\(error)") }
        for id in ids where cfg.peer(id: id) == nil { throw ValidationError("--id \(id): no such peer in \(config)") }
        var stopping: [(UInt64, pid_t)] = []
        for p in cfg.peers where ids.isEmpty || ids.contains(p.id) {
            let pidFile = cfg.pidFilePath(for: p.id)
            guard let pid = PeerProcesses.runningPID(pidFile: pidFile, id: p.id) else {
                if FileManager.default.fileExists(atPath: pidFile) { try? FileManager.default.removeItem(atPath: pidFile) }
                print("peer \(p.id): not running")
                continue
            }
            kill(pid, SIGTERM)
            stopping.append((p.id, pid))
        }
        let deadline = ContinuousClock.now + .seconds(timeout)
        while !stopping.isEmpty && ContinuousClock.now < deadline {
            stopping.removeAll { id, pid in
                if PeerProcesses.isPeer(pid: pid, id: id) && PeerProcesses.alive(pid) { return false }
                try? FileManager.default.removeItem(atPath: cfg.pidFilePath(for: id))
                print("peer \(id): stopped (pid \(pid))")
                return true
            }
            if !stopping.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        }
        guard !stopping.isEmpty else { return }
        if force {
            for (id, pid) in stopping {
                kill(pid, SIGKILL)
                try? FileManager.default.removeItem(atPath: cfg.pidFilePath(for: id))
                print("peer \(id): killed (pid \(pid)) after \(timeout) s")
            }
            return
        }
        throw CLIError("still running after \(timeout) s: " + stopping.map { "peer \($0.0) (pid \($0.1))" }.joined(separator: ", ") + "; see their logs, or use --force")
    }
}
