import Foundation
import PeerStore
import Raft

#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under the system temp dir, removed by `remove()`.
struct TempDir {
    let path: String

    init() {
        var template = Array((NSTemporaryDirectory() + "peerstore-test-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: \(String(cString: strerror(errno)))")
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Every file in the directory with the bytes it holds: "changes nothing on disk" compares these.
    func contents() -> [String: Data] {
        var out: [String: Data] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
            out[name] = FileManager.default.contents(atPath: file(name))
        }
        return out
    }
}

let testCluster = "cluster-test"
let testConf = ConfState(voters: [1, 2, 3])

func openStore(_ path: String, cluster: String = testCluster, peer: NodeID = 1, options: PeerStore.Options = .init()) throws(PeerStoreError) -> PeerStore {
    try PeerStore.open(path: path, clusterID: cluster, peerID: peer, initialConf: testConf, options: options)
}

/// Deterministic payload of `size` bytes for entry (index, term): a reader can verify content.
func payload(index: LogIndex, term: Term, size: Int) -> [UInt8] {
    var rng = SplitMix64(seed: index &* 1_000_003 &+ term)
    return (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}

func entries(from lo: LogIndex, count: Int, term: Term, size: Int = 16) -> [Entry] {
    (0..<count).map { i in
        let idx = lo + LogIndex(i)
        return Entry(term: term, index: idx, data: payload(index: idx, term: term, size: size))
    }
}

/// Every entry of the store's log, read back in one call.
func allEntries(_ s: any RaftStorage) throws -> [Entry] {
    let first = try s.firstIndex(), last = try s.lastIndex()
    if last < first { return [] }
    return try s.entries(first, last + 1, maxBytes: Int.max)
}
