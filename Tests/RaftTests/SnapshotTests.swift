import Raft
import Testing

/// Log compaction and chunked snapshot transfer (Raft paper §7, thesis §5): a follower whose
/// next entry the leader compacted gets the leader's snapshot in bounded chunks; a transfer that
/// is interrupted resumes, a restarted follower starts over, and nobody holds a whole snapshot.
@Suite struct SnapshotTests {
    static let chunkBytes = 64
    static let window = 2

    static func configure(_ c: inout RaftConfig) {
        c.snapshotChunkBytes = chunkBytes
        c.snapshotChunksInflightMax = window
    }

    /// Node 3 missed everything (cut off from the start); leader 1 committed 20 payloads and
    /// compacted its log into a snapshot of about 1.1 KB (about 18 chunks).
    func clusterWhereNode3NeedsASnapshot(storage: ((NodeID, MemoryStorage) -> any RaftStorage)? = nil) throws -> TestCluster {
        var c = TestCluster(ids: [1, 2, 3], configure: Self.configure, storage: storage)
        c.isolate(3)
        c.elect(1)
        for k in 0..<20 { try c.nodes[1]!.propose([UInt8(k)]) }
        c.deliverAll()
        c.compact(1, paddingBytes: 1000)
        #expect(c.nodes[3]!.lastIndex == 0)
        #expect(c.disks[1]!.latestSnapshot.data.count > 16 * Self.chunkBytes)
        return c
    }

    let all: [[UInt8]] = (0..<20).map { [UInt8($0)] }

    /// Delivers pending messages one at a time until one matching `stop` was delivered; returns it.
    @discardableResult
    func deliver(_ c: inout TestCluster, until stop: (Message) -> Bool) -> Message {
        c.flushReadies()
        var delivered = 0
        while !c.pending.isEmpty {
            let m = c.pending.removeFirst()
            delivered += 1
            precondition(delivered < 10_000, "no matching message")
            if c.cut.contains([m.from, m.to]) { continue }
            c.nodes[m.to]!.step(m)
            c.flushReadies()
            if stop(m) { return m }
        }
        preconditionFailure("no matching message")
    }

    func isAck(from peer: NodeID, atLeast offset: UInt64) -> (Message) -> Bool {
        { $0.kind == .snapshotResponse && $0.from == peer && !$0.reject && $0.snapshotOffset >= offset }
    }

    @Test func newEmptyNodeIsBroughtUpBySnapshot_7() throws {
        var c = try clusterWhereNode3NeedsASnapshot()
        let snapshot = c.disks[1]!.latestSnapshot
        c.heal()
        c.tickAll(times: 2)
        #expect(c.installs[3] == [snapshot.metadata])
        #expect(c.disks[3]!.latestSnapshot == snapshot, "the follower stores the leader's snapshot byte for byte")
        #expect(c.payloads(3) == all, "its application restored the state from the snapshot")
        #expect(c.nodes[3]!.commitIndex == c.nodes[1]!.commitIndex)
        // Replication continues after the snapshot.
        try c.nodes[1]!.propose([99])
        c.deliverAll()
        #expect(c.payloads(3) == all + [[99]])
        #expect(c.nodes[1]!.counters.snapshotTransfersCompleted == 1)
    }

    @Test func noMessageOrStorageReadCarriesMoreThanTheChunkBound() throws {
        let recorders = Box<[NodeID: RecordingStorage]>([:])
        var c = try clusterWhereNode3NeedsASnapshot { id, disk in
            let r = RecordingStorage(disk)
            recorders.value[id] = r
            return r
        }
        c.recordTraffic = true
        c.heal()
        c.tickAll(times: 2)
        #expect(c.installs[3]!.count == 1)
        let chunks = c.traffic.filter { $0.kind == .snapshot }
        #expect(chunks.count >= 17)
        #expect(chunks.allSatisfy { $0.snapshot!.data.count <= Self.chunkBytes })
        #expect(recorders.value[1]!.largestChunkRequestBytes == Self.chunkBytes)
        // At no moment are more than `window` chunks unacknowledged.
        var unacked: [UInt64] = []
        for m in c.traffic {
            if m.kind == .snapshot {
                unacked.append(m.snapshot!.offset + UInt64(m.snapshot!.data.count))
                #expect(unacked.count <= Self.window)
            } else if m.kind == .snapshotResponse {
                unacked.removeAll { $0 <= m.snapshotOffset }
            }
        }
    }

