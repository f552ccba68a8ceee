import ClusterModel

/// The balancer (the seed's DFLB; ARCHITECTURE §11; docs/balancer.md), as pure functions: the
/// replicated state, what it remembers of earlier rounds, this round's load and the failure
/// detector's verdict in; the streaks it remembers, at most one new decision and the moves of
/// decisions already committed out. No I/O, no clock.
///
///     an instance lost (`timing.instanceLostAfterMs`) with tenants → failover: its tenants are
///         moved to live instances with room, without waiting for it
///     fewer live instances than `minInstances` → replace: a new instance
///     an instance over `highWater` for `overloadWindowMs` → the fewest hottest tenants whose
///         going brings it to `target` move to instances with room (rebalance) or, when none has
///         room, to a new instance (scale-up); a tenant above `dedicatedShare` moves alone to an
///         instance of its own, and one that overloads an instance by itself raises an alert
///     the cluster under `lowWater` for `underloadWindowMs`, above `minInstances` → the least
///         loaded provider-made instance whose tenants fit on the others at `target` is drained
///         and destroyed (scale-down)
///
/// Every decision is an event committed with the intent it needs (one entry); the moves it
/// names follow in later rounds with operation ids derived from the event, so a new leader
/// continues them and never starts a second move or a second instance for one decision. One
/// decision at a time: none while another's moves or intent are open, none within `cooldownMs`
/// of the last; a tenant moved is not moved again within `tenantCooldownMs`. Between `target`
/// and `highWater` nothing happens (hysteresis), and a scale-down must leave every instance at
/// or below `target`, so a load that oscillates around one mark does not flap.
public enum Balancer {
    public struct Round: Sendable, Equatable {
        /// A new decision to commit (with its intent, if it has one).
        public var event: PBRecordEvent?
        /// The moves of committed decisions that can start now.
        public var moves: [DriverStep]
        /// Why no decision was made this round, when something stands in the way.
        public var waits: String?
    }

    /// Kinds of event that act (and so start the cooldown).
    static let actions: Set<PBEventKind> = [.scaleUp, .rebalance, .scaleDown, .failover, .replace]
    /// Moves of one decision in flight from one source at once.
    public static let movesInFlightPerSourceMax = 4
    /// Values beyond this are absurd (a broken report), not load.
    static let absurd = 1e9

    // MARK: - Observing

    /// Folds one round's load into the streaks. An incomplete or absurd observation, or a gap
    /// since the last one longer than `observationGapMs`, breaks every streak (never acted on).
    public static func observe(_ memory: BalancerMemory, _ observation: LoadObservation, state: ClusterState,
                               liveness: InstanceLiveness, policy: BalancerPolicy) -> BalancerMemory {
        var m = memory
        let now = observation.nowMs
        if let why = observation.incomplete ?? absurdity(observation) {
            m = BalancerMemory()
            m.ignored = why
            return m
        }
        if let last = m.lastObservedMs, now - last > policy.observationGapMs {
            m.overloadedSinceMs = [:]
            m.underusedSinceMs = nil
        }
        let serving = servingInstances(state, liveness)
        var measures: [String: [PBMeasure]] = [:]
        var under = !serving.isEmpty
        var totalRps = 0.0
        for id in serving {
            let load = observation.instances[id] ?? .init(requestsPerSecond: 0)
            let verdict = judge(load, policy)
            measures[id] = verdict.measures
            if verdict.utilization > policy.highWater {
                m.overloadedSinceMs[id] = m.overloadedSinceMs[id] ?? now
            } else {
                m.overloadedSinceMs[id] = nil
            }
            totalRps += load.requestsPerSecond
            if let cpu = load.cpuPermille, let capacity = policy.instanceCpuPermille, cpu / capacity >= policy.lowWater { under = false }
        }
        for id in m.overloadedSinceMs.keys where !serving.contains(id) { m.overloadedSinceMs[id] = nil }
        if under, totalRps / (Double(serving.count) * policy.instanceRequestsPerSecond) < policy.lowWater {
            m.underusedSinceMs = m.underusedSinceMs ?? now
        } else {
            m.underusedSinceMs = nil
        }
        restartWindows(&m, after: state)
        m.lastMeasures = measures
        m.lastObservedMs = now
        m.ignored = nil
        return m
    }

