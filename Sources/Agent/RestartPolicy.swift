/// The pure restart decision after an unexpected exit: exponential backoff, and a crash loop
/// after too many crashes in a window (like systemd's `StartLimitBurst`/`StartLimitIntervalSec`).
/// Time is an input, so it is tested without processes or clocks.
struct RestartPolicy: Sendable, Hashable {
    /// The crash history keeps at most this many instants (the loop limit cannot exceed it).
    static let crashesRememberedMax = 64

    var backoffInitial: Duration
    var backoffMax: Duration
    var crashLoopLimit: Int
    var crashWindow: Duration

    enum Decision: Hashable {
        case restart(after: Duration)
        case crashLoop
    }

    /// Crash instants within the window, oldest first; at most `crashesRememberedMax`.
    struct History: Sendable, Hashable {
        private(set) var crashes: [ContinuousClock.Instant] = []

        mutating func record(_ now: ContinuousClock.Instant, window: Duration) {
            crashes.removeAll { now - $0 >= window }
            crashes.append(now)
            if crashes.count > RestartPolicy.crashesRememberedMax { crashes.removeFirst(crashes.count - RestartPolicy.crashesRememberedMax) }
        }

        mutating func clear() { crashes.removeAll() }
    }

    /// Records a crash at `now` and decides: the n-th crash within the window waits
    /// `backoffInitial * 2^(n-1)` (capped at `backoffMax`); the `crashLoopLimit`-th stops restarts.
    func decide(afterCrashAt now: ContinuousClock.Instant, history: inout History) -> Decision {
        history.record(now, window: crashWindow)
        let crashes = history.crashes.count
        if crashes >= crashLoopLimit { return .crashLoop }
        return .restart(after: backoff(forCrash: crashes))
    }

    /// The delay after the n-th crash in the window (n >= 1).
    func backoff(forCrash n: Int) -> Duration {
        precondition(n >= 1, "crash ordinal must be >= 1, got \(n)")
        var delay = backoffInitial
        for _ in 1..<n {
            delay = delay * 2
            if delay >= backoffMax { return backoffMax }
        }
        return min(delay, backoffMax)
    }
}
