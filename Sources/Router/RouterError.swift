/// Why `NginxRouter` could not make a config live. In every case the `nginx.conf` on disk is
/// the config nginx runs (or none, if nginx never started).
public enum RouterError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The spec was refused before anything was written (`RouterSpec.validate()`).
    case invalidSpec(RouterSpecError)
    /// The spec's prefix is not this router's prefix.
    case prefixMismatch(router: String, spec: String)
    /// A file operation in the prefix failed.
    case io(operation: String, path: String, errno: Int32)
    /// nginx (or the launcher) could not be started.
    case spawnFailed(program: String, errno: Int32)
    /// `nginx -t` refused the rendered config; the live config is untouched. `nginxSaid` is
    /// its stderr (at most `NginxRouter.nginxOutputBytesMax` bytes).
    case invalidConfig(generation: UInt64, nginxSaid: String)
    /// nginx was told to load the config but `/config` did not answer its generation within the
    /// confirmation timeout (e.g. a port of the new config is taken: `nginx -t` does not catch
    /// that, the reload fails and nginx keeps the old config). The previous `nginx.conf` was
    /// restored. `liveGeneration` is what the control server answered afterwards (nil: no
    /// answer); `errorLogTail` holds the `[emerg]`/`[alert]`/`[crit]` lines error.log gained
    /// during this attempt (at most `NginxRouter.errorLogTailLinesMax`).
    case reloadNotConfirmed(generation: UInt64, liveGeneration: UInt64?, errorLogTail: [String])
    /// `ensureRunning()` found no config to start nginx with.
    case noConfig(path: String)
    /// The route table update (`POST /routes`) failed: `reason` is the control server's
    /// answer (e.g. the table is full: raise `router.routeTableMiB`) or why there was none.
    /// Routes already in the table keep serving; the next apply sends the whole table.
    case routesNotApplied(generation: UInt64, reason: String)

    public var description: String {
        switch self {
        case .invalidSpec(let error): return error.description
        case .prefixMismatch(let router, let spec): return "spec prefix \(spec) is not the router's prefix \(router)"
        case .io(let operation, let path, let code): return "\(operation) \(path) failed: errno \(code) (\(errnoName(code)))"
        case .spawnFailed(let program, let code): return "cannot start \(program): errno \(code) (\(errnoName(code)))"
        case .invalidConfig(let generation, let said): return "nginx refused the config of generation \(generation): \(said)"
        case .reloadNotConfirmed(let generation, let live, let tail):
            let liveText = live.map { "generation \($0) is live" } ?? "no generation answered"
            return "nginx did not confirm generation \(generation) (\(liveText)); error.log: \(tail.isEmpty ? "nothing" : tail.joined(separator: " | "))"
        case .routesNotApplied(let generation, let reason): return "nginx did not take the routes of generation \(generation): \(reason)"
        case .noConfig(let path): return "no config at \(path) to start nginx with"
        }
    }
}

/// A config that nginx confirmed live.
public struct AppliedConfig: Sendable, Hashable {
    public let generation: UInt64
    /// The nginx master's pid.
    public let pid: Int32
    /// True if nginx was started for this config, false if it ran already.
    public let started: Bool
    /// True if the config changed (nginx was started or reloaded); false if only the route
    /// table did, which is the case for every tenant change (create, delete, move, plan).
    public let configChanged: Bool
    /// Route table entries set or deleted by this apply, and whether the whole table was sent.
    public let routeChanges: Int
    public let fullRouteTable: Bool
    /// Size of the live config, in bytes.
    public let configBytes: Int
    /// From the start of the apply to nginx confirming the config (if it changed) and the routes.
    public let confirmDuration: Duration
}

/// What `NginxRouter` knows about its nginx.
public struct RouterStatus: Sendable, Hashable {
    /// The running nginx master, nil if none.
    public let pid: Int32?
    /// The last generation the control server confirmed, nil before the first.
    public let liveGeneration: UInt64?
    /// The last failure (apply, or the master's unexpected exit); nil after a success.
    public let lastError: String?
}

func errnoName(_ code: Int32) -> String {
    #if canImport(Glibc)
    guard let text = strerror(code) else { return "unknown" }
    return String(cString: text)
    #else
    return "errno"
    #endif
}

#if canImport(Glibc)
import Glibc
#endif
