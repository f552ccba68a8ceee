import ClusterModel
import Controller
import Failpoints
import Logging
import PeerNode
import Providers
import Raft
import Synchronization

/// The provisioner's shell (ARCHITECTURE §11, docs/adr/0013-instances-join-and-leave.md): while
/// this peer leads, every `intervalMillis` it gathers what `Controller.InstanceLifecycle` decides
/// from (the state, the Raft configuration and the followers' progress, which instances answer
/// the data-plane watch, the provider's list) and carries the actions out: provider calls,
/// membership changes, commands. Its only memory is soft (create backoff, when an unknown
/// instance was first seen, the last reason logged): a new leader rebuilds it from nothing.
public final class InstanceLifecycleLoop: Sendable {
    public struct Settings: Sendable {
        public var clusterID: String
        public var selfID: NodeID
        /// Recorded with each instance it adds (the new instance runs this build).
        public var version: String
        public var protocolVersion: UInt32
        public var intervalMillis = 500
        /// A labelled instance the state does not know is destroyed after this long.
        public var orphanGraceMs: Int64 = 60_000
        /// A failed create is tried again after 1 s, doubling to this (until the intent's deadline).
        public var createBackoffMaxMillis: Int64 = 30_000
        /// With no add or removal in progress the providers are listed this often, not every
        /// round (an exec provider's list is a script run, a docker one an Engine call): orphans
        /// and stopped instances are found within this.
        public var idleListIntervalMs: Int64 = 10_000
        /// Autopilot (`timing.deadVoterRemoveAfterMs`, `timing.learnerStableMs`): 0 never
        /// removes a dead voter; learners are promoted after being caught up this long.
        public var deadVoterRemoveAfterMs: Int64 = 0
        public var learnerStableMs: Int64 = 0
        /// `events.retain`, carried by autopilot's events.
        public var eventsRetain: UInt32 = 10_000

        public init(clusterID: String, selfID: NodeID, version: String, protocolVersion: UInt32) {
            self.clusterID = clusterID
            self.selfID = selfID
            self.version = version
            self.protocolVersion = protocolVersion
        }
    }

    /// The join files for a new instance (`peer` makes them: certificate, config, seeds).
    public typealias Bootstrap = @Sendable (_ instanceID: UInt64, _ state: ClusterState) throws -> [String: String]

    /// One of the cluster's providers, by the name intents and instances record.
    public struct NamedProvider: Sendable {
        public var name: String
        public var provider: any InstanceProvider

        public init(name: String, provider: any InstanceProvider) {
            self.name = name
            self.provider = provider
        }
    }

    let settings: Settings
    let node: any LeaderNode
    let clock: any LeaderClock
    /// In the cluster file's order: the first is the default.
    let providers: [NamedProvider]
    let bootstrap: Bootstrap
    let answering: @Sendable (_ term: Term) -> Set<NodeID>
    /// The failure detector's lost members (autopilot's input); none without it.
    let lost: @Sendable (_ nowMs: Int64, _ term: Term) -> Set<String>
    let logger: Logger
    let soft = Mutex(Soft())

    struct Soft {
        var term: Term = 0
        var sequence: UInt64 = 0
        var confirmedTerm: Term = 0
        var unknownSinceMs: [String: Int64] = [:]
        var createRetry: [String: (attempts: Int, nextMs: Int64)] = [:]
        var waiting: [String: String] = [:]
        /// When the providers were last listed (leader's clock).
        var listedAtMs: Int64 = 0
        /// Since when each member has been lost, each learner caught up, without a break.
        var lostSinceMs: [String: Int64] = [:]
        var caughtUpSinceMs: [String: Int64] = [:]
    }

    public init(settings: Settings, node: any LeaderNode, providers: [NamedProvider], bootstrap: @escaping Bootstrap,
                answering: @escaping @Sendable (_ term: Term) -> Set<NodeID>,
                lost: @escaping @Sendable (_ nowMs: Int64, _ term: Term) -> Set<String> = { _, _ in [] },
                clock: any LeaderClock = SystemClock(), logger: Logger) {
        self.settings = settings
        self.lost = lost
        self.node = node
        self.clock = clock
        self.providers = providers
        self.bootstrap = bootstrap
        self.answering = answering
        self.logger = logger
    }

    /// Runs until the task is cancelled; acts only while this peer leads.
    public func run() async {
        while !Task.isCancelled {
            if node.leaderHint.role == .leader { await round() }
            await clock.sleep(millis: settings.intervalMillis)
        }
    }

