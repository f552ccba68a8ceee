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
}
