import ArgumentParser
import ClusterSim
import Dispatch
import RaftSim
import Synchronization

/// What one seed's run reports, in either world.
protocol SeedResult: Sendable {
    var seed: UInt64 { get }
    var violation: Violation? { get }
    var trace: [String] { get }
    var summary: String { get }
}

extension SimResult: SeedResult {
    var summary: String { counters.summary }
}

extension ClusterResult: SeedResult {
    var summary: String { counters.summary }
}

extension PeerSim {
    /// Runs `count` seeds from `first` on --jobs threads; results in seed order.
    func runSeeds<R: SeedResult>(first: UInt64, count: Int, _ run: @escaping @Sendable (UInt64) -> R) -> [R] {
        let slots = Mutex<[R?]>(Array(repeating: nil, count: count))
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: jobs) { _ in
            while true {
                let k = next.add(1, ordering: .relaxed).oldValue
                if k >= count { return }
                let result = run(first &+ UInt64(k))
                slots.withLock { $0[k] = result }
            }
        }
        return slots.withLock { $0.map { $0! } }
    }

    /// Prints every violation with its trace (and, with --verbose, every clean seed); returns
    /// how many seeds violated an invariant.
    func printResults<R: SeedResult>(_ results: [R]) -> Int {
        var violations = 0
        for r in results {
            if let v = r.violation {
                violations += 1
                print("seed \(r.seed): VIOLATION \(v)")
                for line in r.trace { print("    \(line)") }
            } else if verbose {
                print("seed \(r.seed): ok \(r.summary)")
            }
        }
        return violations
    }

    /// Each planted bug alone, seed after seed (in parallel batches of --jobs; the first failing
    /// seed is the lowest, whatever --jobs is), until a seed finds it; then one line that says
    /// how many seeds each took. Exit status 1 when one is not found within --seeds.
    func runTeeth<R: SeedResult>(_ bugs: [(name: String, run: @Sendable (UInt64) -> R)], header: String) throws {
        var tally: [String] = []
        var missed = 0
        for bug in bugs {
            var hit: R?
            var next = seed
            let last = seed &+ UInt64(seeds - 1)
            while hit == nil && next <= last {
                let count = Int(min(UInt64(jobs), last - next + 1))
                hit = runSeeds(first: next, count: count, bug.run).first { $0.violation != nil }
                next &+= UInt64(count)
            }
            if let h = hit, let v = h.violation {
                print("bug=\(bug.name) found-at-seed=\(h.seed) seeds=\(h.seed - seed + 1) invariant=\(v.invariant)")
                if verbose { print("    \(v)") }
                tally.append("\(bug.name)=\(h.seed - seed + 1)")
            } else {
                print("bug=\(bug.name) NOT FOUND in \(seeds) seeds")
                tally.append("\(bug.name)=missed")
                missed += 1
            }
        }
        print("\(header) bugs=\(bugs.count) found=\(bugs.count - missed) seeds-to-find: \(tally.joined(separator: " "))")
        if missed > 0 { throw ExitCode(1) }
    }
}
