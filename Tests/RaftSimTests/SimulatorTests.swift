import Raft
import RaftSim
import Testing

/// The simulator is the main correctness test of the core; these tests prove the simulator
/// itself: it is deterministic, it passes on the real core, and it catches planted bugs.
@Suite struct SimulatorTests {
    @Test func sameSeedGivesTheSameRun() {
        var options = SimOptions()
        options.steps = 1500
        let a = Simulation(seed: 42, options: options).run()
        let b = Simulation(seed: 42, options: options).run()
        #expect(a.counters == b.counters)
        #expect(a.violation == b.violation)
        let c = Simulation(seed: 43, options: options).run()
        #expect(a.counters != c.counters, "different seeds explore different runs")
    }

    @Test(arguments: [3, 5])
    func realCoreHasNoViolations(nodes: Int) {
        var options = SimOptions()
        options.nodes = nodes
        var total = SimCounters()
        for seed in UInt64(1)...10 {
            let r = Simulation(seed: seed, options: options).run()
            #expect(r.violation == nil, "seed \(seed): \(r.violation!)\n\(r.trace.joined(separator: "\n"))")
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
    @Test func fiveNodeRunsCommitAtLeastFourFifthsOfThreeNodeRuns() {
        func commits(_ nodes: Int) -> Int {
            var options = SimOptions()
            options.nodes = nodes
            return (UInt64(1)...20).reduce(0) { $0 + Simulation(seed: $1, options: options).run().counters.commits }
        }
        let three = commits(3), five = commits(5)
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
    func simulatorFindsPlantedBug(bug: PlantedBug, invariant: String?, seedsMax: Int) {
        for nodes in [3, 5] {
            var options = SimOptions()
            options.nodes = nodes
            options.plantedBugs = [bug]
            var found: (UInt64, Violation)?
            for seed in UInt64(1)...UInt64(seedsMax) {
                if let v = Simulation(seed: seed, options: options).run().violation {
                    found = (seed, v)
                    break
                }
            }
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
