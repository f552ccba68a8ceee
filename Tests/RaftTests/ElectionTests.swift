import Raft
import Testing

/// Leader election: Raft paper §5.2, §5.4.1; thesis §4.2.3 (disruptive servers), §6.2 (check-quorum), §9.6 (pre-vote).
@Suite struct ElectionTests {
    @Test func followerCampaignsAfterRandomizedElectionTimeout() {
        var c = TestCluster(ids: [1, 2, 3])
        // Election timeout is 10 ticks, randomized in [10, 20): nobody campaigns before 10 ticks.
        c.tickAll(times: 9)
        #expect(c.nodes.values.allSatisfy { $0.role == .follower })
        c.tickAll(times: 11)
        let leaders = c.nodes.values.filter { $0.role == .leader }
        #expect(leaders.count == 1)
        #expect(leaders.first?.term == 1, "pre-vote round must not consume a term")
    }

    @Test func candidateWinsWithMajorityOfVotes_5_2() {
        var c = TestCluster(ids: [1, 2, 3, 4, 5])
        c.isolate(4)
        c.isolate(5)
        c.elect(1)  // 1, 2, 3 form a majority of 5.
        #expect(c.nodes[1]!.term == 1)
        #expect(c.nodes[2]!.leader == 1 && c.nodes[3]!.leader == 1)
    }

    @Test func candidateWithoutMajorityDoesNotWin_5_2() {
        var c = TestCluster(ids: [1, 2, 3, 4, 5]) { $0.preVote = false }
        c.isolate(3); c.isolate(4); c.isolate(5)
        c.nodes[1]!.campaign()
        c.deliverAll()
        #expect(c.nodes[1]!.role == .candidate)
    }

    @Test func voterGrantsAtMostOneVotePerTerm_5_2() {
        var s = Solo(id: 3) { $0.preVote = false }
        var out = s.answer(Message(kind: .vote, from: 1, to: 3, term: 1, logTerm: 0, index: 0))
        #expect(out.count == 1 && out[0].kind == .voteResponse && !out[0].reject)
        #expect(s.disk.hardState.vote == 1, "the vote is durable before the response leaves")
        out = s.answer(Message(kind: .vote, from: 2, to: 3, term: 1, logTerm: 0, index: 0))
        #expect(out.count == 1 && out[0].reject, "second candidate of the same term is refused")
        // The first candidate asking again (its response was lost) gets the same answer.
        out = s.answer(Message(kind: .vote, from: 1, to: 3, term: 1, logTerm: 0, index: 0))
        #expect(out.count == 1 && !out[0].reject)
    }

    @Test func voteRefusedToCandidateWithLessUpToDateLog_5_4_1() {
        // Voter's log: terms [1, 2]. Candidate's last entry is (index 5, term 1): older term loses.
        var s = Solo(id: 3, log: entries([1, 2]), hardState: HardState(term: 2)) { $0.preVote = false }
        var out = s.answer(Message(kind: .vote, from: 1, to: 3, term: 3, logTerm: 1, index: 5))
        #expect(out.first?.reject == true)
        // Same last term but shorter log loses too.
        out = s.answer(Message(kind: .vote, from: 2, to: 3, term: 4, logTerm: 2, index: 1))
        #expect(out.first?.reject == true)
        // Same last term and at least as long wins.
        out = s.answer(Message(kind: .vote, from: 2, to: 3, term: 5, logTerm: 2, index: 2))
        #expect(out.first?.reject == false)
    }

    @Test func preVoteDoesNotIncrementTermOfPartitionedNode_9_6() {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.isolate(3)
        for _ in 0..<100 { c.tick(3) }
        c.deliverAll()
        #expect(c.nodes[3]!.term == 1, "an isolated node keeps pre-campaigning without raising its term")
        #expect(c.nodes[3]!.role == .preCandidate)
        c.heal()
        c.tickAll(times: 3)
        #expect(c.nodes[1]!.role == .leader && c.nodes[1]!.term == 1, "the returning node does not disrupt the leader")
        #expect(c.nodes[3]!.leader == 1)
    }

