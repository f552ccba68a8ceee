import Raft
import Testing

/// Membership changes one server at a time (thesis §4.1, §4.2; docs/adr/0005): learners,
/// promotion once caught up, removal (of the leader too), and the rules that keep it safe.
@Suite struct MembershipTests {
    let three = ConfState(voters: [1, 2, 3])

    /// Runs a few rounds of ticks on every node so heartbeats carry the commit index everywhere.
    func settle(_ c: inout TestCluster, ticks: Int = 2) { c.tickAll(times: ticks) }

    /// Leader 1 proposes promoting `n`: nil if it accepted, else what its `learnerNotCaughtUp`
    /// refusal said (any other refusal is a failure).
    func notCaughtUp(_ c: inout TestCluster, promoting n: NodeID) -> (match: LogIndex, lastIndex: LogIndex, silentTicks: Int)? {
        do {
            try c.nodes[1]!.proposeConfChange(.promote(n))
            return nil
        } catch .confChangeRefused(.learnerNotCaughtUp(let who, let match, let last, let silent)) where who == n {
            return (match, last, silent)
        } catch {
            Issue.record("promoting \(n) refused for another reason: \(error)")
            return nil
        }
    }

    @Test func learnerCatchesUpThenIsPromoted_4_2_1() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        for k in 0..<10 { try c.nodes[1]!.propose([UInt8(k)]) }
        c.deliverAll()
        c.addNode(4)
        try c.nodes[1]!.proposeConfChange(.addLearner(4))
        c.deliverAll()
        settle(&c)
        let withLearner = ConfState(voters: [1, 2, 3], learners: [4])
        for id in [NodeID(1), 2, 3, 4] { #expect(c.nodes[id]!.conf == withLearner, "node \(id)") }
        #expect(c.payloads(4) == c.payloads(1), "the learner received the whole log")
        // A learner never campaigns, however long it hears nothing.
        c.isolate(4)
        for _ in 0..<50 { c.tick(4) }
        c.deliverAll()
        #expect(c.nodes[4]!.role == .follower && c.nodes[4]!.counters.preVotesStarted == 0)
        c.heal()
        settle(&c)
        try c.nodes[1]!.proposeConfChange(.promote(4))
        c.deliverAll()
        settle(&c)
        for id in [NodeID(1), 2, 3, 4] { #expect(c.nodes[id]!.conf == ConfState(voters: [1, 2, 3, 4]), "node \(id)") }
        // Four voters: a quorum is three, and node 4 now counts.
        c.isolate(2)
        c.isolate(3)
        try c.nodes[1]!.propose([99])
        c.deliverAll()
        #expect(!c.payloads(1).contains([99]), "two of four is no quorum")
        c.heal()
        settle(&c)
        #expect(c.payloads(4).last == [99])
    }

    @Test func laggingOrSilentLearnerIsNotPromoted() throws {
        var c = TestCluster(ids: [1, 2, 3]) { $0.learnerCatchUpEntriesMax = 5 }
        c.elect(1)
        c.addNode(4) { $0.learnerCatchUpEntriesMax = 5 }
        try c.nodes[1]!.proposeConfChange(.addLearner(4))
        c.deliverAll()
        c.isolate(4)
        for k in 0..<20 { try c.nodes[1]!.propose([UInt8(k)]) }
        c.deliverAll()
        #expect(notCaughtUp(&c, promoting: 4) != nil)
        c.heal()
        settle(&c)
        // Caught up, but then silent for an election timeout: not promoted either.
        c.isolate(4)
        for _ in 0..<10 { c.tick(1); c.tick(2); c.tick(3); c.deliverAll() }
        #expect((notCaughtUp(&c, promoting: 4)?.silentTicks ?? 0) >= 10)
    }

    /// Found by the simulator (seed 6062 of 20,000): a learner that held nothing was promoted
    /// (31 entries behind, within the catch-up bound), the two voters lost power, and the old
    /// voter needed the vote of a node that knew no configuration and ignored it: no leader ever.
    @Test func aLearnerThatLacksTheLatestConfigurationChangeIsNotPromoted() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.addNode(4)
        c.isolate(4)
        try c.nodes[1]!.proposeConfChange(.addLearner(4))
        c.deliverAll()
        settle(&c)
        #expect(c.nodes[1]!.conf.learners == [4])
        #expect(notCaughtUp(&c, promoting: 4) != nil)
        c.heal()
        settle(&c)
        try c.nodes[1]!.proposeConfChange(.promote(4))
    }

