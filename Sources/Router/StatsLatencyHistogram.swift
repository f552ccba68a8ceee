/// Latency counts in fixed bins, so a tenant's p50/p99 costs a constant 16 counters whatever its
/// request rate (an array of samples would grow with load).
///
/// Bin `i` counts latencies `<= upperBoundsMs[i]` (and above the previous bound); the last bin
/// counts everything over 60 s. A quantile is reported as the upper bound of the bin that holds
/// it, so it over-states by at most the bin's width (e.g. a p99 of 180 ms reports as 250 ms);
/// quantiles in the last bin report `upperBoundsMs.last` (60,000 ms), meaning "at least a minute".
/// NGINX measures in whole milliseconds, hence 1 ms as the finest bound.
public struct StatsLatencyHistogram: Sendable, Hashable {
    /// Inclusive upper bounds of the bins, in milliseconds, ascending.
    public static let upperBoundsMs: [Int64] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000]
    /// The bins: one per bound plus one for everything above the last bound.
    public static let binCount = upperBoundsMs.count + 1

    /// Count per bin; always `binCount` long.
    public private(set) var counts: [Int]
    /// Samples recorded: the sum of `counts`.
    public private(set) var total: Int

    public init() {
        counts = Array(repeating: 0, count: Self.binCount)
        total = 0
    }

    /// Counts one latency, in milliseconds (negative values count as 0).
    public mutating func record(ms: Int64) {
        counts[Self.bin(ms: ms)] += 1
        total += 1
    }

    /// Adds `other`'s counts (merging the buckets of a window).
    public mutating func merge(_ other: StatsLatencyHistogram) {
        for bin in 0..<Self.binCount { counts[bin] += other.counts[bin] }
        total += other.total
    }

    /// The upper bound, in ms, of the bin holding the `quantile` (0...1) sample; nil when empty.
    public func quantileMs(_ quantile: Double) -> Int64? {
        precondition((0...1).contains(quantile), "quantile \(quantile) not in 0...1")
        guard total > 0 else { return nil }
        let rank = max(1, Int((quantile * Double(total)).rounded(.up)))
        var seen = 0
        for bin in 0..<Self.binCount {
            seen += counts[bin]
            if seen >= rank { return Self.upperBoundsMs[min(bin, Self.upperBoundsMs.count - 1)] }
        }
        preconditionFailure("histogram total \(total) exceeds its counts \(counts)")
    }

    static func bin(ms: Int64) -> Int {
        // Linear search: 15 bounds, and most requests land in the first few.
        for (bin, bound) in upperBoundsMs.enumerated() where ms <= bound { return bin }
        return upperBoundsMs.count
    }
}
