import ArgumentParser
import ClusterSim
import Controller

/// `peer-sim --world cluster`: the cluster world's seeds, and its teeth (each planted controller bug).
extension PeerSim {
    func runCluster() throws {
        var options = ClusterOptions()
        options.nodes = nodes
        options.seconds = seconds
        options.traceEventsMax = trace
        if teeth {
            let bugs = plantBug.isEmpty ? ControllerBug.allCases : plantBug.compactMap(ControllerBug.init(rawValue:))
            return try runTeeth(bugs.map { bug in
                var planted = options
                planted.plantedBugs = [bug]
                let frozen = planted
                return (bug.rawValue, { ClusterWorld(seed: $0, options: frozen).run() })
            }, header: "teeth world=cluster nodes=\(nodes) seconds=\(seconds)")
        }
        options.plantedBugs = Set(plantBug.compactMap(ControllerBug.init(rawValue:)))
        let frozen = options
        let results = runSeeds(first: seed, count: seeds) { ClusterWorld(seed: $0, options: frozen).run() }
        var total = ClusterCounters()
        for r in results { total.add(r.counters) }
        let violations = printResults(results)
        print("world=cluster seeds=\(seeds) violations=\(violations) nodes=\(nodes) seconds=\(seconds) commits-per-seed=\(total.commits / seeds) \(total.summary)")
        if violations > 0 { throw ExitCode(1) }
    }
}