    func round() async {
        let term = node.leaderHint.term
        let firstOfTerm = soft.withLock { s -> Bool in
            if s.term != term { s = Soft(term: term) }
            return s.confirmedTerm != term
        }
        let state: ClusterState
        let status: NodeStatus
        do {
            // The term's first look is linearizable: everything the last leader committed is here.
            state = try await node.read(linearizable: firstOfTerm) { $0 }
            status = try await node.status()
        } catch {
            logger.debug("instances: cannot read the state: \(error)")
            return
        }
        soft.withLock { $0.confirmedTerm = term }
        let now = clock.nowMs()
        // Every provider's list, merged (ids are the cluster's, so they never clash); if one
        // cannot be listed, nothing is decided from lists this round.
        var provided: [String: InstanceLifecycle.Provided]? = [:]
        var holder: [String: String] = [:]
        let idle = state.allIntents.isEmpty
        let list = soft.withLock { s -> Bool in
            guard !idle || now - s.listedAtMs >= settings.idleListIntervalMs else { return false }
            s.listedAtMs = now
            return true
        }
        if !list { provided = nil }
        for p in providers where list {
            do {
                for i in try await p.provider.list(clusterID: settings.clusterID) {
                    provided?[i.instanceID] = i.state == .running ? .running : .stopped
                    holder[i.instanceID] = p.name
                }
            } catch {
                logger.warning("instances: provider \(p.name) (\(p.provider.kind)) cannot list this cluster's instances: \(error)")
                provided = nil
            }
        }
        let unknownSince = soft.withLock { s -> [String: Int64] in
            // Not listed this round: what was seen before keeps its time.
            guard let provided else { return s.unknownSinceMs }
            let unknown = Set(provided.keys.filter { state.instance($0) == nil })
            s.unknownSinceMs = s.unknownSinceMs.filter { unknown.contains($0.key) }
            for x in unknown where s.unknownSinceMs[x] == nil { s.unknownSinceMs[x] = now }
            return s.unknownSinceMs
        }
        let last = status.lastIndex
        let caughtUp = Set(status.progress.filter { p in
            InstanceLifecycle.isCaughtUp(match: p.match, lastIndex: last, recentlyActive: p.recentActive)
        }.map { "\($0.id)" })
        var inputs = InstanceLifecycle.Inputs(
            voters: Set(status.voters.map { "\($0)" }), learners: Set(status.learners.map { "\($0)" }),
            caughtUp: caughtUp.union(["\(settings.selfID)"]), answering: Set(answering(term).map { "\($0)" }).union(["\(settings.selfID)"]),
            provided: provided, unknownSinceMs: unknownSince, nowMs: now, orphanGraceMs: settings.orphanGraceMs)
        let lostNow = lost(now, term)
        let (lostSince, caughtUpSince) = soft.withLock { s in
            s.lostSinceMs = Self.since(s.lostSinceMs, holding: lostNow, now: now)
            s.caughtUpSinceMs = Self.since(s.caughtUpSinceMs, holding: inputs.caughtUp.intersection(inputs.learners), now: now)
            return (s.lostSinceMs, s.caughtUpSinceMs)
        }
        inputs.lostSinceMs = lostSince
        inputs.caughtUpSinceMs = caughtUpSince
        inputs.raftHeard = Set(status.progress.filter(\.recentActive).map { "\($0.id)" }).union(["\(settings.selfID)"])
        inputs.deadVoterRemoveAfterMs = settings.deadVoterRemoveAfterMs
        inputs.learnerStableMs = settings.learnerStableMs
        let actions = InstanceLifecycle.next(state: state, inputs: inputs)
        var waiting: [String: String] = [:]
        for action in actions {
            guard node.leaderHint.role == .leader, node.leaderHint.term == term else { return }
            switch action {
            case .waits(let x, let why):
                waiting[x] = why
            case .create(let x, let why):
                await create(x, why: why, state: state, holder: holder[x], now: now)
            case .propose(let body, let why):
                await propose(body, why: why, term: term)
            case .addLearner(let x, let why):
                if await change(.addLearner, x, why: why) { Failpoint.provisionAfterLearner.hit() }
            case .promote(let x, let why):
                _ = await change(.promote, x, why: why)
            case .removeMember(let x, let why):
                if await change(.removeNode, x, why: why) { Failpoint.decommissionAfterMemberRemoved.hit() }
            case .autopilot(let decision, let why):
                let applied = switch decision {
                case .promote(let learner, _): await change(.promote, learner, why: why)
                case .removeDeadVoter(let x): await change(.removeNode, x, why: why)
                }
                // The event kind is version 2's: below it the decision is in the log only.
                if applied && state.minProtocolVersion >= 2 { await recordAutopilotEvent(decision, why: why, term: term, now: now) }
            case .destroy(let x, let why):
                await destroy(x, why: why, state: state, holder: holder[x])
            }
        }
        let changed = soft.withLock { s -> [String: String] in
            defer { s.waiting = waiting }
            return waiting.filter { s.waiting[$0.key] != $0.value }
        }
        for (x, why) in changed.sorted(by: { $0.key < $1.key }) { logger.info("instance \(x) waits: \(why)") }
    }