    /// A node that knows no configuration yet answers vote requests (it cannot tell members
    /// from others); a node that knows one ignores non-members (thesis §4.2.3).
    @Test func aNodeThatKnowsNoConfigurationAnswersVotes() throws {
        var fresh = Solo(id: 4, peers: [])
        let answer = fresh.answer(Message(kind: .vote, from: 3, to: 4, term: 2, logTerm: 2, index: 32))
        #expect(answer.contains { $0.kind == .voteResponse && !$0.reject && $0.to == 3 })
        var member = Solo(id: 1, peers: [1, 2])
        #expect(member.step(Message(kind: .vote, from: 3, to: 1, term: 2, logTerm: 2, index: 32)) == .ignored(.unknownSender))
    }

    @Test func learnersNeverCountTowardACommitQuorum() throws {
        var c = TestCluster(ids: [1, 2], learners: [3, 4])
        c.elect(1)
        let base = c.nodes[1]!.commitIndex
        c.isolate(2)
        try c.nodes[1]!.propose([1])
        c.deliverAll()
        #expect(c.nodes[3]!.lastIndex == c.nodes[1]!.lastIndex, "the learners store the entry")
        #expect(c.nodes[1]!.commitIndex == base, "but their acknowledgements make no quorum")
    }

    @Test func candidateCountsOnlyItsVotersVotes() {
        var s = Solo(id: 1, peers: [1, 2, 3], learners: [4]) { $0.preVote = false }
        s.node.campaign()
        let out = s.ready().messages
        #expect(Set(out.filter { $0.kind == .vote }.map(\.to)) == [2, 3], "learners are not asked")
        _ = s.step(Message(kind: .voteResponse, from: 4, to: 1, term: 1))
        #expect(s.node.role == .candidate, "a learner's vote does not count")
        _ = s.step(Message(kind: .voteResponse, from: 2, to: 1, term: 1))
        #expect(s.node.role == .leader)
    }

    @Test func checkQuorumCountsOnlyVoters_6_2() {
        var c = TestCluster(ids: [1, 2, 3], learners: [4, 5])
        c.elect(1)
        c.cut.formUnion([[1, 2], [2, 1], [1, 3], [3, 1]])  // the leader hears only its learners
        for _ in 0..<25 {
            c.tick(1); c.tick(4); c.tick(5)
            c.deliverAll()
        }
        #expect(c.nodes[1]!.role == .follower, "learners alone do not keep a leader in office")
    }

    @Test func removingTheLeaderHandsOverAndTheLeaderStepsDown_4_2_2() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        try c.nodes[1]!.propose([7])
        c.deliverAll()
        try c.nodes[1]!.proposeConfChange(.removeNode(1))
        c.deliverAll()
        settle(&c, ticks: 3)
        let successor = try #require([NodeID(2), 3].first { c.nodes[$0]!.role == .leader }, "a voter took over within 3 ticks")
        #expect(c.nodes[1]!.role == .follower)
        #expect(c.nodes[successor]!.conf == ConfState(voters: [2, 3]))
        // Not replicated to any more, it does not even learn who leads now.
        #expect(throws: ProposalError.notLeader(leader: noNode)) { try c.nodes[1]!.propose([1]) }
        try c.nodes[successor]!.propose([8])
        c.deliverAll()
        for id in [NodeID(2), 3] { #expect(c.payloads(id) == [[7], [8]]) }
        // The removed node is not fed any more and cannot disturb the new configuration.
        let term = c.nodes[successor]!.term
        settle(&c, ticks: 60)
        #expect(c.nodes[successor]!.role == .leader && c.nodes[successor]!.term == term)
    }

