import Foundation
import Raft
import RaftSim
import Testing

/// Runs seeds on a thread of their own, one after another. A seed takes a fraction of a second
/// in a debug build, and these tests run a few hundred: on Swift's cooperative pool (one thread
/// per core) they would hold every thread for most of a minute and starve the other suites'
/// I/O and timers (a CI run saw two provider tests miss their 30 s deadlines that way).
func simulate(_ seeds: ClosedRange<UInt64>, _ options: SimOptions, until stop: @escaping @Sendable (SimResult) -> Bool = { _ in false }) async -> [SimResult] {
    await onOwnThread(seeds, { Simulation(seed: $0, options: options).run() }, until: stop)
}

/// Runs `run` for each seed in order on a new thread, until `stop` says enough.
func onOwnThread<R: Sendable>(
    _ seeds: ClosedRange<UInt64>, _ run: @escaping @Sendable (UInt64) -> R, until stop: @escaping @Sendable (R) -> Bool
) async -> [R] {
    await withCheckedContinuation { (done: CheckedContinuation<[R], Never>) in
        let thread = Thread {
            var results: [R] = []
            for seed in seeds {
                let r = run(seed)
                results.append(r)
                if stop(r) { break }
            }
            done.resume(returning: results)
        }
        thread.start()
    }
}

/// The simulator is the main correctness test of the core; these tests prove the simulator
/// itself: it is deterministic, it passes on the real core, and it catches planted bugs.
/// Serialized: one simulation thread at a time leaves a core to the other suites.
@Suite(.serialized) struct SimulatorTests {
    @Test func sameSeedGivesTheSameRun() async {
        var options = SimOptions()
        options.steps = 1500
        let twice = await simulate(42...42, options) + simulate(42...43, options)
        let (a, b, c) = (twice[0], twice[1], twice[2])
        #expect(a.counters == b.counters)
        #expect(a.violation == b.violation)
        #expect(a.counters != c.counters, "different seeds explore different runs")
    }

    @Test(arguments: [3, 5])
    func realCoreHasNoViolations(nodes: Int) async {
        var options = SimOptions()
        options.nodes = nodes
        var total = SimCounters()
        for r in await simulate(1...10, options) {
            #expect(r.violation == nil, "seed \(r.seed): \(r.violation!)\n\(r.trace.joined(separator: "\n"))")
            #expect(r.counters.acked > 0 && r.counters.crashes > 0 && r.counters.partitions > 0)
            total.add(r.counters)
        }
        #expect(total.reads > 0 && total.transfers > 0 && total.snapshots > 0 && total.confChanges > 0,
                "the default run exercises reads, transfers, snapshot installs and membership changes: \(total.summary)")
        #expect(total.pauses > 0 && total.longDelays > 0 && total.bursts > 0 && total.tornWrites > 0 && total.crashesMidSend > 0
                && total.applyLagMax > 1,
                "the default run exercises pauses, long delays, reordering bursts, torn writes, crashes between sends and a lagging application: \(total.summary)")
    }

    /// Five-node runs work as hard as three-node ones: the fault mix is the same, so a mix that
    /// starves the larger cluster (most proposals refused for want of a quorum) shows here.
    @Test func fiveNodeRunsCommitAtLeastFourFifthsOfThreeNodeRuns() async {
        func commits(_ nodes: Int) async -> Int {
            var options = SimOptions()
            options.nodes = nodes
            return await simulate(1...20, options).reduce(0) { $0 + $1.counters.commits }
        }
        let three = await commits(3), five = await commits(5)
        #expect(five * 5 >= three * 4, "20 seeds: 5 nodes committed \(five), 3 nodes \(three)")
    }

    /// Each planted bug is found within a bounded number of seeds at three and at five nodes
    /// (the first failing seed is deterministic, so each bound is a regression check on the
    /// simulator's teeth), and by the invariant that checks its rule directly.
    @Test(arguments: [
        (PlantedBug.voteIgnoresLog, "vote-up-to-date", 10),
        (.voteTwicePerTerm, "one-vote-per-term", 10),
        (.voteNotPersisted, "durable-before-send", 10),
        (.commitByCountingOldTerms, "commit-own-term", 10),
        (.truncateOnStaleAppend, nil, 10),
        (.sendBeforePersist, "durable-before-send", 10),
        (.readWithoutQuorumCheck, "read-quorum-confirmed", 10),
        (.countLearnerVotes, "vote-quorum", 40),
        (.transferVoteIgnoresLog, "vote-up-to-date", 60),
        (.confChangeWhilePending, "one-voter-per-change", 90),
        (.commitBeyondAppend, "follower-commit-bounded", 40),
        (.readConfirmedByAnyHeartbeat, "read-quorum-confirmed", 10),
    ] as [(PlantedBug, String?, Int)])
    func simulatorFindsPlantedBug(bug: PlantedBug, invariant: String?, seedsMax: Int) async {
        for nodes in [3, 5] {
            var options = SimOptions()
            options.nodes = nodes
            options.plantedBugs = [bug]
            let runs = await simulate(1...UInt64(seedsMax), options) { $0.violation != nil }
            let found = runs.last.flatMap { r in r.violation.map { (r.seed, $0) } }
            #expect(found != nil, "planted bug \(bug.rawValue) not found in \(seedsMax) seeds of \(nodes) nodes")
            if let invariant, let (seed, v) = found {
                #expect(v.invariant == invariant, "\(bug.rawValue), \(nodes) nodes, seed \(seed): \(v)")
            }
        }
    }

    /// Every planted bug has a case above.
    @Test func everyPlantedBugIsTried() {
        #expect(PlantedBug.allCases.count == 12)
    }
}
