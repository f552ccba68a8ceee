import ClusterModel
import Controller
import Testing

/// The provisioner's decisions (ADR 0013): for every provision or decommission intent, the next
/// action from the replicated state, the Raft configuration, what the leader hears and what the
/// provider lists. The states are built by applying real commands, as the peer does.
@Suite struct InstanceLifecycleTests {
    typealias Action = InstanceLifecycle.Action
    typealias Provided = InstanceLifecycle.Provided

    static let nowMs: Int64 = 1_800_000_000_000
    static let deadlineMs: Int64 = 1_800_000_600_000
    static let graceMs: Int64 = 60_000

    // MARK: Helpers

    /// Instances 1, 2 and 3: active voters.
    func cluster(_ ids: [String] = ["1", "2", "3"]) -> World {
        var w = World()
        w.nowMs = Self.nowMs
        w.addActiveInstances(ids)
        return w
    }

    func record(_ w: inout World, _ kind: PBIntentKind, _ instance: String, deadlineMs: Int64 = InstanceLifecycleTests.deadlineMs) {
        var c = PBRecordIntent()
        c.id = kind == .provision ? InstanceLifecycle.provisionIntentID(instance) : InstanceLifecycle.decommissionIntentID(instance)
        c.kind = kind
        c.instanceID = instance
        c.deadlineMs = deadlineMs
        #expect(w.run(.recordIntent(c)) == .applied, "record \(c.id)")
    }

    /// `AddInstance` as the provisioner commits it after the provider's create: joining.
    func add(_ w: inout World, _ id: String, role: PBInstanceRole = .learner) {
        let n = w.state.allInstances.count
        var c = PBAddInstance()
        c.id = id
        c.address = "127.0.0.1:\(7100 + n)"
        c.apiAddress = "127.0.0.1:\(8100 + n)"
        c.routerAddress = "127.0.0.1:\(9100 + n)"
        c.role = role
        c.version = "test"
        c.protocolVersion = 1
        #expect(w.run(.addInstance(c)) == .applied, "add \(id)")
    }

    /// Walks the instance through the given states, each transition applied.
    func move(_ w: inout World, _ id: String, _ states: PBInstanceState...) {
        for s in states {
            var c = PBSetInstanceState()
            c.id = id
            c.state = s
            #expect(w.run(.setInstanceState(c)) == .applied, "instance \(id) → \(s)")
        }
    }

    func setRole(_ w: inout World, _ id: String, _ role: PBInstanceRole) {
        var c = PBSetInstanceRole()
        c.id = id
        c.role = role
        #expect(w.run(.setInstanceRole(c)) == .applied)
    }

    /// Instances 1, 2, 3 (active voters) and 4 (an active learner).
    func clusterWithLearner() -> World {
        var w = cluster()
        add(&w, "4")
        move(&w, "4", .active)
        return w
    }

    func listed(_ ids: String...) -> [String: Provided] {
        Dictionary(uniqueKeysWithValues: ids.map { ($0, Provided.running) })
    }

    func inputs(
        voters: Set<String> = ["1", "2", "3"], learners: Set<String> = [], caughtUp: Set<String> = [],
        answering: Set<String>? = nil, provided: [String: Provided]? = ["1": .running, "2": .running, "3": .running],
        unknownSinceMs: [String: Int64] = [:], nowMs: Int64 = InstanceLifecycleTests.nowMs
    ) -> InstanceLifecycle.Inputs {
        InstanceLifecycle.Inputs(
            voters: voters, learners: learners, caughtUp: caughtUp, answering: answering ?? voters.union(learners),
            provided: provided, unknownSinceMs: unknownSinceMs, nowMs: nowMs, orphanGraceMs: Self.graceMs)
    }

    func next(_ w: World, _ i: InstanceLifecycle.Inputs) -> [String] {
        InstanceLifecycle.next(state: w.state, inputs: i).map(tag)
    }

    func stateName(_ s: PBInstanceState) -> String {
        switch s {
        case .unspecified: return "unspecified"
        case .joining: return "joining"
        case .active: return "active"
        case .draining: return "draining"
        case .drained: return "drained"
        case .removed: return "removed"
        case .UNRECOGNIZED(let n): return "state(\(n))"
        }
    }