    @Test func withoutPreVoteAReturningNodeDisruptsTheTerm() {
        // The contrast that shows what pre-vote buys: the same scenario raises terms.
        var c = TestCluster(ids: [1, 2, 3]) { $0.preVote = false; $0.checkQuorum = false }
        c.elect(1)
        c.isolate(3)
        for _ in 0..<100 { c.tick(3) }
        c.deliverAll()
        #expect(c.nodes[3]!.term > 1)
    }

    @Test func followerHearingFromLeaderIgnoresVoteRequests_4_2_3() {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        // Node 3 was cut off and (pre-vote disabled for it) bumped its term; its request must not
        // unseat a leader that nodes 1 and 2 still hear from.
        let request = Message(kind: .vote, from: 3, to: 2, term: 9, logTerm: c.nodes[1]!.term, index: c.nodes[1]!.lastIndex)
        let result = c.nodes[2]!.step(request)
        #expect(result == .ignored(.leaderLease))
        #expect(c.nodes[2]!.term == 1 && c.nodes[2]!.vote == 1)
    }

    @Test func leaderWithoutQuorumStepsDown_6_2() {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.isolate(1)
        for _ in 0..<25 {
            c.tick(1)
            c.deliverAll()
        }
        #expect(c.nodes[1]!.role == .follower, "check-quorum: a leader cut off from the quorum steps down")
    }

    @Test func leaderWithQuorumKeepsLeading_6_2() {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.isolate(3)
        for _ in 0..<50 {
            c.tick(1)
            c.tick(2)
            c.deliverAll()
        }
        #expect(c.nodes[1]!.role == .leader && c.nodes[1]!.term == 1)
    }

    @Test func higherTermMakesLeaderStepDown_5_1() {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        let r = c.nodes[1]!.step(Message(kind: .appendResponse, from: 2, to: 1, term: 5, index: 0))
        #expect(r == .accepted || r == .ignored(.irrelevantForRole))
        #expect(c.nodes[1]!.role == .follower && c.nodes[1]!.term == 5 && c.nodes[1]!.vote == noNode)
    }

    @Test func staleLeaderLearnsNewTermFromFollowerReply() {
        var s = Solo(id: 2, log: [], hardState: HardState(term: 5))
        let out = s.answer(Message(kind: .heartbeat, from: 1, to: 2, term: 3))
        #expect(out.count == 1 && out[0].kind == .appendResponse && out[0].term == 5)
        #expect(s.node.term == 5)
    }

    @Test func newLeaderAppendsNoopOfItsTerm_8() {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        let last = c.nodes[1]!.lastIndex
        #expect(c.nodes[1]!.term(at: last) == c.nodes[1]!.term)
        #expect(c.nodes[1]!.commitIndex == last, "the no-op commits once a quorum stores it")
        #expect(c.applied[2]!.last?.data.isEmpty == true)
    }

    @Test func singleVoterElectsItselfAndCommitsAlone() {
        var c = TestCluster(ids: [1])
        c.elect(1)
        let ticket = try! c.nodes[1]!.propose([42])
        c.deliverAll()
        #expect(c.nodes[1]!.commitIndex == ticket.index)
        #expect(c.payloads(1) == [[42]])
    }

    @Test func electionTimeoutsAreRandomizedPerNode() {
        // Different seeds give different timeouts, so split votes resolve.
        var firstCampaign: [NodeID: Int] = [:]
        var c = TestCluster(ids: [1, 2, 3, 4, 5])
        for id in c.nodes.keys { c.isolate(id) }
        for tick in 1...20 {
            for id in c.nodes.keys.sorted() {
                c.tick(id)
                if c.nodes[id]!.role != .follower && firstCampaign[id] == nil { firstCampaign[id] = tick }
            }
            c.deliverAll()
        }
        #expect(Set(firstCampaign.values).count > 1)
        #expect(firstCampaign.values.allSatisfy { (10..<20).contains($0) })
    }
}
