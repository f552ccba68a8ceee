import ClusterModel
import Controller
import Failpoints
import Logging
import PeerNode
import Raft
import Synchronization

/// The balancer's shell (the seed's DFLB; ARCHITECTURE §11; docs/balancer.md): while this peer
/// leads, every `intervalMillis` it assembles the members' load from the data-plane watch, lets
/// `Controller.Balancer` fold it into its streaks and decide, and commits what it decided: at
/// most one new decision (an event, with the intent of a scale-up or scale-down in the same
/// entry) and the moves of decisions already committed. The provisioner adds and removes the
/// instances; the operation driver carries the moves out.
///
/// Its only memory is the streaks (soft): a new leader starts them from nothing and watches a
/// whole window before it acts. What was decided is in the log, so a new leader continues the
/// moves of its predecessor's decisions and never decides the same thing twice.
public final class BalancerLoop: Sendable {
    public struct Settings: Sendable {
        public var intervalMillis = 1_000
        /// A member's last report counts this long (a member that misses a poll or two still counts).
        public var reportMaxAgeMs: Int64 = 3_000
        /// The cluster file's member ids (a new instance's id comes after them).
        public var seedIDs: [String] = []

        public init() {}
    }

    let settings: Settings
    let node: any LeaderNode
    let clock: any LeaderClock
    let policy: BalancerPolicy
    let placement: PlacementPolicy
    let watch: DataPlaneWatch
    let waker: Waker
    /// Only for the planted bug `provision-before-record` (the simulator's): the provisioner.
    let instances: InstanceLifecycleLoop?
    let logger: Logger
    let soft = Mutex(Soft())

    struct Soft {
        var term: Term = 0
        var confirmedTerm: Term = 0
        var memory = BalancerMemory()
        var lastWaits: String?
        var lastIgnored: String?
    }

    /// - Parameter waker: the operation driver's, woken after a move starts.
    public init(settings: Settings, node: any LeaderNode, policy: BalancerPolicy, placement: PlacementPolicy, watch: DataPlaneWatch, waker: Waker,
                clock: any LeaderClock = SystemClock(), instances: InstanceLifecycleLoop? = nil, logger: Logger) {
        self.settings = settings
        self.node = node
        self.clock = clock
        self.policy = policy
        self.placement = placement
        self.watch = watch
        self.waker = waker
        self.instances = instances
        self.logger = logger
    }

    /// Runs until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            let hint = node.leaderHint
            if hint.role == .leader {
                await round(term: hint.term)
            } else {
                soft.withLock { $0 = Soft() }
            }
            await clock.sleep(millis: settings.intervalMillis)
        }
    }

    /// One round: observe, decide, commit.
    func round(term: Term) async {
        let now = clock.nowMs()
        let (memory, confirmed) = soft.withLock { s -> (BalancerMemory, Bool) in
            if s.term != term { s = Soft(term: term) }
            return (s.memory, s.confirmedTerm == term)
        }
        let observation = watch.observation(nowMs: now, term: term, reportMaxAgeMs: settings.reportMaxAgeMs)
        let liveness = watch.liveness(nowMs: now, term: term)
        let policy = self.policy
        let placement = self.placement
        let seeds = settings.seedIDs
        let decided: (BalancerMemory, Balancer.Round)
        do {
            // The term's first read is linearizable: every decision of the last leader is applied
            // here before this one decides (its events, cooldowns and open moves).
            decided = try await node.read(linearizable: !confirmed) { state in
                let m = Balancer.observe(memory, observation, state: state, liveness: liveness, policy: policy)
                return (m, Balancer.next(state: state, memory: m, observation: observation, liveness: liveness, placement: placement, policy: policy, seedIDs: seeds))
            }
        } catch {
            logger.debug("balancer: cannot read the state: \(error)")
            return
        }
        let (next, round) = decided
        let (logIgnored, logWaits) = soft.withLock { s -> (String?, String?) in
            guard s.term == term else { return (nil, nil) }
            s.confirmedTerm = term
            s.memory = next
            defer { s.lastIgnored = next.ignored; s.lastWaits = round.waits }
            return (next.ignored != s.lastIgnored ? next.ignored : nil, round.waits != s.lastWaits ? round.waits : nil)
        }
        if let why = logIgnored { logger.info("balancer: load not counted: \(why)") }
        if let why = logWaits { logger.info("balancer waits: \(why)") }
        if let record = round.event {
            if policy.plantedBugs.contains(.provisionBeforeRecord), let instances, !record.event.newInstanceID.isEmpty,
               let state = try? await node.read(linearizable: false, { $0 }) {
                await instances.create(record.event.newInstanceID, why: "planted bug: provisioned before the decision is committed", state: state, holder: nil, now: now)
            }
            await commit(record, now: now)
        }
        if !round.moves.isEmpty {
            await start(round.moves, now: now)
        }
    }

    func commit(_ record: PBRecordEvent, now: Int64) async {
        let e = record.event
        let command = Command(clientId: "balancer/\(e.id)", sequence: 1, leaderTimeMs: now, .recordEvent(record))
        do {
            let result = try await node.propose(command.entryBytes())
            switch result {
            case .applied:
                let measures = e.measures.map { "\($0.name)=\(Balancer.rounded($0.value))/\($0.mark == 0 ? "-" : Balancer.rounded($0.mark))" }.joined(separator: " ")
                logger.notice("balancer: \(Balancer.kindName(e.kind)) \(e.id): \(e.reason)", metadata: [
                    "event": "\(e.id)", "measures": "\(measures)",
                    "moves": "\(e.moves.map { "\($0.tenantID)->\($0.targetInstanceID.isEmpty ? e.newInstanceID : $0.targetInstanceID)" }.joined(separator: ","))",
                ])
                Failpoint.balancerAfterDecision.hit()
            case .duplicate:
                break
            default:
                logger.info("balancer: \(e.id) refused: \(result)")
            }
        } catch {
            logger.debug("balancer: \(e.id): \(error)")
        }
    }

    func start(_ moves: [DriverStep], now: Int64) async {
        let node = self.node
        let logger = self.logger
        let started = await withTaskGroup(of: Bool.self) { group in
            for step in moves {
                group.addTask {
                    do {
                        let result = try await node.propose(step.command(leaderTimeMs: now).entryBytes())
                        guard case .applied = result else {
                            if case .duplicate = result { return false }
                            logger.info("balancer: \(step.operationId) (\(step.why)) refused: \(result)")
                            return false
                        }
                        logger.info("balancer: \(step.why)", metadata: ["operation": "\(step.operationId)"])
                        Failpoint.balancerAfterMoveStarted.hit()
                        return true
                    } catch {
                        logger.debug("balancer: \(step.operationId): \(error)")
                        return false
                    }
                }
            }
            var any = false
            for await ok in group where ok { any = true }
            return any
        }
        if started { waker.wake() }
    }
}

extension BalancerLoop.Soft {
    init(term: Term) {
        self.init()
        self.term = term
    }
}
