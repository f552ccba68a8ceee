import ArgumentParser
import Raft
import RaftSim
import Synchronization
import Dispatch

/// `peer-sim`: runs seeded whole-cluster Raft simulations and checks the safety properties.
@main
struct PeerSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer-sim",
        abstract: "Deterministic Raft cluster simulator: faults, crashes, partitions; safety then liveness.",
        discussion: "The same seed gives the same run, byte for byte. Exit status 1 when any seed violates an invariant."
    )

    @Option(help: "First seed.") var seed: UInt64 = 1
    @Option(help: "Number of consecutive seeds to run, starting at --seed.") var seeds: Int = 1
    @Option(help: "Nodes in the cluster (3 or 5).") var nodes: Int = 3
    @Option(help: "Events in the safety phase of each seed.") var steps: Int = 2000
    @Option(help: "Worker threads (results are printed in seed order regardless).") var jobs: Int = 1
    @Option(name: .customLong("plant-bug"), help: "Plant a classic Raft bug to prove the simulator catches it: \(PlantedBug.allCases.map(\.rawValue).joined(separator: ", ")).")
    var plantBug: [String] = []
    @Flag(help: "Print every seed's result line, not only failures.") var verbose = false
    @Option(help: "Events of the trace printed with a violation.") var trace: Int = 40

    func validate() throws {
        guard nodes == 3 || nodes == 5 else { throw ValidationError("--nodes must be 3 or 5, got \(nodes)") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1, got \(seeds)") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard (1...64).contains(jobs) else { throw ValidationError("--jobs must be 1...64, got \(jobs)") }
        guard (1...1_000_000).contains(trace) else { throw ValidationError("--trace must be 1...1000000, got \(trace)") }
        for name in plantBug where PlantedBug(rawValue: name) == nil {
            throw ValidationError("unknown --plant-bug '\(name)'; known: \(PlantedBug.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        var options = SimOptions()
        options.nodes = nodes
        options.steps = steps
        options.traceEventsMax = trace
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
        print("seeds=\(seeds) violations=\(violations) nodes=\(nodes) steps=\(steps) \(total.summary)")
        if violations > 0 { throw ExitCode(1) }
    }

    func runAll(options: SimOptions) -> [SimResult] {
        let first = seed
        let count = seeds
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
