import ArgumentParser
import ChildProcesses
import Foundation
import PeerAPI
import PeerConfig
#if canImport(Glibc)
import Glibc
#endif

/// `peer up --config FILE`: every peer of FILE that is not running, in the background.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start every peer of the configuration that is not already running, in the background (pid and log files in runDir); return once a leader exists.")

    @Option(help: "The cluster configuration file.")
    var config: String

    @Option(help: "Give up waiting for a leader after this many seconds.")
    var timeout: Int = 30

    @Option(name: .customLong("id"), help: "Start only this peer (repeat for several); default: every peer of the file.")
    var ids: [UInt64] = []

    @Flag(help: "Start them with `peer run --existing`: a peer with no log joins the running cluster (and waits for `peer members add`) instead of founding it.")
    var existing = false

    func run() async throws {
        guard timeout > 0 && timeout <= 3_600 else { throw ValidationError("--timeout must be 1...3600 seconds") }
        let configPath = URL(fileURLWithPath: config).standardizedFileURL.path
        let ctx = try ClusterContext(configPath: configPath)
        let cfg = ctx.config
        try FileManager.default.createDirectory(atPath: cfg.runDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for id in ids where cfg.peer(id: id) == nil {
            throw ValidationError("--id \(id): no such peer in \(config) (peers: \(cfg.peers.map { String($0.id) }.joined(separator: ", ")))")
        }
        var started: [UInt64: pid_t] = [:]
        for p in cfg.peers where ids.isEmpty || ids.contains(p.id) {
            let pidFile = cfg.pidFilePath(for: p.id)
            if let pid = PeerProcesses.runningPID(pidFile: pidFile, id: p.id) {
                print("peer \(p.id): already running (pid \(pid))")
                continue
            }
            let pid = try PeerProcesses.spawn(config: configPath, id: p.id, logFile: cfg.logFilePath(for: p.id), existing: existing)
            try "\(pid)\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
            started[p.id] = pid
            print("peer \(p.id): started (pid \(pid)), log \(cfg.logFilePath(for: p.id))")
        }
        let deadline = ContinuousClock.now + .seconds(timeout)
        var last: [(ClusterConfig.Peer, Result<MemberStatus, CLIError>)] = []
        while ContinuousClock.now < deadline {
            for (id, pid) in started {
                if let how = ChildProcess.reapIfExited(pid) {
                    try? FileManager.default.removeItem(atPath: cfg.pidFilePath(for: id))
                    throw CLIError("peer \(id) (pid \(pid)) exited (\(how)) before a leader was elected; its log ends:\n\(PeerProcesses.tail(cfg.logFilePath(for: id)))")
                }
            }
            last = await ctx.memberStatuses(consistent: false, timeoutMillis: 1_000)
            let up = last.compactMap { try? $0.1.get() }
            // A leader that a majority of its own voters follow (the file's peers, or fewer after
            // `peer recover` or a removal).
            if let leader = up.first(where: { $0.state == "leader" }),
               up.filter({ $0.leader == leader.id && leader.voters.contains($0.id) }).count * 2 > leader.voters.count {
                print("leader: peer \(leader.id) (term \(leader.term)); \(up.count)/\(cfg.peers.count) members answering")
                return
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        var why = "no leader within \(timeout) s:"
        for (p, r) in last {
            switch r {
            case .success(let s): why += "\n  peer \(p.id): \(s.state), term \(s.term), leader \(s.leader.map(String.init) ?? "none")"
            case .failure(let e): why += "\n  peer \(p.id): \(e)"
            }
        }
        throw CLIError(why)
    }
}