    @Test func interruptedTransferResumesFromTheAcknowledgedOffset() throws {
        var c = try clusterWhereNode3NeedsASnapshot()
        c.heal()
        c.tick(1)
        let acked = deliver(&c, until: isAck(from: 3, atLeast: 4 * UInt64(Self.chunkBytes))).snapshotOffset
        // Everything in flight is lost.
        c.isolate(3)
        c.deliverAll()
        c.heal()
        c.recordTraffic = true
        // No progress for an election timeout: the leader resends from the last acknowledged byte.
        for _ in 0..<12 {
            c.tick(1)
            c.tick(2)
            c.deliverAll()
        }
        let resent = try #require(c.traffic.first { $0.kind == .snapshot })
        #expect(resent.snapshot!.offset == acked, "resumes at the acknowledged offset, not at 0")
        #expect(c.nodes[1]!.counters.snapshotRetries >= 1)
        #expect(c.installs[3]!.count == 1)
        #expect(c.payloads(3) == all)
    }

    @Test func unreachableFollowerPausesTheTransferUntilItAnswers() throws {
        var c = try clusterWhereNode3NeedsASnapshot()
        c.heal()
        c.tick(1)
        let acked = deliver(&c, until: isAck(from: 3, atLeast: 2 * UInt64(Self.chunkBytes))).snapshotOffset
        // The connection to 3 broke: what was queued for it is gone.
        c.pending.removeAll { $0.to == 3 || $0.from == 3 }
        c.nodes[1]!.reportUnreachable(3)
        c.recordTraffic = true
        c.flushReadies()
        #expect(!c.traffic.contains { $0.kind == .snapshot }, "paused: nothing is sent to an unreachable peer")
        // 3 answers the next heartbeat: the transfer resumes at once, from the acknowledged byte.
        c.tick(1)
        c.deliverAll()
        let resumed = try #require(c.traffic.first { $0.kind == .snapshot })
        #expect(resumed.snapshot!.offset == acked)
        #expect(c.installs[3]!.count == 1)
        #expect(c.payloads(3) == all)
    }

    @Test func followerRestartMidTransferRestartsAtZero() throws {
        var c = try clusterWhereNode3NeedsASnapshot()
        c.heal()
        c.tick(1)
        deliver(&c, until: isAck(from: 3, atLeast: 3 * UInt64(Self.chunkBytes)))
        // Node 3 restarts: its staging state is volatile, so it asks for the beginning.
        c.restart(3, configure: Self.configure)
        c.recordTraffic = true
        c.deliverAll()
        c.tickAll(times: 2)
        #expect(c.traffic.contains { $0.kind == .snapshotResponse && $0.from == 3 && $0.reject && $0.snapshotOffset == 0 })
        #expect(c.traffic.contains { $0.kind == .snapshot && $0.snapshot!.offset == 0 }, "the leader starts over at 0")
        #expect(c.installs[3]!.count == 1)
        #expect(c.disks[3]!.latestSnapshot == c.disks[1]!.latestSnapshot)
        #expect(c.payloads(3) == all)
    }

    @Test func newerLocalSnapshotMidTransferRestartsAtZero() throws {
        var c = try clusterWhereNode3NeedsASnapshot()
        let first = c.disks[1]!.latestSnapshot.metadata
        c.heal()
        c.tick(1)
        deliver(&c, until: isAck(from: 3, atLeast: 3 * UInt64(Self.chunkBytes)))
        // Meanwhile the leader commits more and compacts again.
        try c.nodes[1]!.propose([77])
        c.cut.insert([1, 3])  // hold 3's traffic while 1 and 2 commit
        c.deliverAll()
        c.compact(1, paddingBytes: 500)
        let second = c.disks[1]!.latestSnapshot.metadata
        #expect(second.index > first.index)
        c.heal()
        c.recordTraffic = true
        c.tickAll(times: 13)
        let chunks = c.traffic.filter { $0.kind == .snapshot }.map(\.snapshot!)
        let firstOfSecond = try #require(chunks.first { $0.metadata == second })
        #expect(firstOfSecond.offset == 0)
        #expect(c.installs[3] == [second], "only the newer snapshot is installed")
        #expect(c.payloads(3) == all + [[77]])
    }