    /// The action without its `why`.
    func tag(_ action: Action) -> String {
        switch action {
        case .create(let i, _): return "create \(i)"
        case .addLearner(let i, _): return "addLearner \(i)"
        case .promote(let i, _): return "promote \(i)"
        case .removeMember(let i, _): return "removeMember \(i)"
        case .destroy(let i, _): return "destroy \(i)"
        case .waits(let i, _): return "waits \(i)"
        case .autopilot(let d, _): return "autopilot \(d)"
        case .propose(let body, _):
            switch body {
            case .setInstanceState(let c): return "propose \(stateName(c.state)) \(c.id)"
            case .resolveIntent(let c): return "propose resolve \(c.id)"
            case .setInstanceRole(let c):
                let role = c.role == .voter ? "voter" : c.role == .learner ? "learner" : "role(\(c.role.rawValue))"
                return "propose role \(role) \(c.id)"
            default: return "propose \(body)"
            }
        }
    }

    func why(_ action: Action) -> String {
        switch action {
        case .create(_, let why), .addLearner(_, let why), .promote(_, let why), .removeMember(_, let why),
             .destroy(_, let why), .waits(_, let why), .propose(_, let why), .autopilot(_, let why):
            return why
        }
    }

    func isConfChange(_ action: Action) -> Bool {
        switch action {
        case .addLearner, .promote, .removeMember, .autopilot: return true
        default: return false
        }
    }

    /// Commits a proposed action's command, as the leader's loop does.
    func commit(_ w: inout World, _ action: Action?) {
        guard case .propose(let body, _)? = action else {
            Issue.record("not a proposal: \(String(describing: action))")
            return
        }
        #expect(w.run(body) == .applied, "\(body)")
    }

    // MARK: Add

    @Test func aProvisionIntentForAnInstanceNotInTheStateCreatesIt() {
        var w = cluster()
        record(&w, .provision, "4")
        #expect(next(w, inputs()) == ["create 4"])
        // Created, not yet committed: create again (idempotent by id), never an orphan's destroy.
        #expect(next(w, inputs(provided: listed("1", "2", "3", "4"), unknownSinceMs: ["4": Self.nowMs - 10 * Self.graceMs])) == ["create 4"])
    }

    @Test func anAddedInstanceOutsideTheConfigurationJoinsAsALearner() {
        var w = cluster()
        record(&w, .provision, "4")
        add(&w, "4")
        #expect(w.state.instance("4")?.state == .joining)
        #expect(next(w, inputs()) == ["addLearner 4"])
    }

