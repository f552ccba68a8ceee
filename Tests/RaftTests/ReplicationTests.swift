import Raft
import Testing

/// Log replication (paper §5.3), the commit rule (§5.4.2, Figure 8), flow control, proposals.
@Suite struct ReplicationTests {
    @Test func committedEntriesReachEveryStateMachineInOrder_5_3() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        for k in 0..<20 { try c.nodes[1]!.propose([UInt8(k)]) }
        c.deliverAll()
        let want = (0..<20).map { [UInt8($0)] }
        for id in [NodeID(1), 2, 3] { #expect(c.payloads(id) == want) }
    }

    @Test func followerRejectsAppendWhosePreviousEntryDoesNotMatch_5_3() {
        var s = Solo(id: 2, log: entries([1, 1, 2]), hardState: HardState(term: 3))
        let out = s.answer(Message(kind: .append, from: 1, to: 2, term: 3, logTerm: 3, index: 3, entries: [Entry(term: 3, index: 4)]))
        #expect(out.count == 1 && out[0].reject)
        // Hint: the last index at or before 3 whose term is <= 3: index 3 (term 2).
        #expect(out[0].rejectHint == 3 && out[0].logTerm == 2)
        #expect(s.node.lastIndex == 3)
    }

    @Test func conflictingSuffixIsReplacedAndMatchingEntriesKept_5_3() {
        // Follower holds [1, 1, 2, 2] (the last two from a deposed leader of term 2).
        var s = Solo(id: 2, log: entries([1, 1, 2, 2]), hardState: HardState(term: 2, commit: 2))
        let incoming = [Entry(term: 3, index: 3, data: [9]), Entry(term: 3, index: 4, data: [8])]
        var out = s.answer(Message(kind: .append, from: 1, to: 2, term: 3, logTerm: 1, index: 2, entries: incoming, commit: 2))
        #expect(out.first?.reject == false && out.first?.index == 4)
        #expect(s.node.term(at: 3) == 3 && s.node.term(at: 4) == 3)
        #expect((try? s.disk.entries(3, 5, maxBytes: .max).map(\.data)) == [[9], [8]])
        // A duplicate of an older append must not truncate what followed it (stale, reordered).
        out = s.answer(Message(kind: .append, from: 1, to: 2, term: 3, logTerm: 1, index: 2, entries: [incoming[0]], commit: 2))
        #expect(out.first?.index == 3)
        #expect(s.node.lastIndex == 4, "a stale append never erases acknowledged entries")
    }

    @Test func fastBacktrackingSkipsAConflictingTermInOneRoundTrip() {
        // Leader of term 5 with a long log; the follower has 50 entries of term 2 the leader
        // never had. Naive backtracking needs ~50 round trips; by-term needs a couple.
        var leaderLog = entries(Array(repeating: 1, count: 10))
        leaderLog += entries(Array(repeating: 4, count: 60), from: 11)
        var followerLog = entries(Array(repeating: 1, count: 10))
        followerLog += entries(Array(repeating: 2, count: 50), from: 11)
        var c = TestCluster(ids: [1, 2, 3]) { $0.preVote = false }
        // Replace disks: rebuild nodes from chosen logs.
        c = TestCluster(ids: [1, 2, 3]) { $0.preVote = false }
        let disks = [NodeID(1): leaderLog, 2: followerLog, 3: leaderLog]
        for (id, log) in disks {
            c.disks[id]!.append(log)
            c.disks[id]!.setHardState(HardState(term: 4, commit: 10))
            var config = RaftConfig(id: id)
            config.preVote = false
            c.nodes[id] = try! RaftNode(config: config, storage: c.disks[id]!, seed: id)
        }
        c.nodes[1]!.campaign()
        var rejections = 0
        c.flushReadies()
        while !c.pending.isEmpty {
            let m = c.pending.removeFirst()
            if m.kind == .appendResponse && m.from == 2 && m.reject { rejections += 1 }
            c.nodes[m.to]!.step(m)
            c.flushReadies()
        }
        #expect(c.nodes[1]!.role == .leader)
        #expect(rejections <= 2, "rejections: \(rejections)")
        #expect(c.nodes[2]!.lastIndex == c.nodes[1]!.lastIndex)
        #expect(c.nodes[2]!.term(at: 60) == 4)
    }

    @Test func followerNeverCommitsBeyondWhatMatchesTheLeader_5_3() {
        // Follower has a stale suffix [.., 2, 2] at 3...4; the leader's append covers only index 3
        // but says commit=4. The follower may commit 3 only: 4 is not proven to match.
        var s = Solo(id: 2, log: entries([1, 1, 2, 2]), hardState: HardState(term: 2, commit: 1))
        _ = s.answer(Message(kind: .append, from: 1, to: 2, term: 3, logTerm: 1, index: 2, entries: [Entry(term: 2, index: 3, data: [2])], commit: 4))
        #expect(s.node.commitIndex == 3)
    }

