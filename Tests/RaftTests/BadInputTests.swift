import Raft
import Testing

/// Messages from outside are untrusted: unknown senders, stale terms and malformed fields are
/// ignored by the protocol's rules and never crash the core.
@Suite struct BadInputTests {
    @Test func messageFromUnknownPeerIsIgnored() {
        var s = Solo(id: 1)
        #expect(s.step(Message(kind: .vote, from: 9, to: 1, term: 5, logTerm: 0, index: 0)) == .ignored(.unknownSender))
        #expect(s.node.term == 0)
        #expect(s.step(Message(kind: .heartbeat, from: 0, to: 1, term: 5)) == .ignored(.unknownSender))
        #expect(s.step(Message(kind: .heartbeat, from: 1, to: 1, term: 5)) == .ignored(.unknownSender))
    }

    @Test func messageForAnotherNodeIsIgnored() {
        var s = Solo(id: 1)
        #expect(s.step(Message(kind: .heartbeat, from: 2, to: 3, term: 5)) == .ignored(.wrongRecipient))
        #expect(s.node.term == 0)
    }

    @Test func staleTermMessageIsIgnored_5_1() {
        var s = Solo(id: 1, log: entries([1, 2]), hardState: HardState(term: 4))
        #expect(s.step(Message(kind: .vote, from: 2, to: 1, term: 3, logTerm: 2, index: 9)) == .ignored(.staleTerm))
        #expect(s.node.vote == noNode)
        #expect(s.step(Message(kind: .append, from: 2, to: 1, term: 3, logTerm: 2, index: 2, entries: [Entry(term: 3, index: 3)])) == .ignored(.staleTerm))
        #expect(s.node.lastIndex == 2)
    }

    @Test func appendWithNonContiguousEntriesIsMalformed() {
        var s = Solo(id: 1)
        let bad = Message(kind: .append, from: 2, to: 1, term: 1, logTerm: 0, index: 0,
                          entries: [Entry(term: 1, index: 1), Entry(term: 1, index: 3)])
        guard case .ignored(.malformed) = s.step(bad) else { Issue.record("accepted a gap"); return }
        #expect(s.node.lastIndex == 0 && s.node.term == 0, "a malformed message changes nothing, not even the term")
    }

    @Test func appendWithEntryTermAboveMessageTermIsMalformed() {
        var s = Solo(id: 1)
        let bad = Message(kind: .append, from: 2, to: 1, term: 1, logTerm: 0, index: 0, entries: [Entry(term: 7, index: 1)])
        guard case .ignored(.malformed) = s.step(bad) else { Issue.record("accepted"); return }
        let decreasing = Message(kind: .append, from: 2, to: 1, term: 3, logTerm: 2, index: 0, entries: [Entry(term: 1, index: 1)])
        guard case .ignored(.malformed) = s.step(decreasing) else { Issue.record("accepted decreasing terms"); return }
    }

    @Test func requestsWithTermZeroAreMalformed() {
        var s = Solo(id: 1)
        for kind in [MessageKind.append, .heartbeat, .vote, .preVote] {
            guard case .ignored(.malformed) = s.step(Message(kind: kind, from: 2, to: 1, term: 0)) else {
                Issue.record("\(kind) with term 0 accepted")
                continue
            }
        }
    }

    @Test func voteRequestWithLastTermAboveItsTermIsMalformed() {
        var s = Solo(id: 1)
        guard case .ignored(.malformed) = s.step(Message(kind: .vote, from: 2, to: 1, term: 2, logTerm: 5, index: 1)) else {
            Issue.record("accepted")
            return
        }
        #expect(s.node.vote == noNode)
    }

    @Test func heartbeatCommitBeyondTheLogIsIgnored() {
        var s = Solo(id: 1, log: entries([1]), hardState: HardState(term: 1))
        guard case .ignored(.malformed) = s.step(Message(kind: .heartbeat, from: 2, to: 1, term: 1, commit: 50)) else {
            Issue.record("accepted")
            return
        }
        #expect(s.node.commitIndex == 0)
    }

    @Test func acknowledgementBeyondLeadersLogIsIgnored() {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        let last = c.nodes[1]!.lastIndex
        let r = c.nodes[1]!.step(Message(kind: .appendResponse, from: 2, to: 1, term: 1, index: last + 100))
        guard case .ignored(.malformed) = r else { Issue.record("accepted: \(r)"); return }
        #expect(c.nodes[1]!.commitIndex == last)
    }

    @Test func secondLeaderInTheSameTermIsReportedNotObeyed() {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        let r = c.nodes[1]!.step(Message(kind: .append, from: 2, to: 1, term: 1, logTerm: 0, index: 0, entries: [Entry(term: 1, index: 1)]))
        guard case .ignored(.malformed) = r else { Issue.record("accepted: \(r)"); return }
        #expect(c.nodes[1]!.role == .leader)
    }

    @Test func rejectHintBeyondRejectedIndexIsMalformed() {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        let r = c.nodes[1]!.step(Message(kind: .appendResponse, from: 2, to: 1, term: 1, index: 1, reject: true, rejectHint: 9))
        guard case .ignored(.malformed) = r else { Issue.record("accepted: \(r)"); return }
    }

    /// Seeded random messages (every field random within wide ranges) thrown at every role:
    /// nothing crashes, and the cluster still elects and commits afterwards.
    @Test func randomGarbageNeverCrashesAndClusterStillWorks() throws {
        var rng = SplitMix64(seed: 2024)
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        func r(_ n: UInt64) -> UInt64 { rng.next() % n }
        for _ in 0..<20_000 {
            let kind = MessageKind.allCases[Int(r(UInt64(MessageKind.allCases.count)))]
            let to = NodeID(1 + r(3))
            var from = NodeID(r(5))
            if from == to { from = 0 }
            let index = r(40)
            let count = Int(r(4))
            let ents = (0..<count).map { k in Entry(term: r(6), index: index + 1 + (r(8) == 0 ? r(5) : LogIndex(k)), data: [UInt8(r(255))]) }
            let m = Message(kind: kind, from: from, to: to, term: r(6), logTerm: r(6), index: index,
                            entries: kind == .append || r(10) == 0 ? ents : [], commit: r(50), reject: r(2) == 0,
                            rejectHint: r(50), context: r(3))
            c.nodes[to]!.step(m)
            c.flushReadies()
            c.pending.removeAll()  // Replies to garbage go nowhere.
            if r(50) == 0 { c.nodes[to]!.tick(); c.flushReadies(); c.pending.removeAll() }
        }
        // Back to normal operation: someone leads within a few election timeouts and commits.
        c.tickAll(times: 60)
        let leader = try #require(c.nodes.values.first { $0.role == .leader }?.id)
        let ticket = try c.nodes[leader]!.propose([0xAB])
        c.tickAll(times: 3)
        for id in [NodeID(1), 2, 3] {
            #expect(c.nodes[id]!.commitIndex >= ticket.index)
        }
        #expect(c.nodes.values.map(\.counters.malformedMessages).reduce(0, +) > 0)
    }
}
