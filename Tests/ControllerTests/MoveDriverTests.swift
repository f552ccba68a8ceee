import ClusterModel
import Controller
import Testing

/// The move driver (issue 8): make-before-break, decided from the replicated state and the
/// soft reports (readiness, router acks) alone, so a new leader resumes any phase.
@Suite struct MoveDriverTests {
    func world() -> World {
        var w = World()
        w.addActiveInstances(["1", "2"])
        w.servedTenant("acme")
        return w
    }

    func key(_ tenant: String, _ instance: String) -> PlacementKey { PlacementKey(tenant: tenant, instance: instance) }

    @Test func aMoveWaitsForTheTargetThenRoutersThenTheGraceAndOnlyThenDropsTheSource() throws {
        var w = world()
        let source = try #require(w.activeInstance("acme"))
        let target = source == "1" ? "2" : "1"
        #expect(w.move("acme", to: target, operation: "m1") == .applied)
        let op = try #require(w.state.operation("m1"))
        #expect(op.kind == .move && op.state == .inProgress && op.sourceInstanceID == source && op.targetInstanceID == target)
        #expect(w.state.placements(ofTenant: "acme").map(\.phase) .sorted { $0.rawValue < $1.rawValue } == [.preparing, .active])

        // The target's agent has not reported the tenant: nothing happens, the source serves.
        let supervised = PlacementReadiness.supervised(ready: [], supervised: ["1", "2"])
        #expect(w.steps(readiness: supervised).isEmpty)
        #expect(w.activeInstance("acme") == source)

        // Reported: the target becomes active and the source drains in the same entry.
        let ready = PlacementReadiness.supervised(ready: [key("acme", target)], supervised: ["1", "2"])
        #expect(w.round(readiness: ready) == [.applied])
        #expect(w.activeInstance("acme") == target)
        let flip = try #require(w.state.placements(ofTenant: "acme").first { $0.instanceID == target })
        #expect(flip.phaseSinceIndex == w.index)
        #expect(w.state.placements(ofTenant: "acme").first { $0.instanceID == source }?.phase == .draining)

        // Routers have not confirmed the flip's index: the source stays, however long it takes.
        w.nowMs += 3_600_000
        let unconfirmed = RouterAcks(confirmedSinceMs: [flip.phaseSinceIndex - 1: 0])
        #expect(w.steps(readiness: ready, routers: unconfirmed).isEmpty)

        // Confirmed now: the grace period (settings.moveGraceMs) counts from the confirmation.
        let confirmed = RouterAcks(confirmedSinceMs: [flip.phaseSinceIndex: w.nowMs])
        #expect(w.steps(readiness: ready, routers: confirmed).isEmpty)
        w.nowMs += Int64(w.state.settings.moveGraceMs) - 1
        #expect(w.steps(readiness: ready, routers: confirmed).isEmpty)
        w.nowMs += 1
        #expect(w.round(readiness: ready, routers: confirmed) == [.applied])
        #expect(w.state.placements(ofTenant: "acme").map(\.instanceID) == [target])

        // Then the operation succeeds.
        #expect(w.round(readiness: ready, routers: confirmed) == [.applied])
        let done = try #require(w.state.operation("m1"))
        #expect(done.state == .succeeded)
        #expect(done.description_p == "moved from \(source) to \(target)")
        #expect(w.steps(readiness: ready, routers: confirmed).isEmpty)
    }

    /// Found by the cluster simulator: a tenant moved off an instance and straight back is
    /// still listed as served by that instance's last report, taken before the new placement
    /// existed (its components were being stopped). Only a report as of the placement's index
    /// or later activates it.
    @Test func aReportTakenBeforeThePlacementExistedDoesNotActivateIt() throws {
        var w = world()
        let source = try #require(w.activeInstance("acme"))
        let target = source == "1" ? "2" : "1"
        #expect(w.move("acme", to: target, operation: "m1") == .applied)
        let preparing = try #require(w.state.placements(ofTenant: "acme").first { $0.instanceID == target })
        let served = Set([key("acme", target)])
        let stale = PlacementReadiness.supervised(ready: served, supervised: ["1", "2"], servingAsOf: [target: preparing.phaseSinceIndex - 1])
        #expect(w.steps(readiness: stale).isEmpty, "a report older than the placement says nothing about it")
        let fresh = PlacementReadiness.supervised(ready: served, supervised: ["1", "2"], servingAsOf: [target: preparing.phaseSinceIndex])
        #expect(w.round(readiness: fresh) == [.applied])
        #expect(w.activeInstance("acme") == target)
    }