    /// After a decision acted on an instance (or on the cluster), its window starts again at that
    /// decision: the next one judges the load the first left behind, and is a new event (the
    /// id derives from the window's start, so a proposal repeated within one window is one event).
    static func restartWindows(_ m: inout BalancerMemory, after state: ClusterState) {
        let starts = Array(m.overloadedSinceMs.values) + (m.underusedSinceMs.map { [$0] } ?? [])
        guard let oldest = starts.min() else { return }
        for event in state.allEvents.reversed() {
            guard event.atMs > oldest else { break }
            guard actions.contains(event.kind) else { continue }
            if let since = m.overloadedSinceMs[event.instanceID], event.atMs > since { m.overloadedSinceMs[event.instanceID] = event.atMs }
            if let since = m.underusedSinceMs, event.atMs > since { m.underusedSinceMs = event.atMs }
        }
    }

    static func absurdity(_ o: LoadObservation) -> String? {
        func bad(_ v: Double?) -> Bool { v.map { !$0.isFinite || $0 < 0 || $0 > absurd } ?? false }
        for (id, load) in o.instances.sorted(by: { $0.key < $1.key }) {
            if bad(load.requestsPerSecond) || bad(load.errorsPerSecond) || bad(load.p99Ms) || bad(load.cpuPermille) {
                return "instance \(id)'s load is absurd (\(load)); the round is not counted"
            }
        }
        if let (tenant, rps) = o.tenants.sorted(by: { $0.key < $1.key }).first(where: { bad($0.value) }) {
            return "tenant \(tenant)'s request rate \(rps) is absurd; the round is not counted"
        }
        return nil
    }

    /// An instance's utilization: the highest of its inputs, each as a share of its capacity
    /// (latency and errors scaled so that their mark counts as `highWater`).
    static func judge(_ load: LoadObservation.InstanceLoad, _ p: BalancerPolicy) -> (utilization: Double, measures: [PBMeasure]) {
        var measures = [measure("requests_per_second", load.requestsPerSecond, p.highWater * p.instanceRequestsPerSecond)]
        var u = load.requestsPerSecond / p.instanceRequestsPerSecond
        if let capacity = p.instanceCpuPermille, let cpu = load.cpuPermille {
            measures.append(measure("cpu_permille", cpu, p.highWater * capacity))
            u = max(u, cpu / capacity)
        }
        if load.requestsPerSecond >= p.judgedRequestsPerSecondMin {
            if let mark = p.p99HighMs, let p99 = load.p99Ms {
                measures.append(measure("p99_ms", p99, mark))
                u = max(u, p99 / mark * p.highWater)
            }
            if let mark = p.errorShareHigh, mark > 0 {
                let share = load.errorsPerSecond / load.requestsPerSecond
                measures.append(measure("error_share", share, mark))
                u = max(u, share / mark * p.highWater)
            }
        }
        measures.append(measure("utilization", u, p.highWater))
        return (u, measures)
    }

    static func measure(_ name: String, _ value: Double, _ mark: Double) -> PBMeasure {
        var m = PBMeasure()
        m.name = name
        m.value = (value * 1000).rounded() / 1000
        m.mark = (mark * 1000).rounded() / 1000
        return m
    }

    /// Active instances the failure detector has not given up on, sorted by id.
    static func servingInstances(_ state: ClusterState, _ liveness: InstanceLiveness) -> [String] {
        state.instances(in: .active).map(\.id).filter { !liveness.isLost($0) }
    }

    // MARK: - Deciding

    /// This round's decision and moves. `seedIDs`: the cluster file's member ids (a new
    /// instance's id is the next free one after them and every instance and intent).
    public static func next(state: ClusterState, memory: BalancerMemory, observation: LoadObservation, liveness: InstanceLiveness,
                            placement: PlacementPolicy, policy: BalancerPolicy, seedIDs: [String] = []) -> Round {
        let now = observation.nowMs
        let plans = openPlans(state: state, liveness: liveness, policy: policy, nowMs: now)
        var round = Round(event: nil, moves: state.isBalancerPaused ? [] : plans.moves, waits: nil)
        if state.isBalancerPaused {
            round.waits = "paused by the operator (`peer balancer resume`)"
            return round
        }
        let ctx = Context(state: state, memory: memory, observation: observation, liveness: liveness, placement: placement, policy: policy, seedIDs: seedIDs)
        if let event = ctx.failover(coveredTenants: plans.coveredTenants) {
            round.event = event
            return round
        }
        if let open = plans.open {
            round.waits = open
            return round
        }
        if let event = ctx.replace() {
            round.event = event
            return round
        }
        if !policy.plantedBugs.contains(.balancerWithoutCooldown), let last = state.allEvents.last(where: { actions.contains($0.kind) }),
           now - last.atMs < policy.cooldownMs {
            // Only worth saying when there is something to do.
            if !memory.overloadedSinceMs.isEmpty || memory.underusedSinceMs != nil {
                round.waits = "cooling down until \(policy.cooldownMs - (now - last.atMs)) ms from now after \(last.id)"
            }
            return round
        }
        let overload = ctx.overload()
        if overload.event != nil || overload.waits != nil {
            round.event = overload.event
            round.waits = overload.waits
            return round
        }
        let scaleDown = ctx.scaleDown()
        round.event = scaleDown.event
        round.waits = scaleDown.waits
        return round
    }