    /// Why an instance cannot be restarted (`restart`).
    public struct RestartRefused: Error, Sendable, CustomStringConvertible {
        public var description: String
        /// Nothing was asked of a provider (a bad id, no provider): the request is at fault.
        public var beforeProvider: Bool
    }

    /// Has the provider holding instance `x` stop it and start it again on the same data with
    /// `executable` (`peer upgrade` of an instance a provider made). The caller (the API, on
    /// the leader) waits for the answer; the instance then catches up like any restarted member.
    public func restart(_ x: String, executable: String) async throws(RestartRefused) -> ProvidedInstance {
        let state: ClusterState
        do { state = try await node.read(linearizable: true) { $0 } } catch {
            throw RestartRefused(description: "the state cannot be read: \(error)", beforeProvider: true)
        }
        guard let instance = state.instance(x), instance.state != .removed else {
            throw RestartRefused(description: "instance \(x) is not in the state (or removed)", beforeProvider: true)
        }
        guard !instance.provider.isEmpty else {
            throw RestartRefused(description: "instance \(x) is a member of the cluster file, not made by a provider: `peer upgrade step \(x) --binary ...` on its host restarts it", beforeProvider: true)
        }
        guard let named = provider(for: x, state: state, holder: nil) else {
            throw RestartRefused(description: "instance \(x)'s provider \(instance.provider) is not in this leader's cluster file", beforeProvider: true)
        }
        do {
            let provided = try await named.provider.restart(clusterID: settings.clusterID, instanceID: x, executable: executable)
            logger.notice("instance \(x): the \(named.provider.kind) provider \(named.name) restarted it with \(executable) (\(provided.handle))")
            return provided
        } catch {
            throw RestartRefused(description: "\(error)", beforeProvider: false)
        }
    }

    /// The provider for instance `x`: the one that holds it, else the one its intent or its
    /// record names, else the first.
    func provider(for x: String, state: ClusterState, holder: String?) -> NamedProvider? {
        let named = holder ?? state.allIntents.first(where: { $0.instanceID == x && !$0.provider.isEmpty })?.provider
            ?? state.instance(x).flatMap { $0.provider.isEmpty ? nil : $0.provider }
        if let named {
            guard let p = providers.first(where: { $0.name == named }) else {
                logger.error("instance \(x): its provider \(named) is not in the cluster file's providers (\(providers.map(\.name).joined(separator: ", "))): nothing can create or destroy it; put the provider back, or destroy the instance by hand")
                return nil
            }
            return p
        }
        return providers.first
    }

    func create(_ x: String, why: String, state: ClusterState, holder: String?, now: Int64) async {
        guard let named = provider(for: x, state: state, holder: holder) else {
            if providers.isEmpty { logger.error("instance \(x): \(why), but the cluster file has no providers") }
            return
        }
        let provider = named.provider
        if let retry = soft.withLock({ $0.createRetry[x] }), retry.nextMs > now { return }
        guard let id = NodeID(x) else { return }
        let provided: ProvidedInstance
        let began = clock.nowMs()
        do {
            let files = try bootstrap(id, state)
            provided = try await provider.create(ProvisionRequest(clusterID: settings.clusterID, instanceID: x, bootstrap: files))
        } catch {
            let next = soft.withLock { s -> (Int, Int64) in
                let attempts = (s.createRetry[x]?.attempts ?? 0) + 1
                let delay = min(settings.createBackoffMaxMillis, Int64(1_000) << min(attempts - 1, 16))
                s.createRetry[x] = (attempts, now + delay)
                return (attempts, delay)
            }
            logger.error("instance \(x): create failed (attempt \(next.0); next in \(next.1) ms): \(error)")
            return
        }
        soft.withLock { _ = $0.createRetry.removeValue(forKey: x) }
        logger.notice("instance \(x): the \(provider.kind) provider \(named.name) runs it (\(provided.handle))", metadata: [
            "why": "\(why)", "peer": "\(provided.addresses.peer)", "api": "\(provided.addresses.api)",
            "create_ms": "\(clock.nowMs() - began)",
        ])
        guard state.instance(x) == nil else { return }  // a restart of a known instance
        Failpoint.provisionAfterCreate.hit()
        var add = PBAddInstance()
        add.id = x
        add.address = provided.addresses.peer
        add.apiAddress = provided.addresses.api
        add.routerAddress = provided.addresses.router ?? ""
        add.componentsAddress = provided.addresses.components ?? ""
        add.role = .learner
        add.version = settings.version
        add.protocolVersion = settings.protocolVersion
        add.provider = named.name
        if await propose(.addInstance(add), why: "the provider created instance \(x)", term: node.leaderHint.term) {
            Failpoint.provisionAfterAddInstance.hit()
        }
    }

