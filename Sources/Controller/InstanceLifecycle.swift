import ClusterModel

/// The provisioner's decisions (ARCHITECTURE §11, docs/adr/0013-instances-join-and-leave.md):
/// from the replicated state (instances and the intents the API committed), the Raft
/// configuration, what the leader hears from each instance and what the provider lists, the next
/// action for every instance being added or removed. Pure: no I/O, no clock (`nowMs` is given).
///
/// An add (a `provision` intent for instance X) goes: the provider creates X (idempotent by id;
/// it hands X its join files) → `AddInstance` X (joining, learner, with the addresses the
/// provider gave) → X joins the Raft configuration as a learner → once X is caught up and its
/// API answers the leader, X is active → the intent is resolved. Past the intent's deadline, an
/// add that is not active is undone: X leaves the configuration, the provider destroys it, it is
/// marked removed, the intent is resolved (and the log says why).
///
/// A removal (a `decommission` intent for X) goes: X draining (the drain driver moves its tenants
/// away, then marks it drained) → X leaves the configuration (a voter whose removal would leave
/// fewer voters than `votersTarget` waits for a caught-up learner to be promoted in its place; the
/// last voter never leaves) → the provider destroys X → X removed → the intent is resolved.
///
/// Every action is idempotent and decided from replicated or re-observable inputs only, so a new
/// leader that finds the intents picks up where the old one stopped. Besides intents: learners are
/// promoted while there are fewer voters than the target, a provisioned instance the provider
/// reports stopped is started again, and a labelled instance the state does not know (a create
/// whose intent was given up, a leader that died between create and commit) is destroyed once it
/// has been seen for `orphanGraceMs`.
public enum InstanceLifecycle {
    /// What the provider said of one instance.
    public enum Provided: Sendable, Hashable {
        case running
        case stopped
    }

    public struct Inputs: Sendable {
        /// The Raft configuration, by instance id.
        public var voters: Set<String>
        public var learners: Set<String>
        /// Learners the leader's progress shows caught up (promotable; ready to serve).
        public var caughtUp: Set<String>
        /// Instances whose API answered the leader's data-plane poll in this term.
        public var answering: Set<String>
        /// The provider's list for this cluster; nil when it could not be listed this round.
        public var provided: [String: Provided]?
        /// Labelled instances the state does not know, and since when this leader has seen them.
        public var unknownSinceMs: [String: Int64]
        public var nowMs: Int64
        public var orphanGraceMs: Int64
        /// Autopilot. Members the failure detector counts lost, and since when this leader has
        /// seen them so (a new leader starts counting afresh).
        public var lostSinceMs: [String: Int64] = [:]
        /// Learners continuously caught up, and since when.
        public var caughtUpSinceMs: [String: Int64] = [:]
        /// A voter lost (and silent to Raft) for this long is removed, once a replacement keeps
        /// the voters at the target (`timing.deadVoterRemoveAfterMs`); 0 never removes one.
        public var deadVoterRemoveAfterMs: Int64 = 0
        /// A learner is promoted only after being caught up this long (`timing.learnerStableMs`).
        public var learnerStableMs: Int64 = 0
        /// Members the leader's Raft heard from in its last check-quorum round (nil: take
        /// `caughtUp`). A voter Raft hears is alive, however far behind: autopilot never removes it.
        public var raftHeard: Set<String>?

        var heard: Set<String> { raftHeard ?? caughtUp }

        public init(voters: Set<String>, learners: Set<String>, caughtUp: Set<String>, answering: Set<String>,
                    provided: [String: Provided]?, unknownSinceMs: [String: Int64] = [:], nowMs: Int64, orphanGraceMs: Int64 = 60_000) {
            self.voters = voters
            self.learners = learners
            self.caughtUp = caughtUp
            self.answering = answering
            self.provided = provided
            self.unknownSinceMs = unknownSinceMs
            self.nowMs = nowMs
            self.orphanGraceMs = orphanGraceMs
        }

        /// Caught up, and for at least `learnerStableMs`.
        func stable(_ learner: String) -> Bool {
            guard caughtUp.contains(learner) else { return false }
            guard learnerStableMs > 0 else { return true }
            return nowMs - (caughtUpSinceMs[learner] ?? nowMs) >= learnerStableMs
        }
    }

    /// What autopilot changes in the Raft configuration; the loop records an event for each
    /// change that applied.
    public enum AutopilotChange: Sendable, Equatable {
        case promote(learner: String, replacing: String)
        case removeDeadVoter(String)
    }

