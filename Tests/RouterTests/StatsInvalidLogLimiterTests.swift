import Testing

@testable import Router

@Suite("StatsInvalidLogLimiter")
struct StatsInvalidLogLimiterTests {
    @Test func logsTheFirstOfEachKindThenAtMostOncePerMinute() {
        var limiter = StatsInvalidLogLimiter()
        let t0: Int64 = 1_000_000
        #expect(limiter.admit(.badJSON, nowMs: t0) == 0, "the first of a kind is logged")
        #expect(limiter.admit(.notSyslog, nowMs: t0 + 1) == 0, "kinds are limited separately")
        for i in 1...5 { #expect(limiter.admit(.badJSON, nowMs: t0 + Int64(i) * 10_000) == nil) }
        #expect(limiter.admit(.badJSON, nowMs: t0 + StatsInvalidLogLimiter.intervalMs - 1) == nil)
        #expect(limiter.admit(.badJSON, nowMs: t0 + StatsInvalidLogLimiter.intervalMs) == 6, "a minute later, with the count suppressed")
        #expect(limiter.admit(.badJSON, nowMs: t0 + StatsInvalidLogLimiter.intervalMs + 1) == nil)
        #expect(limiter.admit(.badJSON, nowMs: t0 - 5_000) == 1, "a clock stepped back does not silence a kind")
    }
}
