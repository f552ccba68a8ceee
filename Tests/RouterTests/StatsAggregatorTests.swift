import Foundation
import Testing

@testable import Router

/// The aggregator with synthetic records and explicit times: no clock, no sockets.
@Suite("StatsAggregator")
struct StatsAggregatorTests {
    static func record(
        _ tenant: String?, instance: String? = "i-1", status: Int = 200, upstreamMs: Int? = nil, bytes: Int64 = 100
    ) -> StatsRecord {
        StatsRecord(
            tenant: tenant, instance: instance, component: "web", status: status, requestTimeSeconds: 0.001,
            upstreamTimeSeconds: upstreamMs.map { Double($0) / 1000 }, bytes: bytes, timeMs: 0
        )
    }

    /// 10 buckets of 1 s: the window is 10 s.
    static let t0: Int64 = 1_795_663_250_000

    @Test func requestRateAndBytesPerSecondAreAveragedOverTheWindow() throws {
        var aggregator = StatsAggregator()
        for i in 0..<50 { aggregator.add(Self.record("acme", bytes: 1_000), nowMs: Self.t0 + Int64(i) * 190) }
        for i in 0..<20 { aggregator.add(Self.record("beta", bytes: 10), nowMs: Self.t0 + Int64(i) * 400) }
        let snapshot = aggregator.snapshot(nowMs: Self.t0 + 9_999)
        #expect(snapshot.windowSeconds == 10)
        #expect(snapshot.tenants.map(\.tenant) == ["acme", "beta"], "sorted by rate, busiest first")
        let acme = snapshot.tenants[0], beta = snapshot.tenants[1]
        #expect(acme.requests == 50 && acme.requestsPerSecond == 5 && acme.bytesPerSecond == 5_000)
        #expect(beta.requests == 20 && beta.requestsPerSecond == 2 && beta.bytesPerSecond == 20)
        #expect(snapshot.requests == 70)
    }

    @Test func errorRatesCountFiveHundredsAndFourHundredsSeparately() throws {
        var aggregator = StatsAggregator()
        let statuses = Array(repeating: 200, count: 12) + [404, 404, 429, 499, 500, 502, 503, 0]
        for status in statuses { aggregator.add(Self.record("acme", status: status), nowMs: Self.t0) }
        let acme = try #require(aggregator.snapshot(nowMs: Self.t0).tenants.first)
        #expect(acme.requests == 20)
        #expect(acme.status4xx == 4 && acme.status4xxShare == 0.2)
        #expect(acme.status5xx == 3 && acme.status5xxShare == 0.15)
    }

    @Test func upstreamLatencyQuantilesReportTheirBinsUpperBound() throws {
        var aggregator = StatsAggregator()
        for _ in 0..<98 { aggregator.add(Self.record("acme", upstreamMs: 3), nowMs: Self.t0) }
        for _ in 0..<2 { aggregator.add(Self.record("acme", upstreamMs: 700), nowMs: Self.t0) }
        for _ in 0..<5 { aggregator.add(Self.record("acme", upstreamMs: nil), nowMs: Self.t0) }
        aggregator.add(Self.record("beta", upstreamMs: nil), nowMs: Self.t0)
        let snapshot = aggregator.snapshot(nowMs: Self.t0)
        let acme = try #require(snapshot.tenants.first { $0.tenant == "acme" })
        #expect(acme.upstreamSamples == 100, "requests without an upstream are not latency samples")
        #expect(acme.upstreamP50Ms == 5, "3 ms lies in the (2, 5] bin")
        #expect(acme.upstreamP99Ms == 1_000, "the 99th of 100 samples is a 700 ms one: (500, 1000] bin")
        let beta = try #require(snapshot.tenants.first { $0.tenant == "beta" })
        #expect(beta.upstreamP50Ms == nil && beta.upstreamP99Ms == nil && beta.upstreamSamples == 0)
    }