    public enum Action: Sendable, Equatable {
        /// Ask the provider to create (or start again) the instance; for an add, then commit
        /// `AddInstance` with the addresses it answers.
        case create(instance: String, why: String)
        /// Commit a command (an instance's state, an intent's resolution).
        case propose(Command.OneOf_Body, why: String)
        case addLearner(instance: String, why: String)
        case promote(instance: String, why: String)
        case removeMember(instance: String, why: String)
        /// A configuration change autopilot decided (docs/operations.md §Autopilot).
        case autopilot(AutopilotChange, why: String)
        case destroy(instance: String, why: String)
        /// Nothing can happen for this instance now; the reason is logged when it changes.
        case waits(instance: String, why: String)

        public var instance: String? {
            switch self {
            case .create(let i, _), .addLearner(let i, _), .promote(let i, _), .removeMember(let i, _), .destroy(let i, _), .waits(let i, _): i
            case .autopilot(.promote(let i, _), _), .autopilot(.removeDeadVoter(let i), _): i
            case .propose: nil
            }
        }
    }

    /// A learner within this many entries of the leader's last index, and heard from recently,
    /// is caught up: it may become active, or a voter.
    public static let catchUpEntriesMax: UInt64 = 1_000

    /// The one catch-up rule, for the provisioner and for the API's removal check alike.
    public static func isCaughtUp(match: UInt64, lastIndex: UInt64, recentlyActive: Bool) -> Bool {
        recentlyActive && match + catchUpEntriesMax >= lastIndex
    }

    /// The intent ids the API records.
    public static func provisionIntentID(_ instance: String) -> String { "provision-\(instance)" }
    public static func decommissionIntentID(_ instance: String) -> String { "decommission-\(instance)" }

    /// The id a new instance gets: one above the highest numeric id of the cluster file's
    /// members, every instance (removed ones too: ids are never reused) and every intent.
    public static func nextInstanceID(state: ClusterState, seedIDs: [String]) -> String {
        var highest: UInt64 = seedIDs.compactMap { UInt64($0) }.max() ?? 0
        for i in state.allInstances { if let n = UInt64(i.id) { highest = max(highest, n) } }
        for i in state.allIntents { if let n = UInt64(i.instanceID) { highest = max(highest, n) } }
        return "\(highest + 1)"
    }