    @discardableResult
    func propose(_ body: Command.OneOf_Body, why: String, term: Term) async -> Bool {
        let sequence = soft.withLock { s -> UInt64 in
            s.sequence += 1
            return s.sequence
        }
        let command = Command(clientId: "instances-\(settings.selfID)-\(term)", sequence: sequence, leaderTimeMs: clock.nowMs(), body)
        do {
            let result = try await node.propose(command.entryBytes())
            switch result {
            case .applied, .duplicate:
                logger.notice("instances: \(why)", metadata: ["command": "\(Self.describe(body))"])
                return true
            default:
                logger.warning("instances: \(Self.describe(body)) (\(why)) refused: \(result)")
                return false
            }
        } catch {
            logger.info("instances: \(Self.describe(body)) (\(why)): \(error)")
            return false
        }
    }

    /// `since` kept for the ids still in `holding`, `now` for new ones, dropped for the rest.
    static func since(_ since: [String: Int64], holding: Set<String>, now: Int64) -> [String: Int64] {
        var out = since.filter { holding.contains($0.key) }
        for x in holding where out[x] == nil { out[x] = now }
        return out
    }

    /// Autopilot's decisions are events (`peer events`), recorded once the change applied.
    func recordAutopilotEvent(_ decision: InstanceLifecycle.AutopilotChange, why: String, term: Term, now: Int64) async {
        var event = PBEvent()
        event.kind = .autopilot
        switch decision {
        case .promote(let learner, let replacing):
            event.id = "autopilot-promote-\(learner)-\(now)"
            event.instanceID = replacing
            event.newInstanceID = learner
        case .removeDeadVoter(let x):
            event.id = "autopilot-remove-\(x)-\(now)"
            event.instanceID = x
        }
        event.reason = String(why.utf8.prefix(Int(ClusterLimits.descriptionBytesMax))) ?? why
        var c = PBRecordEvent()
        c.event = event
        c.retain = settings.eventsRetain
        await propose(.recordEvent(c), why: why, term: term)
    }

    enum Change { case addLearner, promote, removeNode }

    func change(_ kind: Change, _ x: String, why: String) async -> Bool {
        guard let id = NodeID(x) else { return false }
        let change: ConfChange
        switch kind {
        case .addLearner: change = .addLearner(id)
        case .promote: change = .promote(id)
        case .removeNode: change = .removeNode(id)
        }
        do {
            try await node.changeMembership(change)
            logger.notice("instances: \(change) applied: \(why)")
            return true
        } catch {
            logger.info("instances: \(change) (\(why)) not applied: \(error)")
            return false
        }
    }

    func destroy(_ x: String, why: String, state: ClusterState, holder: String?) async {
        guard let named = provider(for: x, state: state, holder: holder) else { return }
        let provider = named.provider
        let began = clock.nowMs()
        do {
            try await provider.destroy(clusterID: settings.clusterID, instanceID: x)
            logger.notice("instance \(x): destroyed by the \(provider.kind) provider \(named.name): \(why)", metadata: ["destroy_ms": "\(clock.nowMs() - began)"])
            Failpoint.decommissionAfterDestroy.hit()
        } catch {
            logger.error("instance \(x): destroy failed (\(why)): \(error)")
        }
    }

    static func describe(_ body: Command.OneOf_Body) -> String {
        switch body {
        case .addInstance(let c): "add instance \(c.id) (\(c.role))"
        case .setInstanceState(let c): "instance \(c.id) \(c.state)"
        case .resolveIntent(let c): "resolve intent \(c.id)"
        default: "\(body)"
        }
    }

}
