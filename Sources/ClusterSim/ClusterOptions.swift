import Controller
import RaftSim

/// How one run of the cluster world is shaped.
public struct ClusterOptions: Sendable {
    /// Founding voters (3 or 5).
    public var nodes = 3
    /// Simulated seconds of the fault phase: load, operations, crashes, partitions, provider faults.
    public var seconds = 240
    /// Simulated seconds the settle phase may take, after healing everything, before the run is
    /// a liveness violation (operations still open, the provider's instances not the committed ones).
    public var settleSecondsMax = 240
    /// Controller bugs to plant (`--plant-bug`).
    public var plantedBugs: Set<ControllerBug> = []
    /// How many recent events a violation report shows.
    public var traceEventsMax = 40

    public init() {}
}

/// Counters a run reports, so a summary shows what it covered.
public struct ClusterCounters: Sendable, Hashable {
    /// Simulated milliseconds, both phases.
    public var simulatedMs: Int64 = 0
    /// Jobs of the leader's loops run.
    public var jobs = 0
    public var commits = 0
    public var leaderChanges = 0
    public var crashes = 0
    /// Crashes of the leader between two jobs of its loops (the leader dies mid-round).
    public var leaderCrashes = 0
    public var partitions = 0
    /// Leadership transfers started (a rolling upgrade's step).
    public var transfers = 0
    public var operationsStarted = 0
    public var operationsFinished = 0
    public var operationsFailed = 0
    public var movesFinished = 0
    /// Instances drained to the end (the operator's drains and the balancer's scale-downs).
    public var drained = 0
    public var scaleUps = 0
    public var scaleDowns = 0
    public var rebalances = 0
    public var failovers = 0
    /// Instances added back up to `minInstances` (after a drain or a loss).
    public var replaces = 0
    public var instancesCreated = 0
    public var instancesDestroyed = 0
    public var providerFailures = 0
    public var providerHangs = 0
    public var providerDuplicates = 0

    public init() {}

    public mutating func add(_ o: ClusterCounters) {
        simulatedMs += o.simulatedMs
        jobs += o.jobs
        commits += o.commits
        leaderChanges += o.leaderChanges
        crashes += o.crashes
        leaderCrashes += o.leaderCrashes
        partitions += o.partitions
        transfers += o.transfers
        operationsStarted += o.operationsStarted
        operationsFinished += o.operationsFinished
        operationsFailed += o.operationsFailed
        movesFinished += o.movesFinished
        drained += o.drained
        scaleUps += o.scaleUps
        scaleDowns += o.scaleDowns
        rebalances += o.rebalances
        failovers += o.failovers
        replaces += o.replaces
        instancesCreated += o.instancesCreated
        instancesDestroyed += o.instancesDestroyed
        providerFailures += o.providerFailures
        providerHangs += o.providerHangs
        providerDuplicates += o.providerDuplicates
    }

    public var summary: String {
        "simulated-s=\(simulatedMs / 1000) jobs=\(jobs) commits=\(commits) leader-changes=\(leaderChanges) crashes=\(crashes) "
            + "leader-crashes=\(leaderCrashes) partitions=\(partitions) transfers=\(transfers) operations=\(operationsStarted)/\(operationsFinished)/failed:\(operationsFailed) "
            + "moves=\(movesFinished) drained=\(drained) scale-ups=\(scaleUps) scale-downs=\(scaleDowns) rebalances=\(rebalances) failovers=\(failovers) replaces=\(replaces) "
            + "created=\(instancesCreated) destroyed=\(instancesDestroyed) provider-failures=\(providerFailures) "
            + "provider-hangs=\(providerHangs) provider-duplicates=\(providerDuplicates)"
    }
}

/// One run's outcome.
public struct ClusterResult: Sendable {
    public var seed: UInt64
    public var violation: Violation?
    public var counters: ClusterCounters
    /// The last events before the violation (empty when none).
    public var trace: [String]
}
