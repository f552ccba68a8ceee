/// Deliberate bugs in the leader's decisions, for proving that the cluster simulator finds them
/// (`peer-sim --world cluster --plant-bug NAME` is the only user; never set in production), as
/// `Raft.PlantedBug` does for the consensus core.
public enum ControllerBug: String, Sendable, Hashable, CaseIterable {
    /// The balancer has a scale-up's instance created before the decision (and its intent) is
    /// committed: a leader that dies in between leaves an instance nobody recorded.
    case provisionBeforeRecord = "provision-before-record"
    /// A move makes its target active (which drains the source) before the target serves the
    /// tenant: the routers send the tenant to an instance that does not serve it. (Dropping the
    /// source outright is refused by apply itself: `breakBeforeMake`.)
    case moveActivatesBeforeReady = "move-activates-before-ready"
    /// The balancer acts again within `cooldownMs`, and moves tenants it moved within
    /// `tenantCooldownMs`.
    case balancerWithoutCooldown = "balancer-without-cooldown"
}