    // MARK: - Committed decisions

    struct Plans {
        var moves: [DriverStep] = []
        /// Why a committed decision is still open (its intent or moves pending), if one is.
        var open: String?
        /// Tenants an open decision will move.
        var coveredTenants: Set<String> = []
    }

    /// The moves of the decisions committed within `planTimeoutMs` that can start now, and
    /// whether one is still open. A move's operation id derives from its event, so a move that
    /// started (or finished, or failed) is never started again.
    static func openPlans(state: ClusterState, liveness: InstanceLiveness, policy: BalancerPolicy, nowMs: Int64) -> Plans {
        var plans = Plans()
        var inFlight: [String: Int] = [:]
        var candidates: [(DriverStep, source: String)] = []
        for event in state.allEvents.reversed() {
            guard nowMs - event.atMs < policy.planTimeoutMs else { break }
            guard actions.contains(event.kind) else { continue }
            if !event.intentID.isEmpty, let intent = state.allIntents.first(where: { $0.id == event.intentID }) {
                plans.open = plans.open ?? "\(event.id) waits for its \(intent.kind == .provision ? "new" : "removed") instance \(intent.instanceID)"
            }
            for move in event.moves {
                let tenant = move.tenantID
                let target = move.targetInstanceID.isEmpty ? event.newInstanceID : move.targetInstanceID
                let operationId = moveOperationId(event: event.id, tenant: tenant)
                if let op = state.operation(operationId) {
                    if op.state == .inProgress {
                        plans.open = plans.open ?? "\(event.id) moves \(tenant) to \(target)"
                        plans.coveredTenants.insert(tenant)
                        if let source = op.sourceInstanceID.isEmpty ? nil : op.sourceInstanceID { inFlight[source, default: 0] += 1 }
                    }
                    continue
                }
                guard let t = state.tenant(tenant), t.state == .ready, let source = state.activeInstance(ofTenant: tenant), source != target else { continue }
                guard let instance = state.instance(target), instance.state != .removed, instance.state != .drained, instance.state != .draining else { continue }
                plans.coveredTenants.insert(tenant)
                plans.open = plans.open ?? "\(event.id) will move \(tenant) to \(target)"
                guard instance.state == .active, !liveness.isLost(target), state.inProgressOperation(ofTenant: tenant) == nil else { continue }
                var body = PBMoveTenant()
                body.tenantID = tenant
                body.instanceID = target
                body.operationID = operationId
                body.originatingIdentity = "balancer: \(event.id)"
                candidates.append((DriverStep(
                    clientId: DriverStep.clientId(forOperation: operationId), tenantId: tenant, operationId: operationId,
                    body: .moveTenant(body), why: "\(event.id): move \(tenant) from \(source) to \(target)", state: state), source))
            }
        }
        for (step, source) in candidates where inFlight[source, default: 0] < movesInFlightPerSourceMax {
            inFlight[source, default: 0] += 1
            plans.moves.append(step)
        }
        return plans
    }

    /// `balance-<event>-<tenant>`, or a hash of both when that is too long for an id.
    public static func moveOperationId(event: String, tenant: String) -> String {
        let readable = "balance-\(event)-\(tenant)"
        return readable.utf8.count <= ClusterLimits.idBytesMax ? readable : "balance-\(IdHash.fnv1a64Hex("\(event)/\(tenant)"))"
    }

    /// `<kind>-<instance>-<since, base 36>`, or a hash when too long for an id.
    static func eventId(_ kind: String, instance: String, sinceMs: Int64) -> String {
        let since = String(UInt64(max(0, sinceMs)), radix: 36)
        let readable = "\(kind)-\(instance)-\(since)"
        return readable.utf8.count <= ClusterLimits.idBytesMax ? readable : "\(kind)-\(since)-\(IdHash.fnv1a64Hex(instance))"
    }

    public static func kindName(_ k: PBEventKind) -> String {
        switch k {
        case .scaleUp: "scale-up"
        case .rebalance: "rebalance"
        case .scaleDown: "scale-down"
        case .failover: "failover"
        case .replace: "replace"
        case .alert: "alert"
        case .paused: "paused"
        case .resumed: "resumed"
        case .autopilot: "autopilot"
        default: "unknown"
        }
    }
}