    @Test func twoAddsNeedingAConfigurationChangeGetOnlyOneThisRound() {
        var w = cluster()
        record(&w, .provision, "4")
        record(&w, .provision, "5")
        add(&w, "4")
        add(&w, "5")
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs())
        // The other waits, and says so.
        #expect(actions.map(tag) == ["addLearner 4", "waits 5"])
        #expect(actions.filter(isConfChange).count == 1)
    }

    @Test func aRemovalAndAnAddNeedingAConfigurationChangeGetOnlyOneThisRound() {
        var w = cluster()
        add(&w, "6")
        move(&w, "6", .active, .draining, .drained)
        record(&w, .decommission, "6")
        record(&w, .provision, "4")
        add(&w, "4")
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs(learners: ["6"], caughtUp: ["6"]))
        // Intents in id order: decommission-6 before provision-4.
        #expect(actions.map(tag) == ["removeMember 6", "waits 4"])
        #expect(actions.filter(isConfChange).count == 1)
    }

    @Test func aLearnerNotCaughtUpWaits() {
        var w = cluster()
        record(&w, .provision, "4")
        add(&w, "4")
        #expect(next(w, inputs(learners: ["4"], caughtUp: [])) == ["waits 4"])
    }

    @Test func aCaughtUpLearnerWhoseAPIDoesNotAnswerWaits() {
        var w = cluster()
        record(&w, .provision, "4")
        add(&w, "4")
        let behind = InstanceLifecycle.next(state: w.state, inputs: inputs(learners: ["4"], caughtUp: []))
        let silent = InstanceLifecycle.next(state: w.state, inputs: inputs(learners: ["4"], caughtUp: ["4"], answering: ["1", "2", "3"]))
        #expect(silent.map(tag) == ["waits 4"])
        #expect(behind.map(why) != silent.map(why), "the two waits say different things")
    }

    @Test func aCaughtUpAnsweringLearnerBecomesActive() {
        var w = cluster()
        record(&w, .provision, "4")
        add(&w, "4")
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs(learners: ["4"], caughtUp: ["4"]))
        #expect(actions.map(tag) == ["propose active 4"])
        commit(&w, actions.first)
        #expect(w.state.instance("4")?.state == .active)
    }

    @Test func aProvisionWhoseInstanceIsActiveIsResolved() {
        var w = cluster()
        record(&w, .provision, "4")
        add(&w, "4")
        move(&w, "4", .active)
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs(learners: ["4"], caughtUp: ["4"]))
        #expect(actions.map(tag) == ["propose resolve provision-4"])
        commit(&w, actions.first)
        #expect(w.state.allIntents.isEmpty)
        #expect(next(w, inputs(learners: ["4"], caughtUp: ["4"], provided: listed("1", "2", "3", "4"))).isEmpty)
    }

    // MARK: An add past its deadline is undone

    @Test func pastTheDeadlineAMemberLeavesTheConfigurationFirst() {
        var w = cluster()
        record(&w, .provision, "4")
        add(&w, "4")
        let provided = listed("1", "2", "3", "4")
        // One ms before: the add goes on.
        #expect(next(w, inputs(learners: ["4"], caughtUp: ["4"], provided: provided, nowMs: Self.deadlineMs - 1)) == ["propose active 4"])
        // At the deadline (nowMs >= deadlineMs): undone.
        #expect(next(w, inputs(learners: ["4"], caughtUp: ["4"], provided: provided, nowMs: Self.deadlineMs)) == ["removeMember 4"])
        #expect(next(w, inputs(learners: ["4"], provided: provided, nowMs: Self.deadlineMs + 1)) == ["removeMember 4"])
    }

    /// Undoing an add never costs the cluster a voter it needs: a joining instance that is a
    /// voter (promoted by hand, say) waits when its removal would go below voters_target.
    @Test func pastTheDeadlineAVoterTheClusterNeedsIsNotRemoved() {
        var w = cluster()
        record(&w, .provision, "4")
        add(&w, "4")
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs(voters: ["1", "4"], provided: listed("1", "4"), nowMs: Self.deadlineMs))
        #expect(actions.map(tag).first == "waits 4" && !actions.map(tag).contains("removeMember 4"), "\(actions.map(tag))")
        guard case .waits(_, let why)? = actions.first else { return }
        #expect(why.contains("voters_target 3"), "\(why)")
    }

    @Test func pastTheDeadlineANonMemberTheProviderListsIsDestroyed() {
        var w = cluster()
        record(&w, .provision, "4")
        // Created but never added to the state.
        #expect(next(w, inputs(provided: listed("1", "2", "3", "4"), nowMs: Self.deadlineMs)) == ["destroy 4"])
        // Added to the state, not a member.
        add(&w, "4")
        #expect(next(w, inputs(provided: listed("1", "2", "3", "4"), nowMs: Self.deadlineMs)) == ["destroy 4"])
        #expect(next(w, inputs(provided: ["1": .running, "2": .running, "3": .running, "4": .stopped], nowMs: Self.deadlineMs)) == ["destroy 4"])
        // The provider could not be listed: destroy (idempotent) rather than forget it.
        #expect(next(w, inputs(provided: nil, nowMs: Self.deadlineMs)) == ["destroy 4"])
    }

    @Test func pastTheDeadlineAnInstanceTheProviderNoLongerHoldsIsMarkedRemovedThenResolved() {
        var w = cluster()
        record(&w, .provision, "4")
        add(&w, "4")
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs(nowMs: Self.deadlineMs))
        #expect(actions.map(tag) == ["propose removed 4"])
        commit(&w, actions.first)
        #expect(w.state.instance("4")?.state == .removed)
        #expect(next(w, inputs(nowMs: Self.deadlineMs)) == ["propose resolve provision-4"])
    }

    @Test func pastTheDeadlineAnAddThatNeverReachedTheStateOrTheProviderIsResolved() {
        var w = cluster()
        record(&w, .provision, "4")
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs(nowMs: Self.deadlineMs))
        #expect(actions.map(tag) == ["propose resolve provision-4"])
        commit(&w, actions.first)
        #expect(w.state.allIntents.isEmpty)
    }

    // MARK: Decommission

    @Test func decommissioningAnActiveInstanceDrainsItFirst() {
        var w = clusterWithLearner()
        record(&w, .decommission, "4")
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs(learners: ["4"], caughtUp: ["4"]))
        #expect(actions.map(tag) == ["propose draining 4"])
        commit(&w, actions.first)
        #expect(w.state.instance("4")?.state == .draining)
    }

    @Test func aDrainingInstanceWaits() {
        var w = clusterWithLearner()
        record(&w, .decommission, "4")
        move(&w, "4", .draining)
        #expect(next(w, inputs(learners: ["4"], caughtUp: ["4"])) == ["waits 4"])
    }

    @Test func aDrainedLearnerLeavesTheConfiguration() {
        var w = clusterWithLearner()
        record(&w, .decommission, "4")
        move(&w, "4", .draining, .drained)
        let i = inputs(learners: ["4"], caughtUp: ["4"])
        #expect(next(w, i) == ["removeMember 4"])
        #expect(InstanceLifecycle.voterRemovalRefusal("4", state: w.state, inputs: i) == nil, "a learner is not a voter")
    }

    @Test func aDrainedVoterWaitsWhenItsRemovalWouldLeaveFewerVotersThanTheTarget() throws {
        var w = cluster()
        #expect(w.state.settings.votersTarget == 3)
        record(&w, .decommission, "3")
        move(&w, "3", .draining, .drained)
        let i = inputs()
        let actions = InstanceLifecycle.next(state: w.state, inputs: i)
        #expect(actions.map(tag) == ["waits 3"])
        let refusal = try #require(InstanceLifecycle.voterRemovalRefusal("3", state: w.state, inputs: i))
        #expect(refusal.contains("voters_target"), "\(refusal)")
        #expect(actions.map(why) == [refusal])
    }

    @Test func aDrainedVoterWaitsWhileTheLearnerIsNotCaughtUp() throws {
        var w = clusterWithLearner()
        record(&w, .decommission, "3")
        move(&w, "3", .draining, .drained)
        let i = inputs(learners: ["4"], caughtUp: [])
        #expect(next(w, i) == ["waits 3"])
        let refusal = try #require(InstanceLifecycle.voterRemovalRefusal("3", state: w.state, inputs: i))
        #expect(refusal.contains("voters_target"), "\(refusal)")
    }

    @Test func aDrainedVoterHasACaughtUpActiveLearnerPromotedInItsPlaceFirst() {
        var w = clusterWithLearner()
        record(&w, .decommission, "3")
        move(&w, "3", .draining, .drained)
        let i = inputs(learners: ["4"], caughtUp: ["4"])
        let actions = InstanceLifecycle.next(state: w.state, inputs: i)
        #expect(actions.map(tag) == ["promote 4"])
        #expect(actions.filter(isConfChange).count == 1)
        #expect(InstanceLifecycle.voterRemovalRefusal("3", state: w.state, inputs: i) == nil)
    }

    @Test func onceTheLearnerIsPromotedTheDrainedVoterLeaves() {
        var w = clusterWithLearner()
        record(&w, .decommission, "3")
        move(&w, "3", .draining, .drained)
        setRole(&w, "4", .voter)  // the role reconciliation's commit after the promotion
        let i = inputs(voters: ["1", "2", "3", "4"])
        #expect(next(w, i) == ["removeMember 3"])
        #expect(InstanceLifecycle.voterRemovalRefusal("3", state: w.state, inputs: i) == nil)
    }

    @Test func theLastVoterNeverLeaves() throws {
        var w = cluster(["1"])
        record(&w, .decommission, "1")
        move(&w, "1", .draining, .drained)
        let i = inputs(voters: ["1"], provided: listed("1"))
        let actions = InstanceLifecycle.next(state: w.state, inputs: i)
        #expect(actions.map(tag) == ["waits 1"])
        let refusal = try #require(InstanceLifecycle.voterRemovalRefusal("1", state: w.state, inputs: i))
        #expect(refusal.contains("last voter"), "\(refusal)")
        #expect(actions.map(why) == [refusal])
    }

    @Test func aDrainedInstanceOutOfTheConfigurationThatTheProviderListsIsDestroyed() {
        var w = clusterWithLearner()
        record(&w, .decommission, "4")
        move(&w, "4", .draining, .drained)
        #expect(next(w, inputs(provided: listed("1", "2", "3", "4"))) == ["destroy 4"])
        #expect(next(w, inputs(provided: nil)) == ["destroy 4"])
    }

    @Test func aDrainedInstanceOutOfTheConfigurationThatTheProviderNoLongerHoldsIsMarkedRemoved() {
        var w = clusterWithLearner()
        record(&w, .decommission, "4")
        move(&w, "4", .draining, .drained)
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs())
        #expect(actions.map(tag) == ["propose removed 4"])
        commit(&w, actions.first)
        #expect(w.state.instance("4")?.state == .removed)
    }

    @Test func aDecommissionWhoseInstanceIsRemovedIsResolved() {
        var w = clusterWithLearner()
        record(&w, .decommission, "4")
        move(&w, "4", .draining, .drained, .removed)
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs())
        #expect(actions.map(tag) == ["propose resolve decommission-4"])
        commit(&w, actions.first)
        #expect(w.state.allIntents.isEmpty)
        #expect(next(w, inputs()).isEmpty)
    }

    // MARK: Promotion below the voters target

    @Test func fewerVotersThanTheTargetPromoteACaughtUpActiveLearner() {
        var w = cluster(["1", "2"])
        add(&w, "5")
        move(&w, "5", .active)
        add(&w, "4")
        move(&w, "4", .active)
        // Both eligible: the first by id.
        #expect(next(w, inputs(voters: ["1", "2"], learners: ["5", "4"], caughtUp: ["4", "5"], provided: listed("1", "2", "4", "5"))) == ["promote 4"])
        #expect(next(w, inputs(voters: ["1", "2"], learners: ["5", "4"], caughtUp: ["5"], provided: listed("1", "2", "4", "5"))) == ["promote 5"])
    }

    @Test func onlyACaughtUpActiveLearnerNotBeingRemovedIsPromoted() {
        var w = cluster(["1", "2"])
        add(&w, "4")
        let provided = listed("1", "2", "4")
        // Joining (no intent): not promotable even caught up.
        #expect(next(w, inputs(voters: ["1", "2"], learners: ["4"], caughtUp: ["4"], provided: provided)).isEmpty)
        move(&w, "4", .active)
        // Active but not caught up.
        #expect(next(w, inputs(voters: ["1", "2"], learners: ["4"], caughtUp: [], provided: provided)).isEmpty)
        // Being decommissioned: drained, not promoted.
        record(&w, .decommission, "4")
        #expect(next(w, inputs(voters: ["1", "2"], learners: ["4"], caughtUp: ["4"], provided: provided)) == ["propose draining 4"])
    }

    @Test func votersAtTheTargetPromoteNoOne() {
        let w = clusterWithLearner()
        #expect(next(w, inputs(learners: ["4"], caughtUp: ["4"], provided: listed("1", "2", "3", "4"))).isEmpty)
    }

    // MARK: Role reconciliation

    @Test func theStatesRoleFollowsTheConfiguration() {
        var w = clusterWithLearner()
        #expect(w.state.instance("4")?.role == .learner)
        let provided = listed("1", "2", "3", "4")
        let actions = InstanceLifecycle.next(state: w.state, inputs: inputs(voters: ["1", "2", "3", "4"], provided: provided))
        #expect(actions.map(tag) == ["propose role voter 4"])
        commit(&w, actions.first)
        #expect(w.state.instance("4")?.role == .voter)
        #expect(next(w, inputs(voters: ["1", "2", "3", "4"], provided: provided)).isEmpty)
        // And back: a voter of the state that the configuration holds as a learner.
        #expect(next(w, inputs(voters: ["1", "2", "4"], learners: ["3"], provided: provided)) == ["propose role learner 3"])
    }

    // MARK: What the provider lists

    @Test func anUnknownInstanceTheProviderListsIsDestroyedOnlyAfterTheGrace() {
        let w = cluster()
        let provided = listed("1", "2", "3", "9")
        // First seen now (no entry yet): kept.
        #expect(next(w, inputs(provided: provided)).isEmpty)
        #expect(next(w, inputs(provided: provided, unknownSinceMs: ["9": Self.nowMs - Self.graceMs + 1])).isEmpty)
        #expect(next(w, inputs(provided: provided, unknownSinceMs: ["9": Self.nowMs - Self.graceMs])) == ["destroy 9"])
        #expect(next(w, inputs(provided: provided, unknownSinceMs: ["9": Self.nowMs - 10 * Self.graceMs])) == ["destroy 9"])
    }

    @Test func aRemovedInstanceTheProviderStillListsIsDestroyed() {
        var w = cluster()
        add(&w, "4")
        move(&w, "4", .removed)
        #expect(next(w, inputs(provided: listed("1", "2", "3", "4"))) == ["destroy 4"])
        #expect(next(w, inputs(provided: ["1": .running, "2": .running, "3": .running, "4": .stopped])) == ["destroy 4"])
        // Not listed: nothing to do.
        #expect(next(w, inputs()).isEmpty)
    }

    @Test func aKnownInstanceTheProviderReportsStoppedIsStartedAgain() {
        let w = cluster()
        #expect(next(w, inputs(provided: ["1": .running, "2": .running, "3": .stopped])) == ["create 3"])
        #expect(next(w, inputs()).isEmpty)
    }

    @Test func withoutTheProvidersListNothingIsDecidedFromIt() {
        let w = cluster()
        #expect(next(w, inputs(provided: nil, unknownSinceMs: ["9": Self.nowMs - 10 * Self.graceMs])).isEmpty)
    }
}
