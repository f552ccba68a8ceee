import Raft

/// How one simulated run is shaped. Fault rates are per mille so that runs stay integer-exact.
public struct SimOptions: Sendable {
    public var nodes = 3
    /// Node ids beyond the founding voters that membership changes may add (each at most once).
    public var spareNodes = 6
    /// Events in the safety phase (deliveries, ticks, proposals, faults).
    public var steps = 2000
    /// Ticks the liveness phase may take, after healing everything, before it is a violation.
    public var livenessTicksMax = 3000
    /// Messages the liveness phase may deliver: a healed cluster that needs more is storming.
    public var livenessMessagesMax = 300_000
    public var plantedBugs: Set<PlantedBug> = []

    public var dropPerMille = 50
    public var duplicatePerMille = 30
    /// Messages are delivered 0...deliveryDelayTicksMax ticks after sending, in random order.
    public var deliveryDelayTicksMax = 3
    /// Of every thousand messages, how many are delayed beyond an election timeout: 1 to 3
    /// election timeouts (a congested or rerouted link).
    public var longDelayPerMille = 15
    /// During a reordering burst every message is delayed 0...burstDelayTicksMax ticks.
    public var burstDelayTicksMax = 8
    /// Each node's clock runs at 1000 +- this many per mille of real time (drawn per node and
    /// seed): a fast node ticks more often than a slow one.
    public var clockDriftPerMilleMax = 200
    /// A paused process (SIGSTOP, a VM stall) stays paused up to this many election timeouts.
    public var pauseElectionTimeoutsMax = 4
    /// Election timeout of every simulated node, in ticks of its own clock.
    public var electionTimeoutTicks = 10
    /// How many recent events a violation report shows.
    public var traceEventsMax = 40

    public init() {}
}

/// A broken invariant: which one, and what exactly was seen.
public struct Violation: Sendable, Hashable, CustomStringConvertible {
    public var invariant: String
    public var detail: String

    public var description: String { "\(invariant): \(detail)" }

    public init(invariant: String, detail: String) {
        self.invariant = invariant
        self.detail = detail
    }
}

/// Counters a run reports so a summary shows what it covered.
public struct SimCounters: Sendable, Hashable {
    public var events = 0
    public var ticks = 0
    public var elections = 0
    public var commits = 0
    public var proposals = 0
    public var proposalsRefused = 0
    public var acked = 0
    public var delivered = 0
    public var dropped = 0
    public var duplicated = 0
    public var crashes = 0
    /// Crashes after a leader's appends went out and before its own persist (thesis §10.2.1).
    public var crashesBeforePersist = 0
    public var restarts = 0
    public var partitions = 0
    public var malformed = 0
    public var transfers = 0
    public var reads = 0
    /// Snapshots installed from a leader (followers brought up to date by snapshot).
    public var snapshots = 0
    /// Membership changes applied.
    public var confChanges = 0
    /// Crashes in the middle of a Ready's write: a prefix of it survives (a torn write).
    public var tornWrites = 0
    /// Crashes between two of a Ready's sends.
    public var crashesMidSend = 0
    /// Process pauses (a node neither ticks, hears nor speaks, then resumes with old beliefs).
    public var pauses = 0
    /// Messages delayed beyond an election timeout.
    public var longDelays = 0
    /// Reordering bursts.
    public var bursts = 0
    /// Deepest lag of a node's application behind its commit index, in entries.
    public var applyLagMax: LogIndex = 0
    /// Real ticks at which a running node believed it led: how much of the run could commit.
    public var leaderTicks = 0
    /// Sum over real ticks of the voters (of the newest configuration) that were down or paused.
    public var downVoterTicks = 0

    public init() {}

    public mutating func add(_ o: SimCounters) {
        events += o.events; ticks += o.ticks; elections += o.elections;
        commits += o.commits; proposals += o.proposals; proposalsRefused += o.proposalsRefused
        acked += o.acked; delivered += o.delivered; dropped += o.dropped; duplicated += o.duplicated
        crashes += o.crashes; crashesBeforePersist += o.crashesBeforePersist; restarts += o.restarts; partitions += o.partitions; malformed += o.malformed
        transfers += o.transfers; reads += o.reads; snapshots += o.snapshots; confChanges += o.confChanges
        tornWrites += o.tornWrites; crashesMidSend += o.crashesMidSend; pauses += o.pauses
        longDelays += o.longDelays; bursts += o.bursts; leaderTicks += o.leaderTicks; downVoterTicks += o.downVoterTicks; applyLagMax = max(applyLagMax, o.applyLagMax)
    }

    /// `key=value` pairs for the summary line, in a fixed order.
    public var summary: String {
        "events=\(events) ticks=\(ticks) elections=\(elections) commits=\(commits) "
            + "proposals=\(proposals) refused=\(proposalsRefused) acked=\(acked) delivered=\(delivered) "
            + "dropped=\(dropped) duplicated=\(duplicated) crashes=\(crashes) crashes-before-persist=\(crashesBeforePersist) restarts=\(restarts) "
            + "partitions=\(partitions) malformed=\(malformed) transfers=\(transfers) reads=\(reads) snapshots=\(snapshots) confchanges=\(confChanges) "
            + "torn-writes=\(tornWrites) crashes-mid-send=\(crashesMidSend) pauses=\(pauses) long-delays=\(longDelays) bursts=\(bursts) apply-lag-max=\(applyLagMax) leader-ticks=\(leaderTicks) down-voter-ticks=\(downVoterTicks)"
    }
}

/// The outcome of one seed.
public struct SimResult: Sendable {
    public var seed: UInt64
    public var violation: Violation?
    /// The last events before the violation (empty when there is none).
    public var trace: [String]
    public var counters: SimCounters
}
