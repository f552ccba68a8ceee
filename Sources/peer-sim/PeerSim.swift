import ArgumentParser
import ClusterSim
import Controller
import Raft
import RaftSim
import Synchronization
import Dispatch

/// `peer-sim`: runs seeded whole-cluster Raft simulations and checks the safety properties.
@main
struct PeerSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer-sim",
        abstract: "Deterministic simulator: Raft alone (--world raft), or the whole cluster with the leader's loops (--world cluster).",
        discussion: "The same seed gives the same run, byte for byte. Exit status 1 when any seed violates an invariant."
    )

    @Option(help: "raft: the Raft core under every fault; cluster: Raft + ClusterModel + the leader's loops over simulated ports.")
    var world: String = "raft"
    @Option(help: "Cluster world: simulated seconds of the fault phase of each seed.") var seconds: Int = 240
    @Option(help: "First seed.") var seed: UInt64 = 1
    @Option(help: "Number of consecutive seeds to run, starting at --seed.") var seeds: Int = 1
    @Option(help: "Nodes in the cluster (3 or 5).") var nodes: Int = 3
    @Option(help: "Events in the safety phase of each seed.") var steps: Int = 2000
    @Option(help: "Worker threads (results are printed in seed order regardless).") var jobs: Int = 1
    @Option(name: .customLong("plant-bug"), help: "Plant a bug to prove the simulator catches it. Raft world: \(PlantedBug.allCases.map(\.rawValue).joined(separator: ", ")). Cluster world: \(ControllerBug.allCases.map(\.rawValue).joined(separator: ", ")).")
    var plantBug: [String] = []
    @Flag(help: "Print every seed's result line, not only failures.") var verbose = false
    @Flag(help: "Teeth: for each planted bug (every one, or those named by --plant-bug) run seeds from --seed until one finds it, at most --seeds; print the seed and invariant that caught each. Exit status 1 when any bug is not found.")
    var teeth = false
    @Option(help: "Events of the trace printed with a violation.") var trace: Int = 40

    func validate() throws {
        guard nodes == 3 || nodes == 5 else { throw ValidationError("--nodes must be 3 or 5, got \(nodes)") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1, got \(seeds)") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard (1...64).contains(jobs) else { throw ValidationError("--jobs must be 1...64, got \(jobs)") }
        guard (1...1_000_000).contains(trace) else { throw ValidationError("--trace must be 1...1000000, got \(trace)") }
        guard world == "raft" || world == "cluster" else { throw ValidationError("--world must be raft or cluster, got \(world)") }
        guard (10...86_400).contains(seconds) else { throw ValidationError("--seconds must be 10...86400, got \(seconds)") }
        for name in plantBug where world == "raft" && PlantedBug(rawValue: name) == nil {
            throw ValidationError("unknown --plant-bug '\(name)' for --world raft; known: \(PlantedBug.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for name in plantBug where world == "cluster" && ControllerBug(rawValue: name) == nil {
            throw ValidationError("unknown --plant-bug '\(name)' for --world cluster; known: \(ControllerBug.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        if world == "cluster" { return try runCluster() }
        var options = SimOptions()
        options.nodes = nodes
        options.steps = steps
        options.traceEventsMax = trace
        if teeth { return try runTeeth(options: options) }
        options.plantedBugs = Set(plantBug.compactMap(PlantedBug.init(rawValue:)))
        let results = runAll(options: options)
        var total = SimCounters()
        var violations = 0
        for r in results {
            total.add(r.counters)
            if let v = r.violation {
                violations += 1
                print("seed \(r.seed): VIOLATION \(v)")
                for line in r.trace { print("    \(line)") }
            } else if verbose {
                print("seed \(r.seed): ok \(r.counters.summary)")
            }
        }
        print("seeds=\(seeds) violations=\(violations) nodes=\(nodes) steps=\(steps) commits-per-seed=\(total.commits / seeds) \(total.summary)")
        if violations > 0 { throw ExitCode(1) }
    }

    /// Each planted bug alone, seed after seed (in parallel batches of --jobs; the first failing
    /// seed is the lowest, whatever --jobs is), until a seed finds it.
    func runTeeth(options base: SimOptions) throws {
        let bugs = plantBug.isEmpty ? PlantedBug.allCases : plantBug.compactMap(PlantedBug.init(rawValue:))
        var found: [(PlantedBug, UInt64?, String)] = []
        for bug in bugs {
            var options = base
            options.plantedBugs = [bug]
            var hit: SimResult?
            var next = seed
            let last = seed &+ UInt64(seeds - 1)
            while hit == nil && next <= last {
                let count = Int(min(UInt64(jobs), last - next + 1))
                hit = run(options: options, first: next, count: count).first { $0.violation != nil }
                next &+= UInt64(count)
            }
            let line: String
            if let h = hit, let v = h.violation {
                line = "bug=\(bug.rawValue) found-at-seed=\(h.seed) seeds=\(h.seed - seed + 1) invariant=\(v.invariant)"
                found.append((bug, h.seed - seed + 1, v.invariant))
            } else {
                line = "bug=\(bug.rawValue) NOT FOUND in \(seeds) seeds"
                found.append((bug, nil, ""))
            }
            print(line)
            if verbose, let h = hit, let v = h.violation { print("    \(v)") }
        }
        let missed = found.filter { $0.1 == nil }.count
        let tally = found.map { "\($0.0.rawValue)=\($0.1.map(String.init) ?? "missed")" }.joined(separator: " ")
        print("teeth nodes=\(nodes) steps=\(steps) bugs=\(bugs.count) found=\(bugs.count - missed) seeds-to-find: \(tally)")
        if missed > 0 { throw ExitCode(1) }
    }

    func runAll(options: SimOptions) -> [SimResult] {
        run(options: options, first: seed, count: seeds)
    }

    func run(options: SimOptions, first: UInt64, count: Int) -> [SimResult] {
        let slots = Mutex<[SimResult?]>(Array(repeating: nil, count: count))
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: jobs) { _ in
            while true {
                let k = next.add(1, ordering: .relaxed).oldValue
                if k >= count { return }
                let result = Simulation(seed: first &+ UInt64(k), options: options).run()
                slots.withLock { $0[k] = result }
            }
        }
        return slots.withLock { $0.map { $0! } }
    }
}
