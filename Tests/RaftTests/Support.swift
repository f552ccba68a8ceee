import Raft

/// A tiny synchronous cluster for unit tests: no loss, no delay unless a test holds messages.
/// Each node persists its Ready into its own MemoryStorage exactly as the driver contract says.
struct TestCluster {
    var nodes: [NodeID: RaftNode] = [:]
    var disks: [NodeID: MemoryStorage] = [:]
    var applied: [NodeID: [Entry]] = [:]
    /// Messages produced and not yet delivered.
    var pending: [Message] = []
    /// Links that drop everything (from, to).
    var cut: Set<[NodeID]> = []

    init(ids: [NodeID], configure: (inout RaftConfig) -> Void = { _ in }) {
        let conf = ConfState(voters: Set(ids))
        for id in ids {
            var config = RaftConfig(id: id)
            config.electionTimeoutTicks = 10
            config.heartbeatTimeoutTicks = 1
            configure(&config)
            let disk = MemoryStorage(conf: conf)
            disks[id] = disk
            nodes[id] = try! RaftNode(config: config, storage: disk, seed: id)
            applied[id] = []
        }
    }

    /// Handles every pending Ready of every node (persist, queue messages, apply, advance).
    mutating func flushReadies() {
        var again = true
        while again {
            again = false
            for id in nodes.keys.sorted() where nodes[id]!.hasReady {
                again = true
                let rd = nodes[id]!.ready()
                let disk = disks[id]!
                disk.append(rd.entries)
                if let hs = rd.hardState { disk.setHardState(hs) }
                pending.append(contentsOf: rd.messages)
                applied[id]!.append(contentsOf: rd.committedEntries)
                nodes[id]!.advance(rd)
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
        disks[id]!.append(rd.entries)
        if let hs = rd.hardState { disks[id]!.setHardState(hs) }
        applied[id]!.append(contentsOf: rd.committedEntries)
        nodes[id]!.advance(rd)
        return rd.messages
    }

    func payloads(_ id: NodeID) -> [[UInt8]] {
        applied[id]!.filter { !$0.data.isEmpty }.map(\.data)
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
        disk.append(rd.entries)
        if let hs = rd.hardState { disk.setHardState(hs) }
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