    /// The actions for this round, in order. At most one Raft configuration change: they apply
    /// one at a time (ADR 0005).
    public static func next(state: ClusterState, inputs: Inputs) -> [Action] {
        var actions: [Action] = []
        var confChange = false
        func change(_ a: Action) {
            guard !confChange else {
                // One configuration change at a time (ADR 0005): this one's turn comes later.
                if let x = a.instance { actions.append(.waits(instance: x, why: "instance \(x) waits for another configuration change of this round to apply")) }
                return
            }
            confChange = true
            actions.append(a)
        }
        let members = inputs.voters.union(inputs.learners)
        let intents = state.allIntents
        let decommissioning = Set(intents.filter { $0.kind == .decommission }.map(\.instanceID))
        let votersTarget = Int(max(1, state.settings.votersTarget))

        for intent in intents {
            let x = intent.instanceID
            let instance = state.instance(x)
            switch intent.kind {
            case .provision:
                if let instance, instance.state != .joining {
                    // Active (or moved on by the operator): done; removed: undone.
                    let outcome = instance.state == .removed ? "the add was undone" : "the add is done"
                    actions.append(.propose(.resolveIntent(resolve(intent.id)), why: "instance \(x) is \(instance.state); \(outcome)"))
                    continue
                }
                if intent.deadlineMs <= inputs.nowMs {
                    let why = "the add of instance \(x) did not finish by its deadline; undoing it"
                    if members.contains(x) {
                        if let refusal = voterRemovalRefusal(x, state: state, inputs: inputs) {
                            actions.append(.waits(instance: x, why: "\(why), but \(refusal)"))
                        } else {
                            change(.removeMember(instance: x, why: why))
                        }
                    } else if inputs.provided == nil || inputs.provided?[x] != nil {
                        actions.append(.destroy(instance: x, why: why))
                    } else if instance != nil {
                        actions.append(.propose(.setInstanceState(instanceState(x, .removed)), why: why))
                    } else {
                        actions.append(.propose(.resolveIntent(resolve(intent.id)), why: why))
                    }
                    continue
                }
                guard instance != nil else {
                    actions.append(.create(instance: x, why: "provision intent \(intent.id)"))
                    continue
                }
                if inputs.provided?[x] == .stopped {
                    // Its process or container ended while it joined: start it again.
                    actions.append(.create(instance: x, why: "the provider reports instance \(x) stopped while it joins; starting it again"))
                } else if !members.contains(x) {
                    change(.addLearner(instance: x, why: "instance \(x) was added to the state"))
                } else if !inputs.caughtUp.contains(x) && !inputs.voters.contains(x) {
                    actions.append(.waits(instance: x, why: "instance \(x) is catching up with the log"))
                } else if !inputs.answering.contains(x) {
                    actions.append(.waits(instance: x, why: "instance \(x) has not answered the leader's data-plane poll yet"))
                } else {
                    actions.append(.propose(.setInstanceState(instanceState(x, .active)), why: "instance \(x) is caught up and answers"))
                }

            case .decommission:
                guard let instance else {
                    actions.append(.propose(.resolveIntent(resolve(intent.id)), why: "instance \(x) does not exist"))
                    continue
                }
                switch instance.state {
                case .active:
                    let placed = state.placements(onInstance: x).count
                    if placed > 0 && !state.instances(in: .active).contains(where: { $0.id != x }) {
                        actions.append(.waits(instance: x, why: "instance \(x) is the only active instance and holds \(placed) placement(s): add or activate another instance first"))
                    } else {
                        actions.append(.propose(.setInstanceState(instanceState(x, .draining)), why: "removing instance \(x): drain it first"))
                    }
                case .draining:
                    let overdue = intent.deadlineMs <= inputs.nowMs ? "; the removal is past its deadline" : ""
                    actions.append(.waits(instance: x, why: "instance \(x) is draining (\(state.placements(onInstance: x).count) placement(s) left)\(overdue)"))
                case .joining, .drained:
                    if members.contains(x) {
                        if inputs.voters.contains(x) {
                            let others = inputs.voters.subtracting([x])
                            if let why = voterRemovalRefusal(x, state: state, inputs: inputs) {
                                actions.append(.waits(instance: x, why: why))
                            } else if others.count < votersTarget, let learner = promotable(state: state, inputs: inputs, excluding: decommissioning) {
                                change(.promote(instance: learner, why: "instance \(x) leaves the voters: instance \(learner) takes its place"))
                            } else {
                                change(.removeMember(instance: x, why: "instance \(x) is drained"))
                            }
                        } else {
                            change(.removeMember(instance: x, why: "instance \(x) is drained"))
                        }
                    } else if inputs.provided == nil || inputs.provided?[x] != nil {
                        actions.append(.destroy(instance: x, why: "instance \(x) left the membership"))
                    } else {
                        actions.append(.propose(.setInstanceState(instanceState(x, .removed)), why: "instance \(x) left the membership and the provider holds nothing of it"))
                    }
                case .removed:
                    actions.append(.propose(.resolveIntent(resolve(intent.id)), why: "instance \(x) is removed"))
                default:
                    break
                }
            default:
                break
            }
        }

        if inputs.deadVoterRemoveAfterMs > 0 {
            for action in autopilot(state: state, inputs: inputs, votersTarget: votersTarget, excluding: decommissioning) {
                if case .autopilot = action { change(action) } else { actions.append(action) }
            }
        }

        // Voters below the target: promote a caught-up, active learner.
        if inputs.voters.count < votersTarget, let learner = promotable(state: state, inputs: inputs, excluding: decommissioning) {
            change(.promote(instance: learner, why: "\(inputs.voters.count) voter(s), voters_target \(votersTarget)"))
        }

        // The state's role follows the configuration (`peer status`, placement's view).
        for instance in state.allInstances where instance.state != .removed && members.contains(instance.id) {
            let role: PBInstanceRole = inputs.voters.contains(instance.id) ? .voter : .learner
            if instance.role != role {
                var c = PBSetInstanceRole()
                c.id = instance.id
                c.role = role
                actions.append(.propose(.setInstanceRole(c), why: "instance \(instance.id) is a \(role == .voter ? "voter" : "learner") of the Raft configuration"))
            }
        }

        if let provided = inputs.provided {
            let intended = Set(intents.map(\.instanceID))
            for (x, status) in provided.sorted(by: { $0.key < $1.key }) where !intended.contains(x) {
                guard let instance = state.instance(x) else {
                    // Labelled for this cluster, unknown to the state: destroyed after the grace.
                    let since = inputs.unknownSinceMs[x] ?? inputs.nowMs
                    if inputs.nowMs - since >= inputs.orphanGraceMs {
                        actions.append(.destroy(instance: x, why: "instance \(x) is not in the cluster's state (seen for \(inputs.nowMs - since) ms)"))
                    }
                    continue
                }
                if instance.state == .removed {
                    actions.append(.destroy(instance: x, why: "instance \(x) is removed"))
                } else if status == .stopped {
                    actions.append(.create(instance: x, why: "the provider reports instance \(x) stopped; starting it again"))
                }
            }
        }
        return actions
    }

