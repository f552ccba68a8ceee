import Raft

/// A tiny synchronous cluster for unit tests: no loss, no delay unless a test holds messages.
/// Each node persists its Ready into its own MemoryStorage exactly as the driver contract says.
struct TestCluster {
    var nodes: [NodeID: RaftNode] = [:]
    var disks: [NodeID: MemoryStorage] = [:]
    var applied: [NodeID: [Entry]] = [:]
    /// Payloads a node's application restored from an installed snapshot (then `applied` follows).
    var restored: [NodeID: [[UInt8]]] = [:]
    /// Snapshots each node installed, in order.
    var installs: [NodeID: [SnapshotMetadata]] = [:]
    /// Every message any node sent, for tests that inspect traffic (`recordTraffic`).
    var traffic: [Message] = []
    var recordTraffic = false
    /// Messages produced and not yet delivered.
    var pending: [Message] = []
    /// Links that drop everything (from, to).
    var cut: Set<[NodeID]> = []

    /// `storage` may wrap a node's disk (the node reads through the wrapper; the test driver
    /// writes the disk itself).
    init(ids: [NodeID], configure: (inout RaftConfig) -> Void = { _ in }, storage: ((NodeID, MemoryStorage) -> any RaftStorage)? = nil) {
        let conf = ConfState(voters: Set(ids))
        for id in ids {
            var config = RaftConfig(id: id)
            config.electionTimeoutTicks = 10
            config.heartbeatTimeoutTicks = 1
            configure(&config)
            let disk = MemoryStorage(conf: conf)
            disks[id] = disk
            nodes[id] = try! RaftNode(config: config, storage: storage?(id, disk) ?? disk, seed: id)
            applied[id] = []
            restored[id] = []
            installs[id] = []
        }
    }

    /// Handles one Ready of `id` as a driver does: persist (stage, install, append, hard state),
    /// restore the application from an installed snapshot, apply, advance. Returns the messages.
    mutating func handle(_ id: NodeID, _ rd: Ready) -> [Message] {
        let disk = disks[id]!
        disk.persist(rd)
        if let meta = rd.snapshot {
            installs[id]!.append(meta)
            restored[id] = decodePayloads(disk.latestSnapshot.data)
            applied[id] = []
        }
        applied[id]!.append(contentsOf: rd.committedEntries)
        nodes[id]!.advance(rd)
        if recordTraffic { traffic.append(contentsOf: rd.messages) }
        return rd.messages
    }

    /// The application of `id` snapshots its state (every payload applied, padded with
    /// `paddingBytes` so it spans many chunks) and compacts its log up to what it applied.
    mutating func compact(_ id: NodeID, paddingBytes: Int = 0) {
        let index = nodes[id]!.appliedIndex
        let data = encodePayloads(payloads(id)) + [UInt8](repeating: 0xEE, count: paddingBytes)
        disks[id]!.createSnapshot(at: index, conf: nodes[id]!.conf, data: data)
    }

    /// Restarts `id` from its disk alone (volatile state, like snapshot staging, is lost).
    mutating func restart(_ id: NodeID, configure: (inout RaftConfig) -> Void = { _ in }) {
        var config = RaftConfig(id: id)
        config.electionTimeoutTicks = 10
        config.heartbeatTimeoutTicks = 1
        configure(&config)
        nodes[id] = try! RaftNode(config: config, storage: disks[id]!, seed: id &+ 1000)
        restored[id] = decodePayloads(disks[id]!.latestSnapshot.data)
        applied[id] = []
    }

    /// Handles every pending Ready of every node (persist, queue messages, apply, advance).
    mutating func flushReadies() {
        var again = true
        while again {
            again = false
            for id in nodes.keys.sorted() where nodes[id]!.hasReady {
                again = true
                let rd = nodes[id]!.ready()
                pending.append(contentsOf: handle(id, rd))
            }
        }
    }

    /// Delivers messages until the network is quiet (bounded, to catch livelock).
    mutating func deliverAll(maxMessages: Int = 100_000) {
        flushReadies()
        var delivered = 0
        while !pending.isEmpty {
            let m = pending.removeFirst()
            delivered += 1
            precondition(delivered < maxMessages, "network does not quiesce")
            if cut.contains([m.from, m.to]) || nodes[m.to] == nil { continue }
            nodes[m.to]!.step(m)
            flushReadies()
        }
    }