    @Test func chunkOfAnOldSnapshotIsIgnored() {
        var s = Solo(id: 2)
        let conf = ConfState(voters: [1, 2, 3])
        let older = SnapshotMetadata(index: 10, term: 1, conf: conf)
        let newer = SnapshotMetadata(index: 20, term: 1, conf: conf)
        let data = (0..<100).map { UInt8($0) }
        func chunk(_ m: SnapshotMetadata, _ lo: Int, _ hi: Int) -> Message {
            Message(kind: .snapshot, from: 1, to: 2, term: 1,
                    snapshot: SnapshotChunk(metadata: m, offset: UInt64(lo), totalBytes: 100, data: Array(data[lo..<hi]), done: hi == 100))
        }
        #expect(s.step(chunk(newer, 0, 40)) == .accepted)
        #expect(s.step(chunk(older, 40, 80)) == .ignored(.staleSnapshot))
        #expect(s.step(chunk(older, 0, 40)) == .ignored(.staleSnapshot), "an old beginning does not reset the staging")
        #expect(s.step(chunk(newer, 40, 80)) == .accepted)
        #expect(s.step(chunk(newer, 80, 100)) == .accepted)
        let rd = s.ready()
        #expect(rd.snapshotChunks.map(\.offset) == [0, 40, 80])
        #expect(rd.snapshot == newer)
        #expect(s.disk.latestSnapshot == Snapshot(metadata: newer, data: data))
        #expect(s.node.commitIndex == 20 && s.node.lastIndex == 20)
    }

    @Test func outOfOrderChunkIsAnsweredWithTheOffsetWantedAndADuplicateIsReacknowledged() {
        var s = Solo(id: 2)
        let meta = SnapshotMetadata(index: 5, term: 1, conf: ConfState(voters: [1, 2, 3]))
        func chunk(_ lo: Int, _ hi: Int) -> Message {
            Message(kind: .snapshot, from: 1, to: 2, term: 1,
                    snapshot: SnapshotChunk(metadata: meta, offset: UInt64(lo), totalBytes: 30, data: Array(repeating: 1, count: hi - lo), done: hi == 30))
        }
        let gap = s.answer(chunk(10, 20))
        #expect(gap.count == 1 && gap[0].reject && gap[0].snapshotOffset == 0, "nothing staged yet: wants offset 0")
        let first = s.answer(chunk(0, 10))
        #expect(first.count == 1 && !first[0].reject && first[0].snapshotOffset == 10)
        let dup = s.answer(chunk(0, 10))
        #expect(dup.count == 1 && !dup[0].reject && dup[0].snapshotOffset == 10, "a duplicate is re-acknowledged")
        let skip = s.answer(chunk(20, 30))
        #expect(skip.count == 1 && skip[0].reject && skip[0].snapshotOffset == 10)
        #expect(s.node.lastIndex == 0, "nothing installed")
    }

    @Test func snapshotAtOrBelowTheCommitIndexIsAcknowledgedWithoutInstall() {
        var s = Solo(id: 2, log: entries([1, 1, 1, 1, 1]), hardState: HardState(term: 1, commit: 5))
        let meta = SnapshotMetadata(index: 3, term: 1, conf: ConfState(voters: [1, 2, 3]))
        let out = s.answer(Message(kind: .snapshot, from: 1, to: 2, term: 1,
                                   snapshot: SnapshotChunk(metadata: meta, offset: 0, totalBytes: 50, data: Array(repeating: 0, count: 10), done: false)))
        #expect(out.count == 1 && out[0].kind == .snapshotResponse && !out[0].reject && out[0].snapshotOffset == 50, "acknowledged as done")
        #expect(s.disk.latestSnapshot.metadata.index == 0 && s.disk.staged == nil, "nothing staged or installed")
        #expect(s.node.lastIndex == 5)
    }

    @Test func followerHoldingTheSnapshotsLastEntryKeepsItsLogAndCommits() {
        var s = Solo(id: 2, log: entries([1, 1, 1, 1, 1]), hardState: HardState(term: 1, commit: 1))
        let meta = SnapshotMetadata(index: 3, term: 1, conf: ConfState(voters: [1, 2, 3]))
        let out = s.answer(Message(kind: .snapshot, from: 1, to: 2, term: 1,
                                   snapshot: SnapshotChunk(metadata: meta, offset: 0, totalBytes: 50, data: Array(repeating: 0, count: 10), done: false)))
        #expect(out.first?.snapshotOffset == 50 && out.first?.reject == false)
        #expect(s.node.commitIndex == 3, "fast-forwarded to the snapshot's index")
        #expect(s.node.lastIndex == 5, "the log after it is kept")
        #expect(s.disk.latestSnapshot.metadata.index == 0)
    }

    @Test func followerWhoseLogDisagreesInstallsAndDiscardsItsLog() {
        var s = Solo(id: 2, log: entries([1, 1, 2, 2]), hardState: HardState(term: 2, commit: 1))
        let meta = SnapshotMetadata(index: 3, term: 3, conf: ConfState(voters: [1, 2, 3]))
        _ = s.answer(Message(kind: .snapshot, from: 1, to: 2, term: 3,
                             snapshot: SnapshotChunk(metadata: meta, offset: 0, totalBytes: 4, data: [1, 2, 3, 4], done: true)))
        #expect(s.node.lastIndex == 3 && s.node.term(at: 3) == 3 && s.node.term(at: 4) == nil)
        #expect(s.disk.latestSnapshot == Snapshot(metadata: meta, data: [1, 2, 3, 4]))
        #expect(throws: StorageError.unavailable) { try s.disk.term(4) }
    }

