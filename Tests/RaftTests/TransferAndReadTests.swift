import Raft
import Testing

/// Leadership transfer (thesis §3.10) and linearizable reads with ReadIndex (thesis §6.4).
@Suite struct TransferAndReadTests {
    @Test func transferToCaughtUpVoterElectsItAtOnce_3_10() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        try c.nodes[1]!.transferLeadership(to: 2)
        c.deliverAll()
        #expect(c.nodes[2]!.role == .leader && c.nodes[2]!.term == 2)
        #expect(c.nodes[1]!.role == .follower && c.nodes[1]!.leader == 2)
    }

    @Test func transferToLaggingVoterCatchesItUpFirst_3_10() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.isolate(3)
        for k in 0..<10 { try c.nodes[1]!.propose([UInt8(k)]) }
        c.deliverAll()
        #expect(c.nodes[3]!.lastIndex < c.nodes[1]!.lastIndex)
        c.heal()
        try c.nodes[1]!.transferLeadership(to: 3)
        c.deliverAll()
        #expect(c.nodes[3]!.role == .leader)
        #expect(c.payloads(3).count == 10, "the new leader has every committed entry")
    }

    @Test func proposalsArePausedDuringTransfer() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.isolate(2)
        try c.nodes[1]!.transferLeadership(to: 2)
        #expect(throws: ProposalError.transferInProgress(to: 2)) { try c.nodes[1]!.propose([1]) }
    }

    @Test func transferIsAbandonedAfterAnElectionTimeout_3_10() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.isolate(2)
        try c.nodes[1]!.transferLeadership(to: 2)
        for _ in 0..<10 {
            c.tick(1)
            c.tick(3)
            c.deliverAll()
        }
        #expect(c.nodes[1]!.role == .leader && c.nodes[1]!.leadTransferee == noNode)
        try c.nodes[1]!.propose([1])  // Accepting proposals again.
    }

    @Test func transferVoteOverridesTheLeaderLease() throws {
        // Voters still hear from leader 1 (lease), yet grant the transferee's vote.
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        try c.nodes[1]!.transferLeadership(to: 3)
        c.deliverAll()
        #expect(c.nodes[3]!.role == .leader)
        #expect(c.nodes[2]!.vote == 3)
    }

    @Test func transferRefusedForNonVoterOrByFollower() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        #expect(throws: TransferError.notAVoter(9)) { try c.nodes[1]!.transferLeadership(to: 9) }
        #expect(throws: TransferError.notLeader(leader: 1)) { try c.nodes[2]!.transferLeadership(to: 3) }
    }

    @Test func leaderReadIsConfirmedByAQuorumHeartbeat_6_4() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        try c.nodes[1]!.propose([7])
        c.deliverAll()
        let commit = c.nodes[1]!.commitIndex
        try c.nodes[1]!.readIndex(context: 42)
        // Nothing is confirmed before the heartbeat round comes back.
        let first = c.nodes[1]!.ready()
        #expect(first.readStates.isEmpty)
        #expect(first.messages.filter { $0.kind == .heartbeat && $0.context != 0 }.count == 2, "one heartbeat round")
        c.disks[1]!.persist(first)
        c.pending.append(contentsOf: first.messages)
        c.nodes[1]!.advance(first)
        var confirmed: [ReadState] = []
        while !c.pending.isEmpty {
            let m = c.pending.removeFirst()
            c.nodes[m.to]!.step(m)
            for id in c.nodes.keys.sorted() where c.nodes[id]!.hasReady {
                let rd = c.nodes[id]!.ready()
                if id == 1 { confirmed += rd.readStates }
                c.pending += rd.messages
                c.nodes[id]!.advance(rd)
            }
        }
        #expect(confirmed == [ReadState(index: commit, context: 42)])
    }

    @Test func partitionedOldLeaderCannotConfirmARead_6_4() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.isolate(1)
        try c.nodes[1]!.readIndex(context: 5)
        c.deliverAll()
        // Meanwhile 2 and 3 elect a new leader (once their lease on 1 expires) and commit a
        // write the old leader never saw.
        var newLeader: NodeID?
        for _ in 0..<60 where newLeader == nil {
            c.tick(2)
            c.tick(3)
            c.deliverAll()
            newLeader = [NodeID(2), 3].first { c.nodes[$0]!.role == .leader }
        }
        let l = try #require(newLeader)
        try c.nodes[l]!.propose([9])
        c.deliverAll()
        var states: [ReadState] = []
        for _ in 0..<5 {
            c.nodes[1]!.step(Message(kind: .heartbeatResponse, from: 2, to: 1, term: 1, context: 0))  // stale chatter only
            if c.nodes[1]!.hasReady {
                let rd = c.nodes[1]!.ready()
                states += rd.readStates
                c.nodes[1]!.advance(rd)
            }
        }
        #expect(states.isEmpty, "a stale leader must not answer a read without a quorum")
    }

    @Test func followerReadIsAnsweredByTheLeader_6_4() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        try c.nodes[1]!.propose([3])
        c.deliverAll()
        try c.nodes[2]!.readIndex(context: 77)
        var states: [ReadState] = []
        c.flushReadies()
        while !c.pending.isEmpty {
            let m = c.pending.removeFirst()
            c.nodes[m.to]!.step(m)
            if c.nodes[2]!.hasReady {
                let rd = c.nodes[2]!.ready()
                states += rd.readStates
                c.pending += rd.messages
                c.disks[2]!.persist(rd)
                c.nodes[2]!.advance(rd)
            }
            c.flushReadies()
        }
        #expect(states == [ReadState(index: c.nodes[1]!.commitIndex, context: 77)])
    }

    @Test func readsWaitUntilTheLeaderCommitsInItsTerm_6_4() throws {
        var s = Solo(id: 1, log: entries([1, 1]), hardState: HardState(term: 1, commit: 1)) { $0.preVote = false }
        s.node.campaign()
        s.ready()
        _ = s.step(Message(kind: .voteResponse, from: 2, to: 1, term: 2))
        #expect(s.node.role == .leader)
        s.ready()
        try s.node.readIndex(context: 1)
        #expect(!s.ready().messages.contains { $0.context != 0 }, "no confirmation round before the no-op commits")
        _ = s.step(Message(kind: .appendResponse, from: 2, to: 1, term: 2, index: s.node.lastIndex))
        #expect(s.ready().messages.filter { $0.kind == .heartbeat && $0.context != 0 }.count == 2)
    }

    @Test func readRequestsAreBoundedAndNeedAnId() throws {
        var c = TestCluster(ids: [1, 2, 3]) { $0.readRequestsMax = 2 }
        c.elect(1)
        c.isolate(1)
        try c.nodes[1]!.readIndex(context: 1)
        try c.nodes[1]!.readIndex(context: 2)
        #expect(throws: ReadIndexError.tooManyPending(limit: 2)) { try c.nodes[1]!.readIndex(context: 3) }
        #expect(throws: ReadIndexError.invalidContext) { try c.nodes[1]!.readIndex(context: 0) }
    }

    /// Found by the simulator's read-quorum-confirmed check: a read's heartbeat round was named
    /// by the read's id, so when a follower repeated an id (a retry, a duplicated message), an
    /// answer to the first round, sent before a later read arrived, confirmed that later read.
    @Test func anAnswerToAnEarlierRoundNeverConfirmsALaterRead_6_4() throws {
        var s = Solo(id: 1, log: entries([1, 1]), hardState: HardState(term: 1, commit: 1)) { $0.preVote = false }
        s.node.campaign()
        s.ready()
        _ = s.step(Message(kind: .voteResponse, from: 2, to: 1, term: 2))
        s.ready()
        _ = s.step(Message(kind: .appendResponse, from: 2, to: 1, term: 2, index: s.node.lastIndex))  // the no-op commits
        s.ready()
        _ = s.step(Message(kind: .readIndex, from: 2, to: 1, term: 2, context: 4))
        let firstRound = try #require(s.ready().messages.first { $0.kind == .heartbeat && $0.to == 3 }).context
        _ = s.step(Message(kind: .readIndex, from: 3, to: 1, term: 2, context: 5))
        s.ready()
        let answered = s.answer(Message(kind: .heartbeatResponse, from: 2, to: 1, term: 2, context: firstRound))
        #expect(answered.contains { $0.kind == .readIndexResponse && $0.context == 4 })
        // Follower 2 asks read 4 again; then 3's answer to the first round arrives, late. It was
        // sent before read 5 arrived, so it confirms neither read 5 nor the repeated read 4.
        _ = s.step(Message(kind: .readIndex, from: 2, to: 1, term: 2, context: 4))
        s.ready()
        let late = s.answer(Message(kind: .heartbeatResponse, from: 3, to: 1, term: 2, context: firstRound))
        #expect(!late.contains { $0.kind == .readIndexResponse }, "answered \(late.filter { $0.kind == .readIndexResponse })")
    }

    /// Found by the simulator's read-quorum-confirmed check: a leader that removed itself and is
    /// handing over (ADR 0005) counted itself among the voters confirming a read. It now serves
    /// no read at all: pending reads are dropped when the removal applies, forwarded ones are
    /// ignored, and a late answer to a dropped round confirms nothing.
    @Test func aLeaderHandingOverAnswersNoRead_6_4() throws {
        var s = Solo(id: 1, peers: [1, 2, 3, 4], log: entries([1, 1]), hardState: HardState(term: 1, commit: 1)) { $0.preVote = false }
        s.node.campaign()
        s.ready()
        _ = s.step(Message(kind: .voteResponse, from: 2, to: 1, term: 2))
        _ = s.step(Message(kind: .voteResponse, from: 3, to: 1, term: 2))
        s.ready()
        #expect(s.node.role == .leader)
        for peer in [NodeID(2), 3] { _ = s.step(Message(kind: .appendResponse, from: peer, to: 1, term: 2, index: s.node.lastIndex)) }
        s.ready()
        try s.node.proposeConfChange(.removeNode(1))
        s.ready()
        _ = s.step(Message(kind: .readIndex, from: 2, to: 1, term: 2, context: 8))
        let round = try #require(s.ready().messages.first { $0.kind == .heartbeat && $0.context != 0 }).context
        for peer in [NodeID(2), 3] { _ = s.step(Message(kind: .appendResponse, from: peer, to: 1, term: 2, index: s.node.lastIndex)) }
        while s.node.hasReady { s.ready() }
        #expect(s.node.isHandingOver && s.node.conf.voters == [2, 3, 4])
        // 2 and 3 are a quorum of {2, 3, 4}, but their answers come to a round the leader dropped.
        var answers: [Message] = []
        for peer in [NodeID(2), 3] { answers += s.answer(Message(kind: .heartbeatResponse, from: peer, to: 1, term: 2, context: round)) }
        #expect(!answers.contains { $0.kind == .readIndexResponse }, "answered \(answers.filter { $0.kind == .readIndexResponse })")
        #expect(s.step(Message(kind: .readIndex, from: 2, to: 1, term: 2, context: 9)) == .ignored(.irrelevantForRole))
        #expect(!s.ready().messages.contains { $0.kind == .heartbeat && $0.context != 0 })
    }
}