    @Test func leaderCommitsOnlyEntriesOfItsOwnTermByCounting_Figure8() {
        // Leader of term 4 holds an entry of term 2 at index 2 that is on a majority; counting
        // replicas must not commit it until an entry of term 4 is also on a majority.
        var s = Solo(id: 1, log: entries([1, 2]), hardState: HardState(term: 3, commit: 1)) { $0.preVote = false }
        s.node.campaign()  // term 4
        s.ready()
        _ = s.step(Message(kind: .voteResponse, from: 2, to: 1, term: 4))
        #expect(s.node.role == .leader)
        let rd = s.ready()
        let appends = rd.messages.filter { $0.kind == .append }
        #expect(appends.count == 2)
        // Follower 2 acknowledges only index 2 (the old-term entry), not the no-op at 3.
        _ = s.step(Message(kind: .appendResponse, from: 2, to: 1, term: 4, index: 2))
        #expect(s.node.commitIndex == 1, "an old-term entry on a majority is not committed by counting")
        _ = s.step(Message(kind: .appendResponse, from: 2, to: 1, term: 4, index: 3))
        #expect(s.node.commitIndex == 3, "committing the leader's own entry commits everything before it")
    }

    @Test func commitNeedsAMajorityOfVoters() throws {
        var c = TestCluster(ids: [1, 2, 3, 4, 5])
        c.elect(1)
        let base = c.nodes[1]!.commitIndex
        c.isolate(3); c.isolate(4); c.isolate(5)
        try c.nodes[1]!.propose([1])
        c.deliverAll()
        #expect(c.nodes[1]!.commitIndex == base, "two of five is no quorum")
        c.cut.remove([1, 3]); c.cut.remove([3, 1])
        c.tickAll(times: 2)
        #expect(c.nodes[1]!.commitIndex == base + 1)
    }

    @Test func appendMessagesRespectTheByteBound() throws {
        var c = TestCluster(ids: [1, 2]) { $0.appendBytesMax = 200; $0.inflightMessagesMax = 1000 }
        c.elect(1)
        for _ in 0..<50 { try c.nodes[1]!.propose(Array(repeating: 7, count: 50)) }  // ~74 bytes each
        c.flushReadies()
        let appends = c.pending.filter { $0.kind == .append }
        #expect(!appends.isEmpty)
        for m in appends {
            let bytes = m.entries.reduce(0) { $0 + $1.sizeBytes }
            #expect(m.entries.count == 1 || bytes <= 200)
        }
        c.deliverAll()
        #expect(c.payloads(2).count == 50)
    }

    @Test func pipelineIsBoundedByTheInflightWindow() throws {
        var c = TestCluster(ids: [1, 2]) { $0.appendBytesMax = 1; $0.inflightMessagesMax = 4 }
        c.elect(1)
        for k in 0..<20 { try c.nodes[1]!.propose([UInt8(k)]) }
        c.flushReadies()
        // One entry per message (byte bound), at most 4 unanswered appends to follower 2.
        #expect(c.pending.filter { $0.kind == .append && $0.to == 2 }.count == 4)
        c.deliverAll()
        #expect(c.payloads(2).count == 20)
    }

    @Test func followerRefusesProposalsAndNamesTheLeader() {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        #expect(throws: ProposalError.notLeader(leader: 1)) { try c.nodes[2]!.propose([1]) }
    }

    @Test func uncommittedLogBoundRefusesProposals() throws {
        var c = TestCluster(ids: [1, 2, 3]) { $0.uncommittedBytesMax = 100 }
        c.elect(1)
        c.isolate(1)
        try c.nodes[1]!.propose(Array(repeating: 0, count: 60))
        #expect(throws: ProposalError.uncommittedLogFull(uncommittedBytes: 60, proposedBytes: 60, limitBytes: 100)) {
            try c.nodes[1]!.propose(Array(repeating: 0, count: 60))
        }
        c.heal()
        c.tickAll(times: 2)  // The backlog commits and is applied: room again.
        try c.nodes[1]!.propose(Array(repeating: 0, count: 60))
    }

    @Test func proposalTicketIdentifiesTheCommittedEntry() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        let ticket = try c.nodes[1]!.propose([5, 5])
        c.deliverAll()
        let e = c.applied[1]!.first { $0.index == ticket.index }
        #expect(e?.term == ticket.term && e?.data == [5, 5])
    }

    @Test func restartedNodeRecoversItsDurableStateAndCatchesUp() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        for k in 0..<5 { try c.nodes[1]!.propose([UInt8(k)]) }
        c.deliverAll()
        // Node 3 restarts from its disk only.
        var config = RaftConfig(id: 3)
        config.electionTimeoutTicks = 10
        config.heartbeatTimeoutTicks = 1
        c.nodes[3] = try RaftNode(config: config, storage: c.disks[3]!, seed: 99)
        c.applied[3] = []
        #expect(c.nodes[3]!.term == 1 && c.nodes[3]!.vote == 1)
        #expect(c.nodes[3]!.lastIndex == c.nodes[1]!.lastIndex)
        for k in 5..<8 { try c.nodes[1]!.propose([UInt8(k)]) }
        c.tickAll(times: 2)
        #expect(c.payloads(3) == (0..<8).map { [UInt8($0)] }, "re-applies from its snapshot point (0) after restart")
    }
}