    /// Why voter `x` may not leave now, or nil: never the last voter, and never below
    /// `votersTarget` unless a caught-up learner can be promoted in its place first. The API asks
    /// the same question before it records a removal, so an operator hears the reason at once.
    public static func voterRemovalRefusal(_ x: String, state: ClusterState, inputs: Inputs) -> String? {
        guard inputs.voters.contains(x) else { return nil }
        let others = inputs.voters.subtracting([x])
        if others.isEmpty { return "instance \(x) is the last voter; the cluster cannot lose it" }
        let target = Int(max(1, state.settings.votersTarget))
        let decommissioning = Set(state.allIntents.filter { $0.kind == .decommission }.map(\.instanceID)).union([x])
        if others.count < target && promotable(state: state, inputs: inputs, excluding: decommissioning) == nil {
            return "removing voter \(x) would leave \(others.count) voter(s), below voters_target \(target), and no caught-up active learner can take its place: add an instance first (peer instances add)"
        }
        return nil
    }

    /// A learner that may become a voter: caught up (for `learnerStableMs`), active, not being
    /// removed.
    static func promotable(state: ClusterState, inputs: Inputs, excluding: Set<String>) -> String? {
        inputs.learners.sorted().first { l in
            inputs.stable(l) && !excluding.contains(l) && state.instance(l)?.state == .active
        }
    }

    /// Autopilot (as Consul's dead-server cleanup): a voter the failure detector has counted lost
    /// for `deadVoterRemoveAfterMs`, and that Raft does not hear either, leaves the configuration
    /// once that keeps the voters at the target: at once if there are more than the target,
    /// else after a stable learner was promoted in its place. Never a change after which the
    /// voters that answer are no quorum; one voter at a time (the lowest id first).
    static func autopilot(state: ClusterState, inputs: Inputs, votersTarget: Int, excluding: Set<String>) -> [Action] {
        let dead = inputs.voters.sorted().filter { x in
            guard !inputs.heard.contains(x), !excluding.contains(x), let since = inputs.lostSinceMs[x] else { return false }
            return inputs.nowMs - since >= inputs.deadVoterRemoveAfterMs
        }
        guard let x = dead.first, let since = inputs.lostSinceMs[x] else { return [] }
        let lost = "voter \(x) lost for \(inputs.nowMs - since) ms (timing.deadVoterRemoveAfterMs \(inputs.deadVoterRemoveAfterMs))"
        func answeringQuorum(_ voters: Set<String>) -> Bool {
            voters.intersection(inputs.heard).count >= voters.count / 2 + 1
        }
        let others = inputs.voters.subtracting([x])
        if others.count >= votersTarget {
            guard answeringQuorum(others) else {
                return [.waits(instance: x, why: "autopilot: \(lost), but the \(others.count) voters left would not have an answering quorum")]
            }
            return [.autopilot(.removeDeadVoter(x), why: "autopilot: \(lost); \(others.count) voter(s) remain (voters_target \(votersTarget))")]
        }
        guard let learner = promotable(state: state, inputs: inputs, excluding: excluding) else {
            return [.waits(instance: x, why: "autopilot: \(lost); no caught-up, stable, active learner can take its place (add an instance: peer instances add)")]
        }
        guard answeringQuorum(inputs.voters.union([learner])) else {
            return [.waits(instance: x, why: "autopilot: \(lost), but promoting learner \(learner) would leave no answering quorum")]
        }
        return [.autopilot(.promote(learner: learner, replacing: x), why: "autopilot: \(lost); learner \(learner) takes its place")]
    }

    static func resolve(_ id: String) -> PBResolveIntent {
        var c = PBResolveIntent()
        c.id = id
        return c
    }

    static func instanceState(_ id: String, _ s: PBInstanceState) -> PBSetInstanceState {
        var c = PBSetInstanceState()
        c.id = id
        c.state = s
        return c
    }
}
