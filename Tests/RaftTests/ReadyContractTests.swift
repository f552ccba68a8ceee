import Raft
import Testing

/// The driver contract: what a Ready asks to persist comes with the messages that depend on it;
/// the application only ever sees entries that are already durable.
@Suite struct ReadyContractTests {
    @Test func voteIsInTheSameReadyAsTheVoteResponse() {
        var s = Solo(id: 2) { $0.preVote = false }
        s.node.step(Message(kind: .vote, from: 1, to: 2, term: 1, logTerm: 0, index: 0))
        let rd = s.node.ready()
        #expect(rd.hardState?.vote == 1 && rd.hardState?.term == 1)
        #expect(rd.messages.contains { $0.kind == .voteResponse && !$0.reject })
        #expect(rd.mustSync, "a vote must be fsync'd before the response is sent")
        s.node.advance(rd)
    }

    @Test func appendedEntriesAreInTheSameReadyAsTheAcknowledgement() {
        var s = Solo(id: 2)
        s.node.step(Message(kind: .append, from: 1, to: 2, term: 1, logTerm: 0, index: 0, entries: entries([1, 1])))
        let rd = s.node.ready()
        #expect(rd.entries.map(\.index) == [1, 2])
        #expect(rd.messages.contains { $0.kind == .appendResponse && $0.index == 2 })
        #expect(rd.mustSync)
        s.node.advance(rd)
    }

    @Test func stagedSnapshotChunkIsInTheSameReadyAsItsAcknowledgement() {
        var s = Solo(id: 2)
        let meta = SnapshotMetadata(index: 4, term: 1, conf: ConfState(voters: [1, 2, 3]))
        s.node.step(Message(kind: .snapshot, from: 1, to: 2, term: 1,
                            snapshot: SnapshotChunk(metadata: meta, offset: 0, totalBytes: 6, data: [1, 2, 3], done: false)))
        let rd = s.node.ready()
        #expect(rd.snapshotChunks.map(\.data) == [[1, 2, 3]] && rd.snapshot == nil)
        #expect(rd.messages.contains { $0.kind == .snapshotResponse && $0.snapshotOffset == 3 })
        #expect(rd.mustSync, "an acknowledgement vouches for staged bytes: they must be fsync'd first")
        s.disk.persist(rd)
        s.node.advance(rd)
        s.node.step(Message(kind: .snapshot, from: 1, to: 2, term: 1,
                            snapshot: SnapshotChunk(metadata: meta, offset: 3, totalBytes: 6, data: [4, 5, 6], done: true)))
        let last = s.node.ready()
        #expect(last.snapshot == meta && last.mustSync)
        #expect(last.messages.contains { $0.kind == .snapshotResponse && $0.snapshotOffset == 6 })
        #expect(last.committedEntries.isEmpty, "nothing is applied before the installed snapshot")
        s.disk.persist(last)
        s.node.advance(last)
        #expect(s.disk.latestSnapshot == Snapshot(metadata: meta, data: [1, 2, 3, 4, 5, 6]))
    }

    @Test func committedEntriesNeverIncludeEntriesNotYetPersisted() throws {
        // A single voter commits at once, but may apply only after persisting.
        var c = TestCluster(ids: [1])
        c.elect(1)
        try c.nodes[1]!.propose([1])
        let rd1 = c.nodes[1]!.ready()
        #expect(rd1.entries.count == 1)
        #expect(rd1.committedEntries.allSatisfy { e in !rd1.entries.contains { $0.index == e.index } })
        c.disks[1]!.persist(rd1)
        c.nodes[1]!.advance(rd1)
        let rd2 = c.nodes[1]!.ready()
        #expect(rd2.committedEntries.map(\.data) == [[1]])
        c.nodes[1]!.advance(rd2)
    }

    @Test func commitOnlyChangeNeedsNoFsync() throws {
        var c = TestCluster(ids: [1, 2])
        c.elect(1)
        try c.nodes[1]!.propose([1])
        c.flushReadies()
        // Deliver the append to 2 and its ack back to 1: on 1 only the commit index moves.
        while let m = c.pending.first {
            c.pending.removeFirst()
            c.nodes[m.to]!.step(m)
            if m.to == 1 && m.kind == .appendResponse { break }
            c.flushReadies()
        }
        let rd = c.nodes[1]!.ready()
        #expect(rd.hardState != nil && rd.entries.isEmpty)
        #expect(!rd.mustSync)
        c.nodes[1]!.advance(rd)
    }

    @Test func softStateReportsRoleChanges() {
        var s = Solo(id: 1, peers: [1])
        s.node.campaign()
        let rd = s.ready()
        #expect(rd.softState == SoftState(leader: 1, role: .leader))
        #expect(!s.node.hasReady || s.ready().softState == nil)
    }