    mutating func elect(_ id: NodeID) {
        nodes[id]!.campaign()
        deliverAll()
        precondition(nodes[id]!.role == .leader, "node \(id) did not win: \(nodes[id]!.role)")
    }

    mutating func tick(_ id: NodeID, times: Int = 1) {
        for _ in 0..<times { nodes[id]!.tick() }
    }

    mutating func tickAll(times: Int = 1) {
        for _ in 0..<times {
            for id in nodes.keys.sorted() { nodes[id]!.tick() }
            deliverAll()
        }
    }

    mutating func isolate(_ id: NodeID) {
        for other in nodes.keys where other != id {
            cut.insert([id, other])
            cut.insert([other, id])
        }
    }

    mutating func heal() { cut = [] }

    /// Takes the Ready of one node without delivering its messages (returns them).
    mutating func readyMessages(_ id: NodeID) -> [Message] {
        guard nodes[id]!.hasReady else { return [] }
        let rd = nodes[id]!.ready()
        return handle(id, rd)
    }

    /// Every payload the application of `id` holds: restored from a snapshot, then applied.
    func payloads(_ id: NodeID) -> [[UInt8]] {
        restored[id]! + applied[id]!.filter { !$0.data.isEmpty }.map(\.data)
    }
}

/// A single node driven by hand: every message in and out is explicit.
struct Solo {
    var node: RaftNode
    let disk: MemoryStorage

    init(id: NodeID = 1, peers: [NodeID] = [1, 2, 3], configure: (inout RaftConfig) -> Void = { _ in }) {
        var config = RaftConfig(id: id)
        config.electionTimeoutTicks = 10
        config.heartbeatTimeoutTicks = 1
        configure(&config)
        disk = MemoryStorage(conf: ConfState(voters: Set(peers)))
        node = try! RaftNode(config: config, storage: disk, seed: 7)
    }

    /// Starts from a given durable log and hard state.
    init(id: NodeID = 1, peers: [NodeID] = [1, 2, 3], log: [Entry], hardState: HardState, configure: (inout RaftConfig) -> Void = { _ in }) {
        var config = RaftConfig(id: id)
        config.electionTimeoutTicks = 10
        config.heartbeatTimeoutTicks = 1
        configure(&config)
        disk = MemoryStorage(conf: ConfState(voters: Set(peers)))
        disk.append(log)
        disk.setHardState(hardState)
        node = try! RaftNode(config: config, storage: disk, seed: 7)
    }

    /// Handles the Ready and returns it (its messages are "sent" by returning them).
    @discardableResult
    mutating func ready() -> Ready {
        let rd = node.ready()
        disk.persist(rd)
        node.advance(rd)
        return rd
    }

    mutating func step(_ m: Message) -> StepResult {
        node.step(m)
    }

    /// Steps a message and returns the messages it produced.
    mutating func answer(_ m: Message) -> [Message] {
        node.step(m)
        return ready().messages
    }
}

func entries(_ terms: [Term], from start: LogIndex = 1) -> [Entry] {
    terms.enumerated().map { Entry(term: $0.element, index: start + LogIndex($0.offset), data: [UInt8($0.offset & 0xff)]) }
}

/// The test application's snapshot format: a count, then each payload with its length (u32 LE);
/// trailing bytes (padding) are ignored.
func encodePayloads(_ payloads: [[UInt8]]) -> [UInt8] {
    func u32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    var out = u32(payloads.count)
    for p in payloads { out += u32(p.count) + p }
    return out
}

func decodePayloads(_ data: [UInt8]) -> [[UInt8]] {
    guard data.count >= 4 else { return [] }
    func u32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(data[at + $1]) << (8 * $1) } }
    var out: [[UInt8]] = []
    var at = 4
    for _ in 0..<u32(0) {
        let n = u32(at)
        out.append(Array(data[(at + 4)..<(at + 4 + n)]))
        at += 4 + n
    }
    return out
}