    @Test func removedLeaderServesNoClientWhileHandingOver() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        try c.nodes[1]!.proposeConfChange(.removeNode(1))
        // Deliver one message at a time until node 1 applied its own removal.
        c.flushReadies()
        while c.nodes[1]!.conf.voters.contains(1), !c.pending.isEmpty {
            let m = c.pending.removeFirst()
            c.nodes[m.to]!.step(m)
            c.flushReadies()
        }
        #expect(c.nodes[1]!.conf == ConfState(voters: [2, 3]))
        #expect(c.nodes[1]!.role == .leader && c.nodes[1]!.isHandingOver, "still leads, to hand over")
        #expect(throws: ProposalError.notLeader(leader: noNode)) { try c.nodes[1]!.propose([1]) }
        #expect(throws: ProposalError.notLeader(leader: noNode)) { try c.nodes[1]!.proposeConfChange(.addLearner(4)) }
        #expect(throws: ReadIndexError.noLeader) { try c.nodes[1]!.readIndex(context: 5) }
        #expect(c.pending.contains { $0.kind == .timeoutNow && $0.from == 1 }, "it asked a caught-up voter to take over")
        c.deliverAll()
        settle(&c, ticks: 3)
        #expect(c.nodes[1]!.role == .follower && c.nodes[1]!.term == 2, "the successor's term made it step down")
        #expect([NodeID(2), 3].contains { c.nodes[$0]!.role == .leader })
    }

    @Test func removedNodeThatReturnsDoesNotDisruptTheCluster_4_2_3() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.isolate(3)
        try c.nodes[1]!.proposeConfChange(.removeNode(3))
        c.deliverAll()
        #expect(c.nodes[1]!.conf == ConfState(voters: [1, 2]))
        // Node 3 never learned it was removed: cut off, it keeps pre-campaigning.
        for _ in 0..<100 { c.tick(3) }
        c.deliverAll()
        #expect(c.nodes[3]!.conf == three && c.nodes[3]!.role == .preCandidate)
        c.heal()
        settle(&c, ticks: 60)
        #expect(c.nodes[1]!.role == .leader && c.nodes[1]!.term == 1, "no election, no new term")
        #expect(c.nodes[2]!.term == 1 && c.nodes[2]!.leader == 1)
    }

    @Test func proposalsOfChangesAreRefusedWithTheReason() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        func refusal(_ id: NodeID, _ change: ConfChange) -> ProposalError? {
            do {
                try c.nodes[id]!.proposeConfChange(change)
                return nil
            } catch {
                return error
            }
        }
        #expect(refusal(2, .addLearner(4)) == .notLeader(leader: 1))
        #expect(refusal(1, .addLearner(2)) == .confChangeRefused(.alreadyMember(2)))
        #expect(refusal(1, .addLearner(0)) == .confChangeRefused(.invalidNodeID))
        #expect(refusal(1, .promote(2)) == .confChangeRefused(.alreadyVoter(2)))
        #expect(refusal(1, .promote(9)) == .confChangeRefused(.unknownNode(9)))
        #expect(refusal(1, .removeNode(9)) == .confChangeRefused(.unknownNode(9)))
        let first = try c.nodes[1]!.proposeConfChange(.addLearner(4))
        #expect(refusal(1, .addLearner(5)) == .confChangeRefused(.changePending(index: first.index)), "one change at a time")
        c.deliverAll()
        #expect(refusal(1, .addLearner(5)) == nil, "once applied, the next one may go")

        var solo = TestCluster(ids: [1])
        solo.elect(1)
        #expect(throws: ProposalError.confChangeRefused(.wouldRemoveLastVoter(1))) { try solo.nodes[1]!.proposeConfChange(.removeNode(1)) }
    }

    @Test func newLeaderProposesNoChangeBeforeCommittingInItsTerm() throws {
        var s = Solo(id: 1, log: entries([1, 1]), hardState: HardState(term: 1, commit: 1)) { $0.preVote = false }
        s.node.campaign()
        s.ready()
        _ = s.step(Message(kind: .voteResponse, from: 2, to: 1, term: 2))
        #expect(s.node.role == .leader)
        s.ready()
        #expect(throws: ProposalError.confChangeRefused(.noCommitInTerm(term: 2))) { try s.node.proposeConfChange(.addLearner(4)) }
        _ = s.step(Message(kind: .appendResponse, from: 2, to: 1, term: 2, index: s.node.lastIndex))
        s.ready()
        s.ready()  // the application applies up to the no-op
        try s.node.proposeConfChange(.addLearner(4))
    }

    @Test func newNodeLearnsTheConfigurationFromTheFirstChangeItApplies() throws {
        // Node 4 starts knowing no configuration; the log before its addition holds another
        // change (learner 5 added then removed) that it cannot apply on top of nothing.
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.addNode(5)
        try c.nodes[1]!.proposeConfChange(.addLearner(5))
        c.deliverAll()
        try c.nodes[1]!.proposeConfChange(.removeNode(5))
        c.deliverAll()
        c.addNode(4)
        try c.nodes[1]!.proposeConfChange(.addLearner(4))
        c.deliverAll()
        settle(&c)
        #expect(c.nodes[4]!.conf == ConfState(voters: [1, 2, 3], learners: [4]))
        #expect(c.nodes[4]!.commitIndex == c.nodes[1]!.commitIndex)
    }

    @Test func restartedNodeRecoversTheConfigurationOfWhatItApplied() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        c.addNode(4)
        try c.nodes[1]!.proposeConfChange(.addLearner(4))
        c.deliverAll()
        settle(&c)
        let applied = c.nodes[2]!.appliedIndex
        let withLearner = ConfState(voters: [1, 2, 3], learners: [4])
        // A durable state machine: entries up to `applied` are not handed out again, so the
        // core reads the changes among them at start.
        c.restart(2) { $0.applied = applied }
        #expect(c.nodes[2]!.conf == withLearner)
        // An in-memory state machine re-applies the log: the change takes effect again then.
        c.restart(3)
        #expect(c.nodes[3]!.conf == three)
        settle(&c)
        #expect(c.nodes[3]!.conf == withLearner)
    }

    @Test func snapshotCarriesTheConfigurationAsOfItsIndex() throws {
        var c = TestCluster(ids: [1, 2, 3]) { $0.snapshotChunkBytes = 32 }
        c.elect(1)
        c.addNode(4) { $0.snapshotChunkBytes = 32 }
        c.isolate(4)
        try c.nodes[1]!.proposeConfChange(.addLearner(4))
        c.deliverAll()
        for k in 0..<5 { try c.nodes[1]!.propose([UInt8(k)]) }
        c.deliverAll()
        c.compact(1, paddingBytes: 200)
        let snap = c.disks[1]!.latestSnapshot.metadata
        #expect(snap.conf == ConfState(voters: [1, 2, 3], learners: [4]))
        c.heal()
        settle(&c)
        #expect(c.installs[4] == [snap], "the new node was brought up by the snapshot")
        #expect(c.nodes[4]!.conf == snap.conf && c.disks[4]!.latestSnapshot.metadata.conf == snap.conf)
        #expect(c.payloads(4) == c.payloads(1))
    }

    @Test func confChangeEntriesRoundTripAndMalformedBytesAreTypedErrors() throws {
        let entry = ConfChangeEntry(change: .promote(4), conf: ConfState(voters: [1, 2, 4], learners: [7]))
        #expect(try ConfChangeEntry.decode(entry.encode()) == entry)
        let good = entry.encode()
        func fails(_ bytes: [UInt8], _ want: ConfChangeDecodeError) {
            #expect(throws: want) { try ConfChangeEntry.decode(bytes) }
        }
        fails([], .truncated)
        fails(Array(good.dropLast()), .truncated)
        fails([9] + good.dropFirst(), .unknownVersion(9))
        var kind = good; kind[1] = 7
        fails(kind, .unknownKind(7))
        fails(good + [0], .trailingBytes(1))
        fails(ConfChangeEntry(change: .promote(4), conf: ConfState(voters: [1, 2], learners: [4])).encode(), .inconsistent)
        fails(ConfChangeEntry(change: .removeNode(4), conf: ConfState(voters: [], learners: [1])).encode(), .noVoters)
        var zero = good; for k in 2..<10 { zero[k] = 0 }
        fails(zero, .zeroNodeID)
        // Voters [1, 2, 4] encoded as [2, 1, 4]: not the canonical encoding.
        var swapped = good; swapped[14] = 2; swapped[22] = 1
        fails(swapped, .notCanonical)
        var huge = Array(good[0..<10]); huge += [0xFF, 0xFF, 0, 0]
        fails(huge, .tooManyMembers(0xFFFF))
        var overlap: [UInt8] = [1, 1] + le(5) + le32(1) + le(5) + le32(1) + le(5)
        fails(overlap, .overlappingMembers)
        overlap.removeAll()
        // Seeded random bytes never trap.
        var rng = SplitMix64(seed: 3)
        for _ in 0..<5000 {
            var b = good
            b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next())
            _ = try? ConfChangeEntry.decode(rng.next() % 4 == 0 ? Array(b.prefix(Int(rng.next() % UInt64(b.count)))) : b)
        }
    }

    func le(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }

    @Test func malformedChangeInTheLogIsReportedAndChangesNothing() {
        var s = Solo(id: 2)
        let bad = Entry(term: 1, index: 1, kind: .confChange, data: [1, 2, 3])
        _ = s.answer(Message(kind: .append, from: 1, to: 2, term: 1, logTerm: 0, index: 0, entries: [bad], commit: 1))
        // The Ready that applies it, then the one that reports it.
        let applied = s.ready()
        #expect(applied.committedEntries == [bad])
        let report = s.ready()
        #expect(report.confChanges == [ConfChangeResult(index: 1, change: nil, error: .truncated, conf: three)])
        #expect(s.node.conf == three && s.node.haltReason == nil)
        #expect(s.node.counters.confChangesMalformed == 1)
    }
}