    @Test func histogramBinsAreInclusiveUpperBounds() {
        #expect(StatsLatencyHistogram.bin(ms: -3) == 0)
        #expect(StatsLatencyHistogram.bin(ms: 1) == 0)
        #expect(StatsLatencyHistogram.bin(ms: 2) == 1)
        #expect(StatsLatencyHistogram.bin(ms: 60_000) == 14)
        #expect(StatsLatencyHistogram.bin(ms: 60_001) == 15)
        var histogram = StatsLatencyHistogram()
        #expect(histogram.quantileMs(0.5) == nil)
        histogram.record(ms: 3_600_000)
        #expect(histogram.quantileMs(0.99) == 60_000, "past the last bound reports the last bound")
        histogram.record(ms: 0)
        #expect(histogram.quantileMs(0) == 1 && histogram.quantileMs(0.5) == 1 && histogram.quantileMs(1) == 60_000)
        #expect(histogram.counts.count == StatsLatencyHistogram.binCount && histogram.total == 2)
    }

    @Test func bucketsExpireAsTheWindowSlides() throws {
        var aggregator = StatsAggregator()
        aggregator.add(Self.record("old"), nowMs: Self.t0 + 500)         // bucket t0
        aggregator.add(Self.record("mid"), nowMs: Self.t0 + 5_200)       // bucket t0+5 s
        aggregator.add(Self.record("new"), nowMs: Self.t0 + 9_900)       // bucket t0+9 s
        #expect(aggregator.snapshot(nowMs: Self.t0 + 9_999).tenants.map(\.tenant).sorted() == ["mid", "new", "old"])
        // At t0+10 s the window is (t0, t0+10 s]: the first bucket is out, in a snapshot too.
        #expect(aggregator.snapshot(nowMs: Self.t0 + 10_000).tenants.map(\.tenant).sorted() == ["mid", "new"])
        #expect(aggregator.snapshot(nowMs: Self.t0 + 19_999).tenants.isEmpty)
        // A snapshot does not change the aggregator; an add does: it clears what it passes.
        #expect(aggregator.trackedTenantCount == 3)
        aggregator.add(Self.record("later"), nowMs: Self.t0 + 15_000)
        #expect(aggregator.trackedTenantCount == 2, "old and mid are cleared, new is still in the window")
        aggregator.add(Self.record("later"), nowMs: Self.t0 + 1_000_000)
        #expect(aggregator.trackedTenantCount == 1)
        let snapshot = aggregator.snapshot(nowMs: Self.t0 + 1_000_000)
        #expect(snapshot.requests == 1 && snapshot.tenants.map(\.tenant) == ["later"])
    }

    @Test func aConfiguredWindowChangesRatesAndExpiry() throws {
        var aggregator = StatsAggregator(configuration: .init(bucketMs: 500, bucketCount: 4))  // 2 s
        for i in 0..<8 { aggregator.add(Self.record("acme"), nowMs: Self.t0 + Int64(i) * 250) }
        let snapshot = aggregator.snapshot(nowMs: Self.t0 + 1_999)
        #expect(snapshot.windowSeconds == 2)
        #expect(snapshot.tenants.first?.requestsPerSecond == 4)
        #expect(aggregator.snapshot(nowMs: Self.t0 + 2_500).tenants.first?.requests == 4)
    }

    @Test func timeGoingBackwardsCountsInTheNewestBucket() throws {
        var aggregator = StatsAggregator()
        aggregator.add(Self.record("acme"), nowMs: Self.t0 + 5_000)
        aggregator.add(Self.record("acme"), nowMs: Self.t0 - 60_000)  // the clock stepped back
        #expect(aggregator.snapshot(nowMs: Self.t0 + 5_000).tenants.first?.requests == 2)
        #expect(aggregator.snapshot(nowMs: Self.t0).tenants.first?.requests == 2, "snapshots never look before the head")
    }

    @Test func tenantsBeyondTheBoundCountAsOverflow() throws {
        var aggregator = StatsAggregator(configuration: .init(tenantsMax: 3))
        for tenant in ["t1", "t2", "t3", "t4", "t5"] {
            for _ in 0..<2 { aggregator.add(Self.record(tenant), nowMs: Self.t0) }
        }
        aggregator.add(Self.record("t1"), nowMs: Self.t0 + 1_000)  // tracked: counted in a new bucket
        var snapshot = aggregator.snapshot(nowMs: Self.t0 + 1_000)
        #expect(snapshot.tenants.map(\.tenant) == ["t1", "t2", "t3"])
        #expect(snapshot.tenants.first?.requests == 3)
        #expect(snapshot.overflowTenantRequests == 4)
        #expect(snapshot.requests == 11)
        #expect(aggregator.trackedTenantCount == 3)
        // Once the tracked tenants leave the window, newcomers are tracked.
        aggregator.add(Self.record("t5"), nowMs: Self.t0 + 20_000)
        snapshot = aggregator.snapshot(nowMs: Self.t0 + 20_000)
        #expect(snapshot.tenants.map(\.tenant) == ["t5"] && snapshot.overflowTenantRequests == 0)
    }