    @Test func aTargetThatNeverServesTheTenantIsWithdrawnAtTheTimeoutAndTheMoveFailsWithWhy() throws {
        var w = world()
        let source = try #require(w.activeInstance("acme"))
        let target = source == "1" ? "2" : "1"
        #expect(w.move("acme", to: target, operation: "m1") == .applied)
        let none = PlacementReadiness.supervised(ready: [], supervised: ["1", "2"])
        w.nowMs += w.policy.moveTimeoutMs - 1
        #expect(w.steps(readiness: none).isEmpty)
        w.nowMs += 1
        #expect(w.round(readiness: none) == [.applied])  // withdraw
        #expect(w.activeInstance("acme") == source)
        #expect(w.round(readiness: none) == [.applied])  // fail
        let failed = try #require(w.state.operation("m1"))
        #expect(failed.state == .failed)
        #expect(failed.description_p.contains("did not serve tenant acme within 60 s"))
        #expect(w.state.placements(ofTenant: "acme").map(\.instanceID) == [source])
        #expect(w.state.placements(ofTenant: "acme").first?.phase == .active)
    }

    @Test func aMoveToALostTargetIsWithdrawnAtOnceAndFailsNamingTheCause() throws {
        var w = world()
        let source = try #require(w.activeInstance("acme"))
        let target = source == "1" ? "2" : "1"
        #expect(w.move("acme", to: target, operation: "m1") == .applied)
        let supervised = PlacementReadiness.supervised(ready: [], supervised: ["1", "2"])
        let lost = InstanceLiveness(lost: [target: "no report or answer from it for 5100 ms"])
        // Long before moveTimeoutMs: the lost target is withdrawn, then the move fails.
        #expect(w.round(readiness: supervised, liveness: lost) == [.applied])
        #expect(w.state.placements(ofTenant: "acme").map(\.instanceID) == [source])
        #expect(w.round(readiness: supervised, liveness: lost) == [.applied])
        let op = try #require(w.state.operation("m1"))
        #expect(op.state == .failed)
        #expect(op.description_p == "instance \(target) was lost (no report or answer from it for 5100 ms); the tenant stays on \(source)")
        #expect(w.activeInstance("acme") == source)
    }

    @Test func everyPhaseResumesUnderANewLeaderFromTheStateAlone() throws {
        // A "new leader" is a fresh call on the same state: the driver keeps nothing between rounds.
        var w = world()
        let source = try #require(w.activeInstance("acme"))
        let target = source == "1" ? "2" : "1"
        #expect(w.move("acme", to: target, operation: "m1") == .applied)
        // Old leader activates, then dies before dropping the source.
        #expect(w.round() == [.applied])
        let flipIndex = try #require(w.state.placements(ofTenant: "acme").first { $0.instanceID == target }).phaseSinceIndex
        // New leader: its acks start empty (soft state is lost with the old leader) → waits.
        #expect(w.steps(routers: RouterAcks()).isEmpty)
        // Once it has seen the routers confirm and the grace pass, it finishes.
        let acks = RouterAcks(confirmedSinceMs: [flipIndex: w.nowMs])
        w.nowMs += Int64(w.state.settings.moveGraceMs)
        #expect(w.steps(routers: acks).count == 1)
        #expect(w.round(routers: acks) == [.applied])
        #expect(w.round(routers: acks) == [.applied])
        #expect(w.state.operation("m1")?.state == .succeeded)
        #expect(w.state.placements(ofTenant: "acme").map(\.instanceID) == [target])
    }

    @Test func applyRefusesMovesThatCannotBeMadeBeforeBreak() throws {
        var w = world()
        let source = try #require(w.activeInstance("acme"))
        let target = source == "1" ? "2" : "1"
        #expect(w.move("acme", to: source).isRejected(.alreadyExists))
        #expect(w.move("nobody", to: target).isRejected(.notFound))
        #expect(w.move("acme", to: "9").isRejected(.notFound))
        #expect(w.move("acme", to: target, operation: "m1") == .applied)
        // One operation per tenant: a second move, a plan change or another move waits.
        #expect(w.move("acme", to: target, operation: "m2").isRejected(.conflict))
        #expect(w.deprovision("acme").isRejected(.conflict))
        // A tenant that is not ready (still provisioning) does not move.
        #expect(w.provision("beta") == .applied)
        #expect(w.move("beta", to: target).isRejected(.conflict))
    }

    @Test func withoutRoutersTheGraceCountsFromTheFlip() throws {
        var w = world()
        let source = try #require(w.activeInstance("acme"))
        let target = source == "1" ? "2" : "1"
        #expect(w.move("acme", to: target, operation: "m1") == .applied)
        #expect(w.round() == [.applied])
        #expect(w.steps().isEmpty)
        w.nowMs += Int64(w.state.settings.moveGraceMs)
        w.settle()
        #expect(w.state.operation("m1")?.state == .succeeded)
    }
}

extension ApplyResult {
    func isRejected(_ code: RejectionCode) -> Bool {
        if case .rejected(let r) = self { return r.code == code }
        return false
    }
}