    @Test func malformedChunksAreIgnored() {
        var s = Solo(id: 2)
        let meta = SnapshotMetadata(index: 5, term: 1, conf: ConfState(voters: [1, 2, 3]))
        let bad: [SnapshotChunk?] = [
            nil,
            SnapshotChunk(metadata: meta, offset: 8, totalBytes: 10, data: [1, 2, 3], done: false),  // beyond total
            SnapshotChunk(metadata: meta, offset: 0, totalBytes: 10, data: [1, 2, 3], done: true),   // done too early
            SnapshotChunk(metadata: meta, offset: 7, totalBytes: 10, data: [1, 2, 3], done: false),  // last, not done
            SnapshotChunk(metadata: SnapshotMetadata(index: 5, term: 9, conf: meta.conf), offset: 0, totalBytes: 1, data: [1], done: true),
            SnapshotChunk(metadata: SnapshotMetadata(index: 0, term: 1, conf: meta.conf), offset: 0, totalBytes: 1, data: [1], done: true),
            SnapshotChunk(metadata: SnapshotMetadata(index: 5, term: 1, conf: ConfState(voters: [])), offset: 0, totalBytes: 1, data: [1], done: true),
            SnapshotChunk(metadata: meta, offset: UInt64.max, totalBytes: UInt64.max, data: [1], done: true),  // overflow
        ]
        for c in bad {
            let r = s.step(Message(kind: .snapshot, from: 1, to: 2, term: 1, snapshot: c))
            guard case .ignored(.malformed) = r else { Issue.record("accepted \(String(describing: c)): \(r)"); continue }
        }
        let r = s.step(Message(kind: .heartbeat, from: 1, to: 2, term: 1,
                               snapshot: SnapshotChunk(metadata: meta, offset: 0, totalBytes: 1, data: [1], done: true)))
        guard case .ignored(.malformed) = r else { Issue.record("a heartbeat carrying a chunk was accepted: \(r)"); return }
        #expect(s.node.term == 0 && s.node.lastIndex == 0, "a malformed message changes nothing")
    }

    @Test func leaderIgnoresAcknowledgementsOfAnotherSnapshotOrBeyondIt() throws {
        var c = try clusterWhereNode3NeedsASnapshot()
        c.heal()
        c.tick(1)
        deliver(&c, until: { $0.kind == .snapshot && $0.to == 3 })
        let meta = c.disks[1]!.latestSnapshot.metadata
        let total = UInt64(c.disks[1]!.latestSnapshot.data.count)
        var other = Message(kind: .snapshotResponse, from: 3, to: 1, term: 1, logTerm: meta.term, index: meta.index - 1)
        other.snapshotOffset = total
        #expect(c.nodes[1]!.step(other) == .ignored(.staleResponse))
        var beyond = Message(kind: .snapshotResponse, from: 3, to: 1, term: 1, logTerm: meta.term, index: meta.index)
        beyond.snapshotOffset = total + 1
        guard case .ignored(.malformed) = c.nodes[1]!.step(beyond) else { Issue.record("accepted an offset beyond the snapshot"); return }
        c.deliverAll()
        #expect(c.payloads(3) == all)
    }
}

/// A reference a test closure can fill in.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// Wraps a storage and records the largest snapshot chunk the core asked for.
final class RecordingStorage: RaftStorage {
    let inner: MemoryStorage
    var largestChunkRequestBytes = 0

    init(_ inner: MemoryStorage) { self.inner = inner }

    func initialState() throws(StorageError) -> (HardState, ConfState) { try inner.initialState() }
    func firstIndex() throws(StorageError) -> LogIndex { try inner.firstIndex() }
    func lastIndex() throws(StorageError) -> LogIndex { try inner.lastIndex() }
    func term(_ index: LogIndex) throws(StorageError) -> Term { try inner.term(index) }
    func entries(_ lo: LogIndex, _ hi: LogIndex, maxBytes: Int) throws(StorageError) -> [Entry] {
        try inner.entries(lo, hi, maxBytes: maxBytes)
    }
    func snapshotMetadata() throws(StorageError) -> SnapshotMetadata { try inner.snapshotMetadata() }
    func snapshotChunk(offset: UInt64, maxBytes: Int) throws(StorageError) -> SnapshotChunk {
        largestChunkRequestBytes = max(largestChunkRequestBytes, maxBytes)
        return try inner.snapshotChunk(offset: offset, maxBytes: maxBytes)
    }
}
