import ArgumentParser
import CAllocCounter
import Dispatch
import Raft

/// `peer-bench`: benchmarks of the pure core. Results go to docs/benchmarks.md (see there for
/// the command lines and the machine). Never a timed test: run it by hand or from `make bench`.
@main
struct PeerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer-bench",
        abstract: "Benchmarks of the consensus core.",
        subcommands: [RaftThroughput.self]
    )
}

/// Committed proposals per second of an in-process 3-node cluster: no disk (MemoryStorage),
/// no network (messages handed over in memory), one thread.
struct RaftThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "raft", abstract: "In-process 3-node commit throughput.")

    @Option(help: "Proposals to commit.") var proposals = 2_000_000
    @Option(help: "Proposals per propose(batch:) call.") var batch = 256
    @Option(help: "Payload bytes per proposal.") var payloadBytes = 256
    @Option(help: "Nodes in the cluster.") var nodes = 3

    func validate() throws {
        guard proposals > 0, batch > 0, payloadBytes >= 0, (1...7).contains(nodes) else {
            throw ValidationError("--proposals and --batch must be positive, --nodes 1...7")
        }
    }

    func run() throws {
        var cluster = BenchCluster(size: nodes)
        cluster.electFirst()
        // Warm up (allocator, dictionary growth), then measure.
        cluster.commit(proposals: min(proposals / 10, 100_000), batch: batch, payloadBytes: payloadBytes)
        let allocsBefore = peer_alloc_count()
        let start = DispatchTime.now().uptimeNanoseconds
        cluster.commit(proposals: proposals, batch: batch, payloadBytes: payloadBytes)
        let elapsedNs = DispatchTime.now().uptimeNanoseconds - start
        let allocs = peer_alloc_count() - allocsBefore
        let seconds = Double(elapsedNs) / 1e9
        let rate = Double(proposals) / seconds
        print("raft nodes=\(nodes) proposals=\(proposals) batch=\(batch) payload_bytes=\(payloadBytes) "
              + "seconds=\(fmt(seconds)) committed_per_second=\(Int(rate)) "
              + "allocations_per_proposal=\(fmt(Double(allocs) / Double(proposals)))")
    }
}

func fmt(_ x: Double) -> String {
    let scaled = (x * 1000).rounded() / 1000
    return "\(scaled)"
}

/// The cluster under test: nodes, their in-memory disks, and a message queue.
struct BenchCluster {
    var nodes: [RaftNode] = []
    var disks: [MemoryStorage] = []
    var queue: [Message] = []
    var leaderApplied: LogIndex = 0

    init(size: Int) {
        let conf = ConfState(voters: Set((1...size).map { NodeID($0) }))
        for k in 1...size {
            var config = RaftConfig(id: NodeID(k))
            config.appendBytesMax = 4 << 20
            config.inflightMessagesMax = 64
            config.uncommittedBytesMax = 0
            let disk = MemoryStorage(conf: conf)
            disks.append(disk)
            nodes.append(try! RaftNode(config: config, storage: disk, seed: UInt64(k)))
        }
    }

    mutating func electFirst() {
        nodes[0].campaign()
        pump()
        precondition(nodes[0].role == .leader, "node 1 did not become leader")
    }

    /// Proposes `proposals` entries in batches and runs the cluster until the leader applied them.
    mutating func commit(proposals: Int, batch: Int, payloadBytes: Int) {
        let payload = [UInt8](repeating: 0xA5, count: payloadBytes)
        var remaining = proposals
        var sinceCompaction = 0
        var target: LogIndex = 0
        var batchItems: [[UInt8]] = Array(repeating: payload, count: batch)
        while remaining > 0 {
            let n = min(batch, remaining)
            if n != batchItems.count { batchItems = Array(repeating: payload, count: n) }
            let range = try! nodes[0].propose(batch: batchItems)
            target = range.upperBound
            remaining -= n
            pump()
            sinceCompaction += n
            if sinceCompaction >= 65_536 {
                compact()
                sinceCompaction = 0
            }
        }
        while leaderApplied < target { pump() }
        compact()
    }

    /// Handles every Ready and delivers every message until the cluster is quiet.
    mutating func pump() {
        var busy = true
        while busy {
            busy = false
            for i in nodes.indices where nodes[i].hasReady {
                busy = true
                let rd = nodes[i].ready()
                disks[i].persist(rd)
                queue.append(contentsOf: rd.messages)
                if i == 0, let last = rd.committedEntries.last { leaderApplied = last.index }
                nodes[i].advance(rd)
            }
            if !queue.isEmpty {
                busy = true
                let batch = queue
                queue.removeAll(keepingCapacity: true)
                for m in batch { nodes[Int(m.to - 1)].step(m) }
            }
        }
    }

    /// Keeps memory flat: every node compacts its log up to what all have applied.
    mutating func compact() {
        let upTo = nodes.map(\.appliedIndex).min()!
        for i in nodes.indices {
            disks[i].createSnapshot(at: upTo, conf: nodes[i].conf, data: [])
        }
    }
}
