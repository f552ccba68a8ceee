import Controller
@testable import Leader
import Logging
import Synchronization
import Testing

/// The failure detector in the leader's data-plane watch: a member is lost once the leader has
/// had neither its report nor any answer for `instanceLostAfterMs`, counted from the leader's
/// first poll of its term for a member never heard (issue 19, item 4).
@Suite struct FailureDetectorTests {
    final class Scripted: LeaderClock {
        let now = Atomic<Int64>(1_800_000_000_000)

        func nowMs() -> Int64 { now.load(ordering: .relaxed) }
        /// The tests call the watch's rounds themselves; nothing sleeps.
        func sleep(millis: Int) async {}
        /// Members that do not answer.
        let silent = Mutex<Set<UInt64>>([])
        /// The members now: instances join while a leader leads.
        let members = Mutex<[UInt64: DataPlaneWatch.Member]>([
            1: .init(supervised: true, routed: true), 2: .init(supervised: false, routed: false), 3: .init(supervised: false, routed: false),
        ])

        func poll(_ id: UInt64) -> DataPlaneWatch.PollAnswer? {
            if silent.withLock({ $0.contains(id) }) { return nil }
            return id == 1 ? .report(.init(servingTenants: [], routerConfirmedIndex: nil)) : .answeredWithoutReport
        }
    }

    func watch(_ s: Scripted) -> DataPlaneWatch {
        DataPlaneWatch(
            members: { s.members.withLock { $0 } },
            poll: { id, _ in s.poll(id) }, instanceLostAfterMs: 5_000, logger: Logger(label: "test"), clock: s)
    }

    @Test func aMemberSilentForTheThresholdIsLostAndOneThatAnswersWithoutAReportIsNot() async {
        let s = Scripted()
        let w = watch(s)
        let start = s.now.load(ordering: .relaxed)
        #expect(w.liveness(nowMs: start + 60_000, term: 7) == .allLive, "before its first poll a leader knows nothing: nobody is lost")
        s.silent.withLock { $0 = [3] }
        await w.poll(term: 7)
        // Member 3 has never answered: counted from the term's first poll.
        #expect(w.liveness(nowMs: start + 4_999, term: 7).lost.isEmpty)
        s.now.store(start + 4_900, ordering: .relaxed)
        await w.poll(term: 7)
        let lost = w.liveness(nowMs: start + 5_000, term: 7).lost
        #expect(Set(lost.keys) == ["3"], "\(lost)")
        #expect(lost["3"] == "no report or answer from it for 5000 ms (timing.instanceLostAfterMs 5000)")
        // 1 (a report) and 2 (an answer without one) keep answering: alive; 3 comes back: alive.
        s.now.store(start + 6_000, ordering: .relaxed)
        await w.poll(term: 7)
        #expect(Set(w.liveness(nowMs: start + 6_100, term: 7).lost.keys) == ["3"])
        s.silent.withLock { $0 = [] }
        s.now.store(start + 6_200, ordering: .relaxed)
        await w.poll(term: 7)
        #expect(w.liveness(nowMs: start + 6_300, term: 7).lost.isEmpty)
        // Now 2 goes silent: lost 5 s after its last answer, not before.
        s.silent.withLock { $0 = [2] }
        s.now.store(start + 8_000, ordering: .relaxed)
        await w.poll(term: 7)
        #expect(w.liveness(nowMs: start + 11_199, term: 7).lost.isEmpty)
        #expect(Set(w.liveness(nowMs: start + 11_200, term: 7).lost.keys) == ["2"])
    }

    @Test func aNewTermGivesEveryMemberTheWholeThresholdAgain() async {
        let s = Scripted()
        let w = watch(s)
        let start = s.now.load(ordering: .relaxed)
        s.silent.withLock { $0 = [2] }
        await w.poll(term: 1)
        s.now.store(start + 4_900, ordering: .relaxed)
        await w.poll(term: 1)
        #expect(Set(w.liveness(nowMs: start + 5_000, term: 1).lost.keys) == ["2"])
        // This peer leads again in a later term: what it heard before no longer counts.
        s.now.store(start + 20_000, ordering: .relaxed)
        await w.poll(term: 2)
        #expect(w.liveness(nowMs: start + 24_999, term: 2).lost.isEmpty)
        s.now.store(start + 24_900, ordering: .relaxed)
        await w.poll(term: 2)
        #expect(Set(w.liveness(nowMs: start + 25_000, term: 2).lost.keys) == ["2"])
        // Asked for another term than the one it watched, it knows nothing.
        #expect(w.liveness(nowMs: start + 25_000, term: 1) == .allLive)
    }

    @Test func aMemberThatJoinsDuringATermGetsTheWholeThresholdFromItsFirstPoll() async {
        let s = Scripted()
        let w = watch(s)
        let start = s.now.load(ordering: .relaxed)
        await w.poll(term: 3)
        // Instance 4 is added 60 s into the term and never answers.
        s.now.store(start + 60_000, ordering: .relaxed)
        s.members.withLock { $0[4] = .init(supervised: true, routed: true) }
        s.silent.withLock { $0 = [4] }
        #expect(w.liveness(nowMs: start + 60_000, term: 3).lost["4"] == nil, "not polled yet: not judged")
        await w.poll(term: 3)
        #expect(w.liveness(nowMs: start + 64_999, term: 3).lost["4"] == nil, "counted from its first poll, not from the term's")
        s.now.store(start + 64_000, ordering: .relaxed)
        await w.poll(term: 3)
        #expect(Set(w.liveness(nowMs: start + 65_000, term: 3).lost.keys) == ["4"])
        // Removed from the membership: no longer judged at all.
        s.members.withLock { _ = $0.removeValue(forKey: 4) }
        #expect(w.liveness(nowMs: start + 90_000, term: 3).lost.keys.contains("4") == false)
    }
}
