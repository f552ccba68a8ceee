import ClusterSim
import Controller
import RaftSim
import Testing

/// Runs cluster-world seeds on a thread of their own (as `simulate` does for the Raft world):
/// a world runs its own executor on the calling thread, and must not hold a thread of the
/// cooperative pool for seconds.
func simulateCluster(_ seeds: ClosedRange<UInt64>, _ options: ClusterOptions, until stop: @escaping @Sendable (ClusterResult) -> Bool = { _ in false }) async -> [ClusterResult] {
    await onOwnThread(seeds, { ClusterWorld(seed: $0, options: options).run() }, until: stop)
}

/// The cluster world (issue 22 part 4): the leader's real loops over simulated ports. These
/// tests prove the world itself: deterministic, silent on the real loops, and it finds each
/// planted controller bug by the invariant that states its rule.
@Suite(.serialized) struct ClusterWorldTests {
    @Test func sameSeedGivesTheSameRun() async {
        var options = ClusterOptions()
        options.seconds = 60
        let runs = await simulateCluster(5...5, options) + simulateCluster(5...6, options)
        #expect(runs[0].counters == runs[1].counters)
        #expect(runs[0].violation == runs[1].violation)
        #expect(runs[0].counters != runs[2].counters, "different seeds explore different runs")
    }

    @Test(arguments: [3, 5])
    func theRealLoopsHaveNoViolations(nodes: Int) async {
        var options = ClusterOptions()
        options.nodes = nodes
        var total = ClusterCounters()
        for r in await simulateCluster(1...4, options) {
            #expect(r.violation == nil, "seed \(r.seed): \(r.violation!)\n\(r.trace.joined(separator: "\n"))")
            total.add(r.counters)
        }
        #expect(total.leaderCrashes > 0 && total.crashes > total.leaderCrashes && total.partitions > 0 && total.providerFailures > 0
                && total.transfers > 0,
                "the run kills leaders mid-round, crashes and isolates nodes, transfers leadership and fails provider calls: \(total.summary)")
        #expect(total.operationsStarted > 0 && total.operationsFinished == total.operationsStarted && total.movesFinished > 0 && total.drained > 0,
                "every operation the log accepted finished; moves and drains ran to the end: \(total.summary)")
        #expect(total.failovers > 0 && total.scaleUps + total.rebalances > 0 && total.instancesCreated > 0,
                "the balancer and the provisioner act: \(total.summary)")
    }

    /// The cooldown bug breaks two rules; whichever a run breaks first names it.
    @Test(arguments: [
        (ControllerBug.provisionBeforeRecord, ["provision-without-intent"], 5),
        (.moveActivatesBeforeReady, ["activated-before-served"], 5),
        (.balancerWithoutCooldown, ["balancer-flap", "balancer-cooldown"], 10),
    ] as [(ControllerBug, Set<String>, Int)])
    func theWorldFindsPlantedControllerBug(bug: ControllerBug, invariants: Set<String>, seedsMax: Int) async {
        for nodes in [3, 5] {
            var options = ClusterOptions()
            options.nodes = nodes
            options.plantedBugs = [bug]
            let runs = await simulateCluster(1...UInt64(seedsMax), options) { $0.violation != nil }
            let found = runs.last.flatMap { r in r.violation.map { (r.seed, $0) } }
            #expect(found.map { invariants.contains($0.1.invariant) } == true, "\(bug.rawValue), \(nodes) nodes: \(found.map { "seed \($0.0): \($0.1)" } ?? "not found in \(seedsMax) seeds")")
        }
    }

    @Test func everyPlantedControllerBugIsTried() {
        #expect(ControllerBug.allCases.count == 3)
    }
}
