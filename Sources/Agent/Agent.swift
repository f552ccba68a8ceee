import ChildProcesses
import Dispatch
import Foundation
import Logging
import Synchronization

/// The agent (ARCHITECTURE §9, the seed's "DFM"): runs the component processes this instance's
/// tenants need, and keeps them running.
///
/// The peer computes ``DesiredComponents`` from the replicated placements and calls
/// ``reconcile(_:)``; the agent starts, stops, restarts and reloads processes to match, on its
/// own thread (see `AgentThread` for why one dedicated thread). Between calls it supervises:
/// it reaps exits, restarts crashes after an exponential backoff up to a crash loop,
/// health-checks each component over HTTP on loopback, confirms per tenant that a component
/// serves it, and samples CPU and memory.
///
/// Life cycle: ``start()`` once (it first stops component groups left over by a previous run
/// that was killed), then any number of ``reconcile(_:)``, then ``stop()`` once. Calls to
/// `reconcile` before `start` or after `stop` do nothing and log an error. Call `stop()` before
/// dropping the agent: its thread (and the components) live until then.
public final class Agent: Sendable {
    private let configuration: AgentConfiguration
    private let inbox = AgentInbox()
    private let published = Board()
    private let lifecycle = Mutex(Lifecycle.idle)

    private enum Lifecycle { case idle, started }

    public init(configuration: AgentConfiguration) {
        configuration.checkInvariants()
        self.configuration = configuration
    }

    /// Starts the agent thread: crash recovery from the state file (which can take up to the
    /// longest recorded stop timeout), then supervision. Returns once recovery is done.
    public func start() async {
        let first = lifecycle.withLock { state -> Bool in
            guard case .idle = state else { return false }
            state = .started
            return true
        }
        guard first else {
            configuration.logger.error("Agent.start() called twice; ignored")
            return
        }
        let configuration = self.configuration
        let inbox = self.inbox
        let published = self.published
        await withCheckedContinuation { (started: CheckedContinuation<Void, Never>) in
            let thread = Thread {
                ThreadName.setCurrent("peer-agent")
                AgentThread(configuration: configuration, inbox: inbox, published: published).run(started: started)
            }
            thread.start()
        }
    }

    /// Makes the running components match `desired`: starts missing ones, stops unwanted ones
    /// gracefully, restarts those whose command, arguments, environment or port changed, and
    /// for those whose tenant set changed rewrites the tenant file atomically and sends the
    /// reload signal. Invalid entries are refused (``ComponentState/invalid(_:)`` in `status`).
    /// Idempotent: the same desired state twice changes nothing.
    ///
    /// Returns once the agent thread has applied it (or a newer desired state): processes are
    /// spawned and stops are begun, but a stopping process may still be finishing.
    public func reconcile(_ desired: DesiredComponents) async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            if !inbox.post(desired: desired, waiter: waiter) {
                configuration.logger.error("Agent.reconcile called while the agent is not running; ignored")
                waiter.resume()
            }
        }
    }

    /// Clears a component's crash history; a component in ``ComponentState/crashLoop`` starts
    /// again at the agent thread's next turn. Returns at once.
    public func reset(component: String) {
        if !inbox.post(reset: component) {
            configuration.logger.error("Agent.reset(\(component)) refused: the agent is not running or too many resets are queued")
        }
    }

    /// Stops every component (SIGTERM to its group, SIGKILL after its stop timeout) and
    /// returns once all are reaped and the agent thread has ended.
    public func stop() async {
        let started = lifecycle.withLock { state -> Bool in
            if case .started = state { return true }
            return false
        }
        guard started else { return }
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            inbox.post(stopWaiter: waiter)
        }
    }

    /// One row per component, as of the agent thread's last turn (cheap: no I/O).
    public func status() -> [ComponentStatus] {
        published.snapshot.withLock { $0.statuses }
    }

    /// For each wanted component, the tenants its tenant probe confirmed (see
    /// ``isServing(tenant:component:)``), as of the last health round. Cheap: no I/O.
    public func readyTenants() -> [String: Set<String>] {
        published.snapshot.withLock { $0.ready }
    }

    /// Whether `component` serves `tenant` now: it is running and healthy, its tenant file
    /// lists the tenant, and `GET <healthPath>` with `X-Tenant-ID: <tenant>` answered 2xx
    /// (the component contract: that request answers 2xx only once the component serves the
    /// tenant). Uses the supervision loop's confirmation when there is one, else probes now
    /// (at most the health timeout, off the caller's thread).
    public func isServing(tenant: String, component: String) async -> Bool {
        guard let view = published.snapshot.withLock({ $0.serving[component] }), view.healthy,
              view.tenantsInFile.contains(tenant)
        else { return false }
        if view.confirmed.contains(tenant) { return true }
        let request = HealthProbe.Request(port: view.port, path: view.healthPath, tenant: tenant)
        return await HealthProbe.probe(request, timeout: configuration.healthTimeout).isSuccess
    }
}
