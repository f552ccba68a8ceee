import ClusterModel
import Raft

/// The platform's broker calls and the operator's moves, drains and activations: each with its
/// own client session, proposed to whichever node leads and retried (same bytes, so the session
/// makes a retry a duplicate) until the log holds it.
struct Platform {
    struct Request {
        var id: String
        var bytes: [UInt8]
        var nextTryMs: Int64
    }

    var waiting: [Request] = []
    var nextOperation = 1
    var nextTenant = 1
    var nextActionMs: Int64 = 0
}

extension ClusterWorld {
    func platformStep() {
        if faults && nowMs >= platform.nextActionMs {
            platform.nextActionMs = nowMs + random(1_000...6_000)
            newRequest()
        }
        guard let l = leaderID(), !network.isolated.contains(l) else { return }
        let leader = nodes[l]!
        for k in platform.waiting.indices where platform.waiting[k].nextTryMs <= nowMs {
            platform.waiting[k].nextTryMs = nowMs + 3_000
            _ = try? leader.raft!.propose(platform.waiting[k].bytes)
        }
    }

    func newRequest() {
        guard let state = referenceState else { return }
        let ready = state.allTenants.filter { $0.state == .ready && state.inProgressOperation(ofTenant: $0.id) == nil }.map(\.id)
        let active = state.instances(in: .active).map(\.id)
        let op = "op-\(platform.nextOperation)"
        platform.nextOperation += 1
        let roll = rng.next() % 100
        let body: Command.OneOf_Body
        let drained = state.instances(in: .drained).map(\.id)
        if roll < 4, active.count >= 3, !state.hasDrainingInstances {
            // `peer instances drain X`: its tenants move away, then it is drained.
            var c = PBSetInstanceState()
            c.id = active[Int(rng.next() % UInt64(active.count))]
            c.state = .draining
            body = .setInstanceState(c)
        } else if roll < 8, let x = drained.first {
            // `peer instances activate X`: it takes tenants again.
            var c = PBSetInstanceState()
            c.id = x
            c.state = .active
            body = .setInstanceState(c)
        } else if state.tenantCount < 6 || (roll < 40 && state.tenantCount < 20) {
            let tenant = "t\(platform.nextTenant)"
            platform.nextTenant += 1
            let plan = rng.next() % 3 == 0 ? "dreamface-development" : "dreamface-deployment"
            var create = PBCreateTenant()
            create.id = tenant
            create.plan = plan
            create.components = plan == "dreamface-development" ? ["dfc", "dfx-dev"] : ["dfx-dep"]
            var c = PBProvisionTenant()
            c.tenant = create
            c.operationID = op
            c.attributesSha256Hex = String(repeating: "a", count: 64)
            c.originatingIdentity = "sim eyJ1c2VyIjoic2ltIn0="
            body = .provisionTenant(c)
        } else if roll < 65, !ready.isEmpty {
            var c = PBDeprovisionTenant()
            c.tenantID = ready[Int(rng.next() % UInt64(ready.count))]
            c.operationID = op
            body = .deprovisionTenant(c)
        } else if !ready.isEmpty, active.count > 1 {
            let tenant = ready[Int(rng.next() % UInt64(ready.count))]
            let targets = active.filter { $0 != state.activeInstance(ofTenant: tenant) }
            var c = PBMoveTenant()
            c.tenantID = tenant
            c.instanceID = targets[Int(rng.next() % UInt64(targets.count))]
            c.operationID = op
            body = .moveTenant(c)
        } else {
            return
        }
        let bytes = Command(clientId: "platform-\(op)", sequence: 1, leaderTimeMs: nowMs, body).entryBytes()
        platform.waiting.append(Platform.Request(id: op, bytes: bytes, nextTryMs: nowMs))
    }

    /// The log holds the platform's request (whatever its result).
    func platformAccepted(_ clientID: String) {
        guard clientID.hasPrefix("platform-") else { return }
        let op = String(clientID.dropFirst("platform-".count))
        platform.waiting.removeAll { $0.id == op }
    }
}
