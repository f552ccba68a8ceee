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
    /// nginx was told to load the config but `/generation` did not answer it within the
    /// confirmation timeout (e.g. a port of the new config is taken: `nginx -t` does not catch
    /// that, the reload fails and nginx keeps the old config). The previous `nginx.conf` was
    /// restored. `liveGeneration` is what the control server answered afterwards (nil: no
    /// answer); `errorLogTail` holds the `[emerg]`/`[alert]`/`[crit]` lines error.log gained
    /// during this attempt (at most `NginxRouter.errorLogTailLinesMax`).
    case reloadNotConfirmed(generation: UInt64, liveGeneration: UInt64?, errorLogTail: [String])
    /// `ensureRunning()` found no config to start nginx with.
    case noConfig(path: String)

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
        case .noConfig(let path): return "no config at \(path) to start nginx with"
        }
    }
}

/// A config that nginx confirmed live.
public struct AppliedConfig: Sendable, Hashable {
    public let generation: UInt64
    /// The nginx master's pid.
    public let pid: Int32
    /// True if nginx was started for this config, false if it was reloaded (SIGHUP).
    public let started: Bool
    /// Size of the rendered config, in bytes.
    public let configBytes: Int
    /// From writing the file to the control server answering the generation.
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
