import Foundation

/// CPU use between two samples of one process, in thousandths of one core.
struct CPUSampler: Hashable {
    private var last: (ticks: UInt64, at: ContinuousClock.Instant)?

    static func == (lhs: CPUSampler, rhs: CPUSampler) -> Bool { lhs.last?.ticks == rhs.last?.ticks && lhs.last?.at == rhs.last?.at }
    func hash(into hasher: inout Hasher) { hasher.combine(last?.ticks) }

    /// Records `ticks` (utime + stime) at `now`; returns the permille since the previous sample,
    /// nil on the first sample or when the counter went backwards (a different process).
    mutating func sample(ticks: UInt64, at now: ContinuousClock.Instant, ticksPerSecond: UInt64) -> Int? {
        defer { last = (ticks, now) }
        guard let last, ticks >= last.ticks else { return nil }
        let elapsed = now - last.at
        let elapsedMs = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        guard elapsedMs > 0 else { return nil }
        let cpuMs = (ticks - last.ticks) * 1000 / ticksPerSecond
        return Int(cpuMs * 1000 / UInt64(elapsedMs))
    }
}
