import ArgumentParser
import ClusterSim
import Controller
import Dispatch
import RaftSim
import Synchronization

/// `peer-sim --world cluster`: the cluster world's seeds, and its teeth (each planted controller bug).
extension PeerSim {
    func clusterOptions() -> ClusterOptions {
        var options = ClusterOptions()
        options.nodes = nodes
        options.seconds = seconds
        options.traceEventsMax = trace
        return options
    }

    func runCluster() throws {
        var options = clusterOptions()
        if teeth { return try runClusterTeeth(options: options) }
        options.plantedBugs = Set(plantBug.compactMap(ControllerBug.init(rawValue:)))
        let results = runCluster(options: options, first: seed, count: seeds)
        var total = ClusterCounters()
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
        print("world=cluster seeds=\(seeds) violations=\(violations) nodes=\(nodes) seconds=\(seconds) commits-per-seed=\(total.commits / seeds) \(total.summary)")
        if violations > 0 { throw ExitCode(1) }
    }

    func runClusterTeeth(options base: ClusterOptions) throws {
        let bugs = plantBug.isEmpty ? ControllerBug.allCases : plantBug.compactMap(ControllerBug.init(rawValue:))
        var tally: [String] = []
        var missed = 0
        for bug in bugs {
            var options = base
            options.plantedBugs = [bug]
            var hit: ClusterResult?
            var next = seed
            let last = seed &+ UInt64(seeds - 1)
            while hit == nil && next <= last {
                let count = Int(min(UInt64(jobs), last - next + 1))
                hit = runCluster(options: options, first: next, count: count).first { $0.violation != nil }
                next &+= UInt64(count)
            }
            if let h = hit, let v = h.violation {
                print("bug=\(bug.rawValue) found-at-seed=\(h.seed) seeds=\(h.seed - seed + 1) invariant=\(v.invariant)")
                if verbose { print("    \(v)") }
                tally.append("\(bug.rawValue)=\(h.seed - seed + 1)")
            } else {
                print("bug=\(bug.rawValue) NOT FOUND in \(seeds) seeds")
                tally.append("\(bug.rawValue)=missed")
                missed += 1
            }
        }
        print("teeth world=cluster nodes=\(nodes) seconds=\(seconds) bugs=\(bugs.count) found=\(bugs.count - missed) seeds-to-find: \(tally.joined(separator: " "))")
        if missed > 0 { throw ExitCode(1) }
    }

    /// Seeds in parallel (--jobs threads, each world on one thread), results in seed order.
    func runCluster(options: ClusterOptions, first: UInt64, count: Int) -> [ClusterResult] {
        let slots = Mutex<[ClusterResult?]>(Array(repeating: nil, count: count))
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: jobs) { _ in
            while true {
                let k = next.add(1, ordering: .relaxed).oldValue
                if k >= count { return }
                let result = ClusterWorld(seed: first &+ UInt64(k), options: options).run()
                slots.withLock { $0[k] = result }
            }
        }
        return slots.withLock { $0.map { $0! } }
    }
}
