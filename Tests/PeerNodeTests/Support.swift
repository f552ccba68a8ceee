import ClusterModel
import Raft
import Synchronization
@testable import PeerNode

typealias TestStore = MemoryLogStore

/// Delivers messages between in-process nodes; a cut node neither sends nor receives.
final class LocalNetwork: Sendable {
    let nodes = Mutex<[NodeID: PeerNode]>([:])
    let cut = Mutex<Set<NodeID>>([])

    func sender(for id: NodeID) -> MessageSender {
        { [self] m in
            let blocked = cut.withLock { $0.contains(m.from) || $0.contains(m.to) }
            if blocked { return }
            let target = nodes.withLock { $0[m.to] }
            target?.receive(m)
        }
    }
}

/// A cluster of in-process PeerNodes over MemoryStorage, ticking every `tickMillis` ms.
final class LocalCluster {
    let network = LocalNetwork()
    var nodes: [NodeID: PeerNode] = [:]
    var stores: [NodeID: TestStore] = [:]
    let ids: [NodeID]
    let tickMillis: Int
    let snapshotEvery: UInt64
    /// Election timeout of nodes started from now on: 40 ticks of 5 ms, 200 ms. With 50 ms the
    /// full suite (real clusters, NGINX and wrk on the same 2 cores) starved node threads long
    /// enough for spurious elections, and a linearizable read then failed, correctly, with
    /// "leadership changed".
    var electionTicks = 40
    /// Snapshot piece size of nodes started from now on.
    var compactionPieceBytes = 512 << 10
    /// `PeerNodeOptions.snapshotLogBytesRatio` of nodes started from now on.
    var snapshotLogBytesRatio: Double = 1

    /// Raft's check-quorum (a leader that hears from no quorum steps down).
    let checkQuorum: Bool

    init(size: Int, tickMillis: Int = 5, snapshotEvery: UInt64 = 10_000, checkQuorum: Bool = true) throws {
        ids = (1...UInt64(size)).map { $0 }
        self.checkQuorum = checkQuorum
        self.tickMillis = tickMillis
        self.snapshotEvery = snapshotEvery
        for id in ids {
            stores[id] = TestStore(conf: ConfState(voters: Set(ids)))
            try startNode(id)
        }
    }

    func options(_ id: NodeID) -> PeerNodeOptions {
        var raft = RaftConfig(id: id)
        raft.electionTimeoutTicks = electionTicks
        raft.checkQuorum = checkQuorum
        var o = PeerNodeOptions(raft: raft)
        o.tickMillis = tickMillis
        o.snapshotEveryEntries = snapshotEvery
        o.compactionPieceBytes = compactionPieceBytes
        o.snapshotLogBytesRatio = snapshotLogBytesRatio
        o.proposalTimeoutMillis = 5_000
        return o
    }

    func startNode(_ id: NodeID) throws {
        let node = try PeerNode(options: options(id), store: stores[id]!, send: network.sender(for: id))
        nodes[id] = node
        network.nodes.withLock { $0[id] = node }
        node.start()
    }

    /// Stops a node; its store (the durable part) survives for a restart.
    func stopNode(_ id: NodeID) async {
        network.nodes.withLock { $0[id] = nil }
        await nodes.removeValue(forKey: id)?.stop()
    }

    func stopAll() async {
        for id in Array(nodes.keys) { await stopNode(id) }
    }

    /// Polls statuses until one node of `among` leads with the others agreeing, bounded by `tries`.
    func waitForLeader(among: [NodeID]? = nil, tries: Int = 2_000) async throws -> NodeID {
        let group = among ?? Array(nodes.keys)
        for _ in 0..<tries {
            var leaders: Set<NodeID> = []
            var known = true
            for id in group {
                guard let s = try? await nodes[id]?.status() else { known = false; break }
                leaders.insert(s.role == .leader ? s.id : s.leader)
            }
            if known, leaders.count == 1, let l = leaders.first, l != noNode,
               let ls = try? await nodes[l]?.status(), ls.role == .leader {
                return l
            }
            await Task.yield()
            try await Task.sleep(for: .milliseconds(tickMillis))
        }
        throw ClusterTimeout(what: "no single leader among \(group)")
    }

    /// Polls until every running node applied at least `index` (bounded).
    func waitForApplied(_ index: LogIndex, tries: Int = 4_000) async throws {
        for _ in 0..<tries {
            var ok = true
            for node in nodes.values {
                guard let s = try? await node.status(), s.appliedIndex >= index else { ok = false; break }
            }
            if ok { return }
            try await Task.sleep(for: .milliseconds(tickMillis))
        }
        throw ClusterTimeout(what: "not every node applied \(index)")
    }
}

extension LocalCluster {
    /// Polls until every running node compacted its log at or past `index` (bounded). The
    /// snapshot is encoded on its own thread, so it lands after the apply that triggered it.
    func waitForSnapshot(atLeast index: LogIndex, tries: Int = 4_000) async throws {
        for _ in 0..<tries {
            var ok = true
            for node in nodes.values {
                guard let s = try? await node.status(), s.snapshotIndex >= index else { ok = false; break }
            }
            if ok { return }
            try await Task.sleep(for: .milliseconds(tickMillis))
        }
        throw ClusterTimeout(what: "not every node compacted at or past \(index)")
    }
}

struct ClusterTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out: \(what)" }
}

let testSequence = Atomic<UInt64>(0)

/// A CreateTenant command with a fresh client id.
func createTenant(_ id: String, client: String? = nil, sequence: UInt64 = 1) -> [UInt8] {
    var body = PBCreateTenant()
    body.id = id
    body.plan = "dev"
    body.components = ["dfx-dev"]
    let n = testSequence.add(1, ordering: .relaxed).newValue
    return Command(clientId: client ?? "test-\(n)", sequence: sequence, leaderTimeMs: 1_700_000_000_000, .createTenant(body)).entryBytes()
}
