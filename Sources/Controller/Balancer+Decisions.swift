import ClusterModel

extension Balancer {
    /// One round's inputs, and the decisions made from them.
    struct Context {
        let state: ClusterState
        let memory: BalancerMemory
        let observation: LoadObservation
        let liveness: InstanceLiveness
        let placement: PlacementPolicy
        let policy: BalancerPolicy
        let seedIDs: [String]

        var now: Int64 { observation.nowMs }
        var capacity: Double { policy.instanceRequestsPerSecond }

        func tenantRps(_ tenant: String) -> Double { observation.tenants[tenant] ?? 0 }
        func instanceRps(_ instance: String) -> Double { observation.instances[instance]?.requestsPerSecond ?? 0 }

        var decommissioning: Set<String> { Set(state.allIntents.filter { $0.kind == .decommission }.map(\.instanceID)) }

        /// Instances that exist or are being added (what `maxInstances` counts).
        var instanceCount: Int {
            let existing = state.allInstances.filter { $0.state == .joining || $0.state == .active || $0.state == .draining }
            let ids = Set(existing.map(\.id))
            let coming = state.allIntents.filter { $0.kind == .provision && !ids.contains($0.instanceID) }
            return existing.count + coming.count
        }

        /// Tenants active on the instance that a move may take now (ready, nothing in progress), by id.
        func movable(on instance: String) -> [Tenant] {
            state.placements(onInstance: instance).compactMap { p in
                guard p.phase == .active, let t = state.tenant(p.tenantID), t.state == .ready,
                      state.inProgressOperation(ofTenant: t.id) == nil else { return nil }
                return t
            }
        }

        /// Tenants an acting event moved within `tenantCooldownMs`.
        var coolingTenants: Set<String> {
            var cooling: Set<String> = []
            if policy.plantedBugs.contains(.balancerWithoutCooldown) { return cooling }
            for event in state.allEvents.reversed() {
                guard now - event.atMs < policy.tenantCooldownMs else { break }
                guard Balancer.actions.contains(event.kind) else { continue }
                for move in event.moves { cooling.insert(move.tenantID) }
            }
            return cooling
        }

        /// Where tenants may go: serving instances that are not excluded, not being removed and
        /// not overloaded themselves.
        func room(excluding: Set<String>) -> Room {
            let gone = decommissioning.union(excluding)
            let ids = Balancer.servingInstances(state, liveness).filter { !gone.contains($0) && memory.overloadedSinceMs[$0] == nil }
            return Room(ids: ids, context: self)
        }

        func newInstanceIntent(_ id: String) -> PBRecordIntent {
            var intent = PBRecordIntent()
            intent.id = InstanceLifecycle.provisionIntentID(id)
            intent.kind = .provision
            intent.instanceID = id
            intent.deadlineMs = now + policy.addTimeoutMs
            intent.provider = policy.provider ?? ""
            return intent
        }

        func record(_ event: PBEvent, intent: PBRecordIntent? = nil) -> PBRecordEvent {
            var c = PBRecordEvent()
            c.event = event
            c.retain = UInt32(policy.eventsRetain)
            if let intent { c.intent = intent }
            return c
        }

        func event(_ kind: PBEventKind, id: String, instance: String, reason: String, measures: [PBMeasure] = []) -> PBEvent {
            var e = PBEvent()
            e.id = id
            e.kind = kind
            e.instanceID = instance
            e.reason = Balancer.truncated(reason, bytes: ClusterLimits.descriptionBytesMax)
            e.measures = Array(measures.prefix(ClusterLimits.eventMeasuresMax))
            return e
        }

        /// An alert, at most one per `cooldownMs` window for the same subject.
        func alert(_ subject: String, instance: String, reason: String, measures: [PBMeasure] = []) -> PBRecordEvent? {
            let window = max(1, policy.cooldownMs)
            let id = Balancer.eventId("alert-\(subject)", instance: instance, sinceMs: now / window * window)
            guard state.event(id) == nil else { return nil }
            return record(event(.alert, id: id, instance: instance, reason: reason, measures: measures))
        }

        // MARK: failover

