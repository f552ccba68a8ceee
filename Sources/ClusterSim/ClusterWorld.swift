import ClusterModel
import Controller
import Leader
import PeerNode
import Raft
import RaftSim

/// The cluster world (`peer-sim --world cluster`, docs/simulator.md): simulated Raft nodes that
/// apply the real `ClusterModel`, each running the leader's real loops (`Leader`: registrar,
/// operation driver, data-plane watch, provisioner, balancer) over simulated ports: the node,
/// the clock, the provider and the routers. Everything runs on the caller's thread; every task
/// runs on one `SimExecutor` whose jobs the world runs when it chooses, so a seed gives the same
/// run, byte for byte. Time is virtual: 10 ms a step.
///
/// Faults: leader crashes between any two jobs of its loops (in the middle of a round, between a
/// provider call and the proposal that records it), crashes of any node, partitions, message
/// loss and delay, clock skew, and a provider whose calls fail, fail after acting, or hang.
/// Then everything heals and the world must settle: every operation finished, the provider's
/// instances the committed ones, every replica's digest the same.
public final class ClusterWorld: @unchecked Sendable {
    static let startMs: Int64 = 1_800_000_000_000
    static let stepMs: Int64 = 10
    static let tickMs: Int64 = 100
    /// Jobs the loops may run without simulated time passing before it is a livelock.
    static let jobsPerStepMax = 200_000

    let options: ClusterOptions
    let seed: UInt64
    var rng: SplitMix64
    let executor = SimExecutor()
    var nowMs: Int64 = startMs
    var nodes: [NodeID: WorldNode] = [:]
    /// Node ids in creation order (iteration order is part of the run).
    var order: [NodeID] = []
    let founders: [NodeID]
    var network = Network()
    var timers = Timers()
    var counters = ClusterCounters()
    var violation: Violation?
    var trace: [String] = []
    var faults = true
    /// Jobs left before the armed leader crash strikes (nil: none armed).
    var leaderCrashInJobs: Int?
    var provider = ProviderLedger()
    var log = LogObserver()
    var platform = Platform()
    var load = LoadModel()
    var isolationEnds: [NodeID: Int64] = [:]

    public init(seed: UInt64, options: ClusterOptions) {
        self.seed = seed
        self.options = options
        rng = SplitMix64(seed: seed ^ 0x436C_7573_7465_72)
        founders = (1...options.nodes).map { NodeID($0) }
        let conf = ConfState(voters: Set(founders))
        for id in founders { addNode(id, conf: conf) }
    }

    func addNode(_ id: NodeID, conf: ConfState) {
        let skew = Int64(rng.next() % 401) - 200
        let phase = Int64(rng.next() % 10) * Self.stepMs
        nodes[id] = WorldNode(id: id, disk: MemoryStorage(conf: conf), skewMs: skew, tickPhaseMs: phase)
        order.append(id)
    }

    func random(_ range: ClosedRange<Int64>) -> Int64 { range.lowerBound + Int64(rng.next() % UInt64(range.upperBound - range.lowerBound + 1)) }
    func chance(perMille: Int) -> Bool { Int(rng.next() % 1000) < perMille }

    /// Runs the fault phase, then the settle phase; stops at the first violation.
    public func run() -> ClusterResult {
        for id in founders { start(id) }
        let faultEnd = nowMs + Int64(options.seconds) * 1000
        while nowMs < faultEnd && violation == nil { step() }
        if violation == nil { settle() }
        counters.simulatedMs = nowMs - Self.startMs
        shutDown()
        return ClusterResult(seed: seed, violation: violation, counters: counters, trace: violation == nil ? [] : trace)
    }

    func settle() {
        faults = false
        leaderCrashInJobs = nil
        network.healAll()
        load.calm()
        note("settle: faults off, network healed, load at its base")
        for id in order where nodes[id]!.startAtMs == 0 && !nodes[id]!.isUp && !nodes[id]!.destroyed { nodes[id]!.startAtMs = nowMs + 100 }
        let end = nowMs + Int64(options.settleSecondsMax) * 1000
        while violation == nil {
            step()
            guard nowMs % 1000 == 0 else { continue }
            guard let open = unsettled() else { break }
            if nowMs >= end {
                fail(open.invariant, "not settled \(options.settleSecondsMax) s after the faults stopped: \(open.why)")
                return
            }
        }
        // Every replica has applied everything: every state is the same.
        if violation == nil { checkDigests() }
    }

    /// One step of simulated time: timers, messages, ticks, then the loops and the nodes until
    /// both are quiet; then the workload and the faults.
    func step() {
        nowMs += Self.stepMs
        let now = nowMs
        for resume in timers.take(where: { at, _ in at <= now }) { resume() }
        deliver()
        for id in order {
            let n = nodes[id]!
            if !n.isUp, n.startAtMs != 0, nowMs >= n.startAtMs, !n.destroyed { start(id) }
            guard n.isUp else { continue }
            if (nowMs + n.tickPhaseMs) % Self.tickMs == 0 { n.raft!.tick() }
            expire(n)
            updateDataPlane(n)
        }
        runUntilQuiet()
        if violation != nil { return }
        if nowMs % 10_000 == 0 { checkDigests() }
        platformStep()
        load.step(world: self)
        if faults { faultStep() }
        runUntilQuiet()
    }

    func runUntilQuiet() {
        var jobs = 0
        while violation == nil {
            var progressed = false
            while executor.runOne() {
                progressed = true
                jobs += 1
                counters.jobs += 1
                if jobs > Self.jobsPerStepMax {
                    fail("livelock", "the leader loops ran \(Self.jobsPerStepMax) jobs without simulated time passing")
                    return
                }
                if let left = leaderCrashInJobs {
                    if left <= 0 {
                        leaderCrashInJobs = nil
                        if let l = leaderID() {
                            counters.leaderCrashes += 1
                            crash(l, why: "leader crash between two jobs of its loops")
                        }
                    } else {
                        leaderCrashInJobs = left - 1
                    }
                }
            }
            for id in order where nodes[id]!.hasReady {
                handleReady(nodes[id]!)
                progressed = true
                if violation != nil { return }
            }
            if !progressed { return }
        }
    }

    /// The node that leads, up and not cut off (the newest term, if two think they lead).
    func leaderID() -> NodeID? {
        var best: (NodeID, Term)?
        for id in order {
            let n = nodes[id]!
            guard n.isUp, let term = n.withRaft({ $0.role == .leader ? $0.term : nil }) else { continue }
            if best == nil || term > best!.1 { best = (id, term) }
        }
        return best?.0
    }

    func note(_ s: String) {
        trace.append("t=\(nowMs - Self.startMs) \(s)")
        if trace.count > options.traceEventsMax { trace.removeFirst(trace.count - options.traceEventsMax) }
    }

    func fail(_ invariant: String, _ detail: String) {
        guard violation == nil else { return }
        violation = Violation(invariant: invariant, detail: detail)
        note("VIOLATION \(invariant): \(detail)")
    }

    /// Every process dies and its tasks wind down, so nothing outlives the run.
    func shutDown() {
        for id in order where nodes[id]!.process != nil { stop(nodes[id]!) }
        var left = 1_000_000
        while left > 0 && executor.runOne() { left -= 1 }
        for resume in timers.take(where: { _, _ in true }) { resume() }
        while left > 0 && executor.runOne() { left -= 1 }
    }
}
