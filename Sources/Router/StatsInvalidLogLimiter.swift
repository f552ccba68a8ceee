/// Decides which refused datagrams get a log line: the first of each `StatsParseError.Kind`, then
/// at most one per kind per `intervalMs`, reporting how many were suppressed in between. A
/// misconfigured or hostile sender can then flood the socket without flooding the log.
/// Pure: the caller passes `nowMs`.
struct StatsInvalidLogLimiter: Sendable {
    /// Least time between two log lines of the same kind, in milliseconds.
    static let intervalMs: Int64 = 60_000

    private var lastLoggedMs: [StatsParseError.Kind: Int64] = [:]
    private var suppressed: [StatsParseError.Kind: Int] = [:]

    /// If a failure of `kind` at `nowMs` should be logged, the number of same-kind failures
    /// suppressed since the last line (0 for the first); nil if it should not be logged.
    mutating func admit(_ kind: StatsParseError.Kind, nowMs: Int64) -> Int? {
        if let last = lastLoggedMs[kind], nowMs - last < Self.intervalMs, nowMs >= last {
            suppressed[kind, default: 0] += 1
            return nil
        }
        lastLoggedMs[kind] = nowMs
        return suppressed.removeValue(forKey: kind) ?? 0
    }
}
