import ArgumentParser
import ClusterSim
import Controller
import Raft
import RaftSim

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
        if teeth {
            let bugs = plantBug.isEmpty ? PlantedBug.allCases : plantBug.compactMap(PlantedBug.init(rawValue:))
            return try runTeeth(bugs.map { bug in
                var planted = options
                planted.plantedBugs = [bug]
                let frozen = planted
                return (bug.rawValue, { Simulation(seed: $0, options: frozen).run() })
            }, header: "teeth nodes=\(nodes) steps=\(steps)")
        }
        options.plantedBugs = Set(plantBug.compactMap(PlantedBug.init(rawValue:)))
        let frozen = options
        let results = runSeeds(first: seed, count: seeds) { Simulation(seed: $0, options: frozen).run() }
        var total = SimCounters()
        for r in results { total.add(r.counters) }
        let violations = printResults(results)
        print("seeds=\(seeds) violations=\(violations) nodes=\(nodes) steps=\(steps) commits-per-seed=\(total.commits / seeds) \(total.summary)")
        if violations > 0 { throw ExitCode(1) }
    }
}
