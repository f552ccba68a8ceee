import ClusterModel
import Controller
import Testing

/// Autopilot's decisions (as Consul's dead-server cleanup), from recorded inputs: when a dead
/// voter leaves the Raft configuration, when a learner is promoted in its place, and when
/// nothing may change.
@Suite struct AutopilotTests {
    typealias Action = InstanceLifecycle.Action
    static let now: Int64 = 1_800_000_000_000
    static let removeAfter: Int64 = 60_000

    /// Active instances `ids`; the given voters and learners; everyone answering and caught up
    /// but `dead`, lost since `deadForMs` ago.
    func inputs(voters: Set<String>, learners: Set<String> = [], dead: Set<String>, deadForMs: Int64 = 61_000,
                learnerCaughtUpForMs: Int64 = 30_000, stableMs: Int64 = 10_000) -> InstanceLifecycle.Inputs {
        let all = voters.union(learners)
        var i = InstanceLifecycle.Inputs(
            voters: voters, learners: learners, caughtUp: all.subtracting(dead), answering: all.subtracting(dead), provided: nil, nowMs: Self.now)
        i.lostSinceMs = Dictionary(uniqueKeysWithValues: dead.map { ($0, Self.now - deadForMs) })
        i.caughtUpSinceMs = Dictionary(uniqueKeysWithValues: learners.subtracting(dead).map { ($0, Self.now - learnerCaughtUpForMs) })
        i.deadVoterRemoveAfterMs = Self.removeAfter
        i.learnerStableMs = stableMs
        return i
    }

    func state(_ ids: [String]) -> ClusterState {
        var w = World()
        w.nowMs = Self.now
        w.addActiveInstances(ids)
        return w.state
    }

    func autopilot(_ actions: [Action]) -> [Action] {
        actions.filter { if case .autopilot = $0 { true } else { false } }
    }

    func decisions(_ actions: [Action]) -> [InstanceLifecycle.AutopilotChange] {
        actions.compactMap { if case .autopilot(let d, _) = $0 { d } else { nil } }
    }

    @Test func aDeadVoterBeyondTheTargetIsRemovedAtOnce() {
        let s = state(["1", "2", "3", "4"])
        let actions = InstanceLifecycle.next(state: s, inputs: inputs(voters: ["1", "2", "3", "4"], dead: ["3"]))
        #expect(decisions(actions) == [.removeDeadVoter("3")])
        guard case .autopilot(_, let why)? = autopilot(actions).first else { return }
        #expect(why.contains("voter 3 lost for 61000 ms"))
    }

    @Test func aDeadVoterAtTheTargetWaitsForAStableLearnerWhichIsPromotedFirst() {
        let s = state(["1", "2", "3", "4"])
        let promote = InstanceLifecycle.next(state: s, inputs: inputs(voters: ["1", "2", "3"], learners: ["4"], dead: ["3"]))
        #expect(autopilot(promote).count == 1)
        guard case .autopilot(.promote(let learner, let replacing), _)? = autopilot(promote).first else {
            Issue.record("expected a promotion, got \(promote)")
            return
        }
        #expect(learner == "4" && replacing == "3")
        // The next round: four voters, one dead: it goes.
        let remove = InstanceLifecycle.next(state: s, inputs: inputs(voters: ["1", "2", "3", "4"], dead: ["3"]))
        #expect(decisions(remove) == [.removeDeadVoter("3")])
    }

    @Test func nothingChangesBeforeTheThresholdOrWithoutAReplacement() {
        let s = state(["1", "2", "3", "4"])
        let early = InstanceLifecycle.next(state: s, inputs: inputs(voters: ["1", "2", "3"], learners: ["4"], dead: ["3"], deadForMs: 59_000))
        #expect(autopilot(early).isEmpty, "\(early)")
        let none = InstanceLifecycle.next(state: s, inputs: inputs(voters: ["1", "2", "3"], dead: ["3"]))
        #expect(autopilot(none).isEmpty)
        #expect(none.contains { if case .waits("3", let why) = $0 { why.contains("no caught-up, stable, active learner") } else { false } }, "\(none)")
        // A learner caught up for less than learnerStableMs is no replacement yet.
        let unstable = InstanceLifecycle.next(state: s, inputs: inputs(voters: ["1", "2", "3"], learners: ["4"], dead: ["3"], learnerCaughtUpForMs: 5_000))
        #expect(autopilot(unstable).isEmpty, "\(unstable)")
        // Off: 0 never removes.
        var off = inputs(voters: ["1", "2", "3", "4"], dead: ["3"])
        off.deadVoterRemoveAfterMs = 0
        #expect(autopilot(InstanceLifecycle.next(state: s, inputs: off)).isEmpty)
    }

    /// A voter the failure detector calls lost but Raft still hears (its API is down, its Raft
    /// is not) is not dead: it stays.
    @Test func aVoterRaftStillHearsIsNotRemoved() {
        let s = state(["1", "2", "3", "4"])
        var i = inputs(voters: ["1", "2", "3", "4"], dead: ["3"])
        i.caughtUp.insert("3")
        #expect(autopilot(InstanceLifecycle.next(state: s, inputs: i)).isEmpty)
        // Far behind (not caught up) but heard by Raft: alive, not removed.
        var lagging = inputs(voters: ["1", "2", "3", "4"], dead: ["3"])
        lagging.raftHeard = ["1", "2", "3", "4"]
        #expect(autopilot(InstanceLifecycle.next(state: s, inputs: lagging)).isEmpty)
        lagging.raftHeard = ["1", "2", "4"]
        #expect(decisions(InstanceLifecycle.next(state: s, inputs: lagging)) == [.removeDeadVoter("3")])
    }

    /// Never a change after which the answering voters are no quorum: with two of five voters
    /// dead, removing one leaves four with three answering (fine); with three dead the leader
    /// would have no quorum, and promoting a learner into it would not give one.
    @Test func neverAChangeThatLeavesNoAnsweringQuorum() {
        let s = state(["1", "2", "3", "4", "5", "6"])
        let two = InstanceLifecycle.next(state: s, inputs: inputs(voters: ["1", "2", "3", "4", "5"], dead: ["4", "5"]))
        #expect(decisions(two) == [.removeDeadVoter("4")], "one at a time, lowest id first: \(two)")
        let promoteIntoMinority = InstanceLifecycle.next(state: s, inputs: inputs(voters: ["1", "2", "3"], learners: ["6"], dead: ["2", "3"]))
        #expect(autopilot(promoteIntoMinority).isEmpty, "\(promoteIntoMinority)")
        #expect(promoteIntoMinority.contains { if case .waits(_, let why) = $0 { why.contains("no answering quorum") } else { false } })
    }
}
