import Foundation
import Testing
@testable import PeerStore
import Raft

/// The driver loop over a real store: persist each Ready, then advance. A single-voter group
/// elects itself, commits what it proposes, and after a restart from the file alone comes back
/// with the same term, vote, log and commit index.
@Suite struct RaftNodeOnPeerStoreTests {
    func drive(_ node: inout RaftNode, _ store: PeerStore, applied: inout [Entry]) throws {
        for _ in 0..<20 {
            let rd = node.ready()
            try store.persist(rd)
            applied.append(contentsOf: rd.committedEntries)
            node.advance(rd)
            if rd.isEmpty { return }
        }
    }

    @Test func singleVoterCommitsThroughPeerStoreAndRestartsFromTheFile() throws {
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        let conf = ConfState(voters: [1])
        var store = try PeerStore.open(path: path, clusterID: testCluster, peerID: 1, initialConf: conf)
        var node = try RaftNode(config: RaftConfig(id: 1), storage: store, seed: 1)
        var applied: [Entry] = []
        node.campaign()
        try drive(&node, store, applied: &applied)
        #expect(node.role == .leader)
        for i in 0..<50 {
            try node.propose(Array("command \(i)".utf8))
            try drive(&node, store, applied: &applied)
        }
        let term = node.term, last = node.lastIndex
        #expect(node.commitIndex == last)
        #expect(applied.filter { !$0.data.isEmpty }.map { String(decoding: $0.data, as: UTF8.self) } == (0..<50).map { "command \($0)" })
        try store.close()

        store = try PeerStore.open(path: path, clusterID: testCluster, peerID: 1, initialConf: conf)
        let restarted = try RaftNode(config: RaftConfig(id: 1), storage: store, seed: 2)
        #expect(restarted.term == term)
        #expect(restarted.vote == 1)
        #expect(restarted.lastIndex == last)
        #expect(restarted.commitIndex == last)
        #expect(try store.entries(1, last + 1, maxBytes: .max) == applied)
        try store.close()
    }

    /// Two nodes on two store files: the leader compacted its log, so the empty follower gets
    /// the snapshot in chunks, stages them in its store and installs it; both files then hold
    /// the same snapshot, and the follower's survives a reopen.
    @Test func followerOnPeerStoreInstallsTheLeadersSnapshotInChunks() throws {
        let dir = TempDir(); defer { dir.remove() }
        let conf = ConfState(voters: [1, 2])
        var options = PeerStore.Options()
        options.snapshotRowBytesMax = 1000
        var stores: [NodeID: PeerStore] = [:]
        for id in [NodeID(1), 2] {
            stores[id] = try PeerStore.open(path: dir.file("\(id).sqlite"), clusterID: testCluster, peerID: id, initialConf: conf, options: options)
        }
        try stores[1]!.persist(entries: entries(from: 1, count: 20, term: 1), hardState: HardState(term: 1, vote: 1, commit: 20))
        let state = payload(index: 20, term: 1, size: 10_000)
        try stores[1]!.compact(upTo: 20, conf: conf, data: state)
        var nodes: [NodeID: RaftNode] = [:]
        for id in [NodeID(1), 2] {
            var config = RaftConfig(id: id)
            config.snapshotChunkBytes = 1500
            config.snapshotChunksInflightMax = 2
            config.applied = id == 1 ? 20 : 0
            nodes[id] = try RaftNode(config: config, storage: stores[id]!, seed: id)
        }
        nodes[1]!.campaign()
        var queue: [Message] = []
        var largestChunk = 0
        var installs: [SnapshotMetadata] = []
        var busy = true
        while busy {
            busy = false
            for id in [NodeID(1), 2] where nodes[id]!.hasReady {
                busy = true
                let rd = nodes[id]!.ready()
                try stores[id]!.persist(rd)
                if let s = rd.snapshot { installs.append(s) }
                for m in rd.messages where m.kind == .snapshot { largestChunk = max(largestChunk, m.snapshot!.data.count) }
                queue += rd.messages
                nodes[id]!.advance(rd)
            }
            if !queue.isEmpty {
                busy = true
                let m = queue.removeFirst()
                nodes[m.to]!.step(m)
            }
        }
        #expect(nodes[1]!.role == .leader && nodes[2]!.leader == 1)
        #expect(installs == [try stores[1]!.snapshotMetadata()])
        #expect(largestChunk == 1500)
        #expect(try stores[2]!.snapshotData() == state)
        #expect(try stores[2]!.lastIndex() == stores[1]!.lastIndex())
        let path = stores[2]!.path
        try stores[2]!.close()
        let reopened = try PeerStore.open(path: path, clusterID: testCluster, peerID: 2, initialConf: conf)
        #expect(try reopened.snapshotMetadata().index == 20 && reopened.snapshotData() == state)
        #expect(try RaftNode(config: RaftConfig(id: 2), storage: reopened, seed: 3).commitIndex >= 20)
        try reopened.close()
        try stores[1]!.close()
    }
}
