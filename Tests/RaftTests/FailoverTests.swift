import Raft
import Testing

/// What the transport tells the core: a lost connection to the leader (fast failover, made safe
/// by pre-vote and the leader lease) and an unreachable follower.
@Suite struct FailoverTests {
    @Test func leaderConnectionLostWhileTheLeaderLivesChangesNothingForTheOthers_9_6() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        // Only 2's link to the leader broke; the leader still reaches 3.
        c.cut.formUnion([[1, 2], [2, 1]])
        c.nodes[2]!.leaderConnectionLost()
        c.deliverAll()
        #expect(c.nodes[2]!.term == 1, "a pre-vote never raises the term")
        #expect(c.nodes[3]!.term == 1 && c.nodes[3]!.leader == 1, "3 is in its lease: it refused the pre-vote")
        #expect(c.nodes[1]!.role == .leader && c.nodes[1]!.term == 1)
        // The link comes back: 2 follows the same leader again.
        c.heal()
        c.tickAll(times: 2)
        #expect(c.nodes[2]!.leader == 1 && c.nodes[2]!.term == 1)
        try c.nodes[1]!.propose([5])
        c.deliverAll()
        #expect(c.payloads(2) == [[5]])
    }

    @Test func whenTheLeaderDiedBothFollowersElectANewLeaderWithinTwoTicks() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.isolate(1)  // the leader's process is gone
        c.nodes[2]!.leaderConnectionLost()
        c.nodes[3]!.leaderConnectionLost()
        c.deliverAll()
        var ticks = 0
        while ![NodeID(2), 3].contains(where: { c.nodes[$0]!.role == .leader }) && ticks < 2 {
            c.tick(2)
            c.tick(3)
            c.deliverAll()
            ticks += 1
        }
        let leader = try #require([NodeID(2), 3].first { c.nodes[$0]!.role == .leader }, "no leader after \(ticks) ticks")
        #expect(c.nodes[leader]!.term == 2, "one election, no split vote")
        try c.nodes[leader]!.propose([1])
        c.deliverAll()
        #expect(c.payloads(2) == [[1]] && c.payloads(3) == [[1]])
    }

    @Test func withoutTheLeaderLostCallTheFollowersWaitAnElectionTimeout() {
        // The contrast: the same failure found only by the election timer takes 10+ ticks.
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.isolate(1)
        var ticks = 0
        while ![NodeID(2), 3].contains(where: { c.nodes[$0]!.role == .leader }) && ticks < 100 {
            c.tick(2)
            c.tick(3)
            c.deliverAll()
            ticks += 1
        }
        #expect(ticks >= 10)
    }

    @Test func leaderConnectionLostIsIgnoredByTheLeaderAndByANodeWithoutLeader() {
        var c = TestCluster(ids: [1, 2, 3])
        c.nodes[2]!.leaderConnectionLost()  // no leader known: nothing to forget
        #expect(c.nodes[2]!.role == .follower && c.nodes[2]!.counters.preVotesStarted == 0)
        c.elect(1)
        c.nodes[1]!.leaderConnectionLost()
        #expect(c.nodes[1]!.role == .leader)
    }
}