    @Test func tenFourThousandTenantsStayWithinTheDefaultBound() {
        var aggregator = StatsAggregator()
        for i in 0..<10_400 { aggregator.add(Self.record("t\(i)", instance: nil), nowMs: Self.t0) }
        let snapshot = aggregator.snapshot(nowMs: Self.t0)
        #expect(aggregator.trackedTenantCount == StatsAggregator.Configuration.tenantsMaxDefault)
        #expect(snapshot.tenants.count == 10_000 && snapshot.overflowTenantRequests == 400)
    }

    @Test func requestsWithoutATenantAreCountedButNotItemized() {
        var aggregator = StatsAggregator()
        aggregator.add(Self.record(nil), nowMs: Self.t0)
        aggregator.add(Self.record("acme"), nowMs: Self.t0)
        let snapshot = aggregator.snapshot(nowMs: Self.t0)
        #expect(snapshot.unattributedRequests == 1 && snapshot.requests == 2)
        #expect(snapshot.tenants.map(\.tenant) == ["acme"])
    }

    @Test func instancesGetRateAndP99AndTheirOwnBound() throws {
        var aggregator = StatsAggregator(configuration: .init(instancesMax: 2))
        for _ in 0..<30 { aggregator.add(Self.record("a", instance: "i-1", upstreamMs: 40), nowMs: Self.t0) }
        for _ in 0..<10 { aggregator.add(Self.record("b", instance: "i-2", upstreamMs: 4_000), nowMs: Self.t0) }
        for _ in 0..<5 { aggregator.add(Self.record("c", instance: "i-3", upstreamMs: 1), nowMs: Self.t0) }
        aggregator.add(Self.record("d", instance: nil), nowMs: Self.t0)
        let snapshot = aggregator.snapshot(nowMs: Self.t0)
        #expect(snapshot.instances.map(\.instance) == ["i-1", "i-2"])
        let first = snapshot.instances[0], second = snapshot.instances[1]
        #expect(first.requests == 30 && first.requestsPerSecond == 3 && first.upstreamP99Ms == 50)
        #expect(second.requests == 10 && second.upstreamP99Ms == 5_000)
        #expect(snapshot.overflowInstanceRequests == 5)
        #expect(snapshot.tenants.count == 4, "the instance bound does not limit tenants")
    }

    @Test func topTenantsAreTheBusiestWithTiesByName() {
        var aggregator = StatsAggregator()
        for (tenant, count) in [("c", 3), ("a", 5), ("b", 5), ("d", 1)] {
            for _ in 0..<count { aggregator.add(Self.record(tenant), nowMs: Self.t0) }
        }
        #expect(aggregator.topTenants(3, nowMs: Self.t0).map(\.tenant) == ["a", "b", "c"])
        #expect(aggregator.topTenants(0, nowMs: Self.t0).isEmpty)
        #expect(aggregator.snapshot(nowMs: Self.t0).topTenants(10).count == 4)
    }

    @Test func invalidAndDroppedCountsAreCumulative() {
        var aggregator = StatsAggregator()
        aggregator.countInvalid(.badJSON)
        aggregator.countInvalid(.badJSON)
        aggregator.countInvalid(.notSyslog)
        aggregator.countDropped(7)
        let snapshot = aggregator.snapshot(nowMs: Self.t0 + 1_000_000)
        #expect(snapshot.invalidDatagramsTotal == 3)
        #expect(snapshot.invalidDatagramsByKind == ["badJSON": 2, "notSyslog": 1])
        #expect(snapshot.droppedDatagramsTotal == 7)
    }

    @Test func snapshotsRoundTripThroughJSON() throws {
        var aggregator = StatsAggregator()
        aggregator.add(Self.record("acme", status: 503, upstreamMs: 12), nowMs: Self.t0)
        aggregator.add(Self.record("beta"), nowMs: Self.t0)
        aggregator.countInvalid(.missingKey)
        let snapshot = aggregator.snapshot(nowMs: Self.t0)
        let decoded = try JSONDecoder().decode(StatsSnapshot.self, from: JSONEncoder().encode(snapshot))
        #expect(decoded == snapshot)
    }
}