        /// The tenants of a lost instance go to live instances with room (by load when one
        /// has it, else by capacity units: served somewhere beats not served).
        func failover(coveredTenants: Set<String>) -> PBRecordEvent? {
            for lost in state.instances(in: .active).map(\.id) where liveness.isLost(lost) {
                let tenants = movable(on: lost).filter { !coveredTenants.contains($0.id) }
                    .sorted { (tenantRps($0.id), $1.id) > (tenantRps($1.id), $0.id) }
                guard !tenants.isEmpty else { continue }
                var room = room(excluding: [lost])
                var moves: [PBEventMove] = []
                var unplaced: [String] = []
                for tenant in tenants {
                    let units = placement.weightUnits(ofPlan: tenant.plan)
                    if moves.count < ClusterLimits.eventMovesMax,
                       let target = room.place(units: units, rps: tenantRps(tenant.id), needLoadRoom: true)
                        ?? room.place(units: units, rps: tenantRps(tenant.id), needLoadRoom: false) {
                        moves.append(Balancer.move(tenant.id, to: target))
                    } else {
                        unplaced.append(tenant.id)
                    }
                }
                let why = liveness.lost[lost] ?? "lost"
                guard !moves.isEmpty else {
                    if let a = alert("lost", instance: lost, reason: "instance \(lost) is lost (\(why)) and none of its \(tenants.count) tenants fits on a live instance; add an instance") { return a }
                    continue
                }
                var e = event(.failover, id: Balancer.eventId("failover", instance: lost, sinceMs: now), instance: lost,
                              reason: "instance \(lost) is lost (\(why)): \(moves.count) tenant(s) move to live instances"
                                + (unplaced.isEmpty ? "" : "; \(unplaced.count) fit nowhere yet"),
                              measures: [Balancer.measure("tenants", Double(tenants.count), 0)])
                e.moves = moves
                return record(e)
            }
            return nil
        }

        // MARK: replace

        /// Fewer live instances (and instances being added) than `minInstances`: a new one.
        /// Not before this leader has counted one observation (its watch has heard the members),
        /// and the cluster file's members not registered yet count as coming: a cluster that is
        /// still forming is not short of instances.
        func replace() -> PBRecordEvent? {
            guard memory.lastObservedMs != nil else { return nil }
            let serving = Balancer.servingInstances(state, liveness).count
            let joining = state.instances(in: .joining).count
            let ids = Set(state.allInstances.map(\.id))
            let unregistered = Set(seedIDs).subtracting(ids).count
            let coming = joining + unregistered + state.allIntents.filter { $0.kind == .provision && !ids.contains($0.instanceID) }.count
            guard serving + coming < policy.minInstances else { return nil }
            guard policy.provider != nil else {
                return alert("below-min", instance: "", reason: "\(serving) live instance(s), below minInstances \(policy.minInstances), and no provider to add one")
            }
            guard instanceCount < policy.maxInstances else {
                return alert("below-min", instance: "", reason: "\(serving) live instance(s), below minInstances \(policy.minInstances), but \(instanceCount) exist (maxInstances \(policy.maxInstances))")
            }
            let id = InstanceLifecycle.nextInstanceID(state: state, seedIDs: seedIDs)
            var e = event(.replace, id: Balancer.eventId("replace", instance: id, sinceMs: now), instance: "",
                          reason: "\(serving) live instance(s) and \(coming) coming, below minInstances \(policy.minInstances): add instance \(id)",
                          measures: [Balancer.measure("live_instances", Double(serving), Double(policy.minInstances))])
            e.newInstanceID = id
            return record(e, intent: newInstanceIntent(id))
        }

        // MARK: overload

