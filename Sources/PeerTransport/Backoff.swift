/// Reconnect delays: exponential from `initialMs` to `maxMs`, with "equal jitter" (half fixed,
/// half random) so peers that lost a leader together do not redial in lockstep, while a delay is
/// never shorter than half its nominal value. Pure: the random source is passed in.
public struct Backoff: Sendable, Hashable {
    public var initialMs: Int64
    public var maxMs: Int64

    public init(initialMs: Int64 = 100, maxMs: Int64 = 5_000) {
        precondition(initialMs > 0 && maxMs >= initialMs, "backoff \(initialMs)...\(maxMs) ms is not a range")
        self.initialMs = initialMs
        self.maxMs = maxMs
    }

    /// Delay before attempt number `attempt` (1 = first retry).
    public func delayMs(attempt: Int, using rng: inout some RandomNumberGenerator) -> Int64 {
        let nominal = nominalMs(attempt: attempt)
        let half = nominal / 2
        return half + Int64.random(in: 0...(nominal - half), using: &rng)
    }

    /// The un-jittered delay: initialMs * 2^(attempt-1), capped at maxMs.
    public func nominalMs(attempt: Int) -> Int64 {
        let shift = Swift.min(Swift.max(attempt - 1, 0), 30)
        let (value, overflow) = initialMs.multipliedReportingOverflow(by: Int64(1) << shift)
        return overflow ? maxMs : Swift.min(value, maxMs)
    }
}