    @Test func storageReadFailureHaltsTheNode() {
        final class FailingStorage: RaftStorage {
            let inner = MemoryStorage(conf: ConfState(voters: [1, 2, 3]))
            var failing = false
            func initialState() throws(StorageError) -> (HardState, ConfState) { try inner.initialState() }
            func firstIndex() throws(StorageError) -> LogIndex { try inner.firstIndex() }
            func lastIndex() throws(StorageError) -> LogIndex { try inner.lastIndex() }
            func term(_ index: LogIndex) throws(StorageError) -> Term {
                if failing { throw .failed("EIO reading term \(index)") }
                return try inner.term(index)
            }
            func entries(_ lo: LogIndex, _ hi: LogIndex, maxBytes: Int) throws(StorageError) -> [Entry] {
                if failing { throw .failed("EIO reading entries") }
                return try inner.entries(lo, hi, maxBytes: maxBytes)
            }
            func snapshotMetadata() throws(StorageError) -> SnapshotMetadata { try inner.snapshotMetadata() }
            func snapshotChunk(offset: UInt64, maxBytes: Int) throws(StorageError) -> SnapshotChunk {
                try inner.snapshotChunk(offset: offset, maxBytes: maxBytes)
            }
        }
        let storage = FailingStorage()
        storage.inner.append(entries([1, 1]))
        storage.inner.setHardState(HardState(term: 1))
        var node = try! RaftNode(config: RaftConfig(id: 1), storage: storage, seed: 1)
        storage.failing = true
        node.step(Message(kind: .append, from: 2, to: 1, term: 1, logTerm: 1, index: 2, entries: [Entry(term: 1, index: 3)]))
        #expect(node.haltReason?.contains("EIO") == true)
        let rd = node.ready()
        #expect(rd.messages.isEmpty, "a halted node acknowledges nothing")
        #expect(rd.haltReason != nil)
        node.advance(rd)
        #expect(throws: ProposalError.self) { try node.propose([1]) }
    }

    // MARK: - A leader's appends before its own persist (thesis §10.2.1)

    @Test func leaderAppendsMayGoOutBeforeItsOwnPersist() throws {
        var c = TestCluster(ids: [1, 2, 3])
        c.elect(1)
        try c.nodes[1]!.propose([7])
        let rd = c.nodes[1]!.ready()
        let first = try #require(rd.entries.first).index
        #expect(rd.sendableBeforePersist == 2, "one append to each follower")
        let early = rd.messages[..<rd.sendableBeforePersist]
        #expect(early.allSatisfy { $0.kind == .append && $0.entries.map(\.index) == [first] && $0.commit < first })
        #expect(rd.messages[rd.sendableBeforePersist...].allSatisfy { $0.kind != .append })
        c.pending += c.handle(1, rd)
        c.deliverAll()
        #expect(c.nodes[1]!.commitIndex == first)
    }

    @Test func followersAndCandidatesSendNothingBeforePersisting() {
        var s = Solo(id: 2)
        s.node.step(Message(kind: .append, from: 1, to: 2, term: 1, logTerm: 0, index: 0, entries: entries([1])))
        let ack = s.node.ready()
        #expect(ack.sendableBeforePersist == 0, "an acknowledgement vouches for the persist")
        s.disk.persist(ack)
        s.node.advance(ack)
        var c = TestCluster(ids: [1, 2, 3]) { $0.preVote = false }
        c.nodes[1]!.campaign()
        let votes = c.nodes[1]!.ready()
        #expect(votes.messages.contains { $0.kind == .vote } && votes.sendableBeforePersist == 0)
    }

    @Test func aReadyThatChangesTermOrVoteSendsNothingFirst() {
        // A single voter with a learner wins at once and its heartbeat timeout passes before
        // its first Ready: the heartbeat (commit 0: nothing unpersisted announced) carries a
        // term that is not durable yet.
        var c = TestCluster(ids: [1], learners: [2])
        c.nodes[1]!.campaign()
        #expect(c.nodes[1]!.role == .leader)
        c.tick(1)
        let rd = c.nodes[1]!.ready()
        #expect(rd.hardState?.term == 1 && rd.mustSync)
        #expect(rd.messages.contains { $0.kind == .heartbeat && $0.to == 2 && $0.term == 1 && $0.commit == 0 })
        #expect(rd.sendableBeforePersist == 0)
    }

    @Test func noEarlyMessageAnnouncesACommitOfUnpersistedEntries() throws {
        // A single voter commits its entry at once; the learner must not hear of that commit
        // before the leader's own persist.
        var c = TestCluster(ids: [1], learners: [2])
        c.elect(1)
        try c.nodes[1]!.propose([9])
        let rd = c.nodes[1]!.ready()
        let first = try #require(rd.entries.first).index
        let toLearner = rd.messages.filter { $0.to == 2 && $0.kind == .append }
        #expect(toLearner.contains { $0.commit >= first }, "the commit is announced in this Ready")
        #expect(rd.messages[..<rd.sendableBeforePersist].allSatisfy { $0.commit < first })
        #expect(rd.messages[rd.sendableBeforePersist...].contains { $0.commit >= first })
    }
}