        func overload() -> (event: PBRecordEvent?, waits: String?) {
            let due = memory.overloadedSinceMs.filter { now - $0.value >= policy.overloadWindowMs && state.instance($0.key)?.state == .active }
            let utilization = { (id: String) in memory.lastMeasures[id]?.last(where: { $0.name == "utilization" })?.value ?? 0 }
            guard let (hot, since) = due.sorted(by: { (utilization($0.key), $1.key) > (utilization($1.key), $0.key) }).first else { return (nil, nil) }
            let u = utilization(hot)
            var measures = memory.lastMeasures[hot] ?? []
            measures.append(Balancer.measure("window_ms", Double(now - since), Double(policy.overloadWindowMs)))
            let here = movable(on: hot)
            let cooling = coolingTenants
            let loads = here.map { ($0, tenantRps($0.id)) }.filter { $0.1 > 0 }.sorted { ($0.1, $1.0.id) > ($1.1, $0.0.id) }
            let total: Double = max(instanceRps(hot), loads.reduce(0.0) { $0 + $1.1 })
            let summary = "instance \(hot) over highWater \(policy.highWater) for \(now - since) ms (utilization \(Balancer.rounded(u)))"

            // A tenant alone above `dedicatedShare` of an instance.
            if let (top, rps) = loads.first, rps / capacity > policy.dedicatedShare {
                if state.placements(onInstance: hot).filter({ $0.phase == .active }).count == 1 {
                    let a = alert("alone", instance: hot, sinceMs: since,
                                  reason: "\(summary): tenant \(top.id) alone sends \(Balancer.rounded(rps)) req/s, \(Balancer.rounded(rps / capacity)) of an instance; no instance can take more (raise its quota or the instance's capacity)",
                                  measures: measures)
                    return (a, a == nil ? "\(summary): tenant \(top.id) alone overloads it (alerted)" : nil)
                }
                guard !cooling.contains(top.id) else { return (nil, "\(summary): its dedicated tenant \(top.id) was moved within tenantCooldownMs") }
                var room = Room(ids: room(excluding: [hot]).ids.filter { state.placements(onInstance: $0).allSatisfy { $0.phase != .active } }, context: self)
                if let target = room.place(units: placement.weightUnits(ofPlan: top.plan), rps: rps, needLoadRoom: true) {
                    var e = event(.rebalance, id: Balancer.eventId("rebalance", instance: hot, sinceMs: since), instance: hot,
                                  reason: "\(summary): tenant \(top.id) sends \(Balancer.rounded(rps)) req/s, above dedicatedShare \(policy.dedicatedShare): it moves alone to empty instance \(target)",
                                  measures: measures)
                    e.moves = [Balancer.move(top.id, to: target)]
                    return (record(e), nil)
                }
                return scaleUp(hot: hot, since: since, tenants: [top.id], summary: "\(summary): tenant \(top.id) sends \(Balancer.rounded(rps)) req/s, above dedicatedShare \(policy.dedicatedShare): it gets an instance of its own", measures: measures)
            }

            // The fewest hottest tenants whose going brings the instance to `target`.
            let share: Double = u > 0 ? max(0, 1 - policy.target / u) : 0
            var chosen: [(Tenant, Double)] = []
            var removed = 0.0
            for (tenant, rps) in loads where !cooling.contains(tenant.id) {
                guard removed < share * total, chosen.count < ClusterLimits.eventMovesMax else { break }
                chosen.append((tenant, rps))
                removed += rps
            }
            guard !chosen.isEmpty else {
                let why = loads.isEmpty ? "no tenant of it sent requests in the window (the load is not the tenants')" : "every busy tenant of it was moved within tenantCooldownMs"
                return (nil, "\(summary): \(why)")
            }
            var room = room(excluding: [hot])
            var moves: [PBEventMove] = []
            for (tenant, rps) in chosen {
                guard let target = room.place(units: placement.weightUnits(ofPlan: tenant.plan), rps: rps, needLoadRoom: true) else { break }
                moves.append(Balancer.move(tenant.id, to: target))
            }
            let names = chosen.map { "\($0.0.id) (\(Balancer.rounded($0.1)) req/s)" }.joined(separator: ", ")
            if moves.count == chosen.count {
                var e = event(.rebalance, id: Balancer.eventId("rebalance", instance: hot, sinceMs: since), instance: hot,
                              reason: "\(summary): \(names) move to instances with room", measures: measures)
                e.moves = moves
                return (record(e), nil)
            }
            return scaleUp(hot: hot, since: since, tenants: chosen.map(\.0.id), summary: "\(summary): \(names) fit on no instance at target \(policy.target)", measures: measures)
        }

        func scaleUp(hot: String, since: Int64, tenants: [String], summary: String, measures: [PBMeasure]) -> (event: PBRecordEvent?, waits: String?) {
            guard policy.provider != nil else {
                let a = alert("no-provider", instance: hot, sinceMs: since, reason: "\(summary); no provider to add an instance", measures: measures)
                return (a, a == nil ? "\(summary); no provider (alerted)" : nil)
            }
            guard instanceCount < policy.maxInstances else {
                let a = alert("max-instances", instance: hot, sinceMs: since, reason: "\(summary); \(instanceCount) instances, maxInstances \(policy.maxInstances)", measures: measures)
                return (a, a == nil ? "\(summary); at maxInstances \(policy.maxInstances) (alerted)" : nil)
            }
            let id = InstanceLifecycle.nextInstanceID(state: state, seedIDs: seedIDs)
            var e = event(.scaleUp, id: Balancer.eventId("scale-up", instance: hot, sinceMs: since), instance: hot,
                          reason: "\(summary): new instance \(id) for them", measures: measures)
            e.newInstanceID = id
            e.moves = tenants.map { Balancer.move($0, to: "") }
            return (record(e, intent: newInstanceIntent(id)), nil)
        }

        func alert(_ subject: String, instance: String, sinceMs: Int64, reason: String, measures: [PBMeasure]) -> PBRecordEvent? {
            let id = Balancer.eventId("alert-\(subject)", instance: instance, sinceMs: sinceMs)
            guard state.event(id) == nil else { return nil }
            return record(event(.alert, id: id, instance: instance, reason: reason, measures: measures))
        }

        // MARK: scale-down

