import Logging
import PeerConfig
#if canImport(Glibc)
import Glibc
#endif

/// The process's open-file limit (RLIMIT_NOFILE). A peer needs one descriptor per connection
/// its limits admit; it raises its soft limit to that at start (any process may, up to the hard
/// limit) and refuses to start, with the numbers, when the hard limit is lower.
enum OpenFiles {
    static func limits() throws -> (soft: UInt64, hard: UInt64) {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            throw CLIError("cannot read the open-file limit (getrlimit): \(String(cString: strerror(errno)))")
        }
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }

    static func raise(toAtLeast needed: Int, logger: Logger) throws {
        let (soft, hard) = try limits()
        let want = UInt64(needed)
        if soft >= want { return }
        guard hard >= want else {
            throw CLIError("""
                this peer needs up to \(needed) open files (limits.api.connectionsMax, the members' admin and peer \
                connections, and \(ClusterConfig.Limits.openFilesReserve) for itself) but the hard limit is \(hard) (soft \(soft)); \
                raise it (systemd: LimitNOFILE=\(needed); shell: ulimit -Hn \(needed)) or lower limits.api.connectionsMax
                """)
        }
        var limit = rlimit(rlim_cur: rlim_t(want), rlim_max: rlim_t(hard))
        guard setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            throw CLIError("cannot raise the open-file limit from \(soft) to \(needed) (hard limit \(hard)): \(String(cString: strerror(errno)))")
        }
        logger.info("open-file limit raised from \(soft) to \(needed) (hard limit \(hard))")
    }
}