        func scaleDown() -> (event: PBRecordEvent?, waits: String?) {
            guard let since = memory.underusedSinceMs, now - since >= policy.underloadWindowMs else { return (nil, nil) }
            let serving = Balancer.servingInstances(state, liveness)
            guard serving.count > policy.minInstances else { return (nil, nil) }
            let total = serving.reduce(0.0) { $0 + instanceRps($1) }
            let summary = "the cluster under lowWater \(policy.lowWater) for \(now - since) ms (\(Balancer.rounded(total)) req/s on \(serving.count) instances)"
            guard total <= policy.target * capacity * Double(serving.count - 1) else {
                return (nil, "\(summary), but \(serving.count - 1) instances would be above target \(policy.target)")
            }
            let voters = state.allInstances.filter { $0.state != .removed && $0.role == .voter }.count
            let votersTarget = Int(max(1, state.settings.votersTarget))
            let candidates = serving.filter { id in
                guard let i = state.instance(id), !i.provider.isEmpty, !decommissioning.contains(id) else { return false }
                return i.role == .learner || voters > votersTarget
            }.sorted { (instanceRps($0), $1) < (instanceRps($1), $0) }
            guard !candidates.isEmpty else { return (nil, nil) }
            for candidate in candidates {
                var room = room(excluding: [candidate])
                let tenants = state.placements(onInstance: candidate).compactMap { state.tenant($0.tenantID) }
                let fits = tenants.sorted { (tenantRps($0.id), $1.id) > (tenantRps($1.id), $0.id) }.allSatisfy { t in
                    room.place(units: placement.weightUnits(ofPlan: t.plan), rps: tenantRps(t.id), needLoadRoom: true) != nil
                }
                guard fits else { continue }
                var measures = [Balancer.measure("requests_per_second", total, policy.lowWater * capacity * Double(serving.count))]
                measures.append(Balancer.measure("window_ms", Double(now - since), Double(policy.underloadWindowMs)))
                let e = event(.scaleDown, id: Balancer.eventId("scale-down", instance: candidate, sinceMs: since), instance: candidate,
                              reason: "\(summary): instance \(candidate) (\(Balancer.rounded(instanceRps(candidate))) req/s, \(tenants.count) tenant(s)) is drained and destroyed; its tenants fit on the others",
                              measures: measures)
                var intent = PBRecordIntent()
                intent.id = InstanceLifecycle.decommissionIntentID(candidate)
                intent.kind = .decommission
                intent.instanceID = candidate
                intent.deadlineMs = now + Balancer.removalTimeoutMs
                return (record(e, intent: intent), nil)
            }
            return (nil, "\(summary), but no removable instance's tenants fit on the others")
        }
    }

    /// A scale-down's removal deadline (as `peer instances remove`'s default).
    static let removalTimeoutMs: Int64 = 3_600_000

    static func move(_ tenant: String, to target: String) -> PBEventMove {
        var m = PBEventMove()
        m.tenantID = tenant
        m.targetInstanceID = target
        return m
    }

    /// `text` cut at a character boundary to at most `bytes` UTF-8 bytes.
    static func truncated(_ text: String, bytes: Int) -> String {
        guard text.utf8.count > bytes else { return text }
        var out = ""
        for c in text {
            guard out.utf8.count + c.utf8.count <= bytes - 3 else { break }
            out.append(c)
        }
        return out + "..."
    }

    public static func rounded(_ v: Double) -> String {
        let r = (v * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    /// Free capacity units and load headroom of candidate targets during one round, with
    /// reservations so two tenants placed in the same round do not count on the same room.
    struct Room {
        private(set) var ids: [String]
        private var freeUnits: [String: UInt64] = [:]
        private var rps: [String: Double] = [:]
        private let loadCeiling: Double

        init(ids: [String], context: Context) {
            self.ids = ids.sorted()
            loadCeiling = context.policy.target * context.capacity
            for id in self.ids {
                let used = context.state.placementCountsByPlan(onInstance: id).reduce(UInt64(0)) { sum, entry in
                    sum + context.placement.weightUnits(ofPlan: entry.key) * UInt64(entry.value)
                }
                let capacity = context.placement.instanceCapacityUnits
                freeUnits[id] = capacity > used ? capacity - used : 0
                rps[id] = context.instanceRps(id)
            }
        }

        /// The candidate with the most load headroom that has `units` free (and, with
        /// `needLoadRoom`, room for `rps` below target); reserves both.
        mutating func place(units: UInt64, rps tenantRps: Double, needLoadRoom: Bool) -> String? {
            var best: String?
            for id in ids where freeUnits[id, default: 0] >= units {
                let load = rps[id, default: 0]
                if needLoadRoom && load + tenantRps > loadCeiling { continue }
                if let b = best, rps[b, default: 0] <= load { continue }
                best = id
            }
            guard let chosen = best else { return nil }
            freeUnits[chosen, default: 0] -= units
            rps[chosen, default: 0] += tenantRps
            return chosen
        }
    }
}
