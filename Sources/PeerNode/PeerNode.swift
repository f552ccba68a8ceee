import ClusterModel
import Raft
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The driver of one Raft peer: a dedicated thread runs the Ready loop over the pure core
/// (persist, then send, then apply, then advance), the replicated `ClusterState`, proposals
/// and reads. Everything else talks to it through a bounded mailbox; nothing but that thread
/// touches the core, the store or the state.
///
/// Group commit: each turn of the loop takes every queued request, appends all proposals in one
/// batch and persists them in one durable write.
public final class PeerNode: Sendable {
    public let id: NodeID
    let mailbox: Mailbox<Message, Request>
    let loop: LoopBox
    let shared = Shared()

    /// What other threads read without a round trip to the loop.
    final class Shared: Sendable {
        /// Who leads, this node's role and term: what API handlers need to forward.
        let published = Mutex(Published())
        let stopped = Mutex(false)
        let exitWaiters = Mutex(ExitWaiters())
    }

    struct Published: Sendable {
        var leader: NodeID = noNode
        var role: Role = .follower
        var term: Term = 0
        var appliedIndex: LogIndex = 0
        var haltReason: String?
    }

    struct ExitWaiters: Sendable {
        var exited = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Opens the node over `store` (restoring the state from its snapshot). `send` delivers
    /// outgoing messages; it must not block.
    public init(options: PeerNodeOptions, store: any LogStore, send: @escaping MessageSender) throws(PeerNodeError) {
        if let why = options.validationError() { throw .config(why) }
        id = options.raft.id
        mailbox = Mailbox(messagesMax: options.messageQueueMax, requestsMax: options.requestQueueMax)
        loop = LoopBox(try NodeLoop(options: options, store: store, send: send, mailbox: mailbox))
        let shared = self.shared
        loop.value.publish = { p in shared.published.withLock { $0 = p } }
        loop.value.onExit = {
            let waiters = shared.exitWaiters.withLock { w -> [CheckedContinuation<Void, Never>] in
                w.exited = true
                defer { w.waiters = [] }
                return w.waiters
            }
            for w in waiters { w.resume() }
        }
        loop.value.publishNow()
    }

    /// Calls `observer` on the node's thread with the Raft configuration and the applied state:
    /// once when the thread starts, then after every turn that applied configuration changes
    /// (learners added, promoted, nodes removed) or installed a snapshot, after that turn's
    /// entries applied (so an instance added to the state in the same turn is there). Set it
    /// before `start()`; it must not block.
    public func onMembership(_ observer: @escaping @Sendable (MembershipUpdate) -> Void) {
        loop.value.membershipChanged = observer
    }

    /// Calls `observer` on the node's thread after every turn of the loop slower than
    /// `options.slowTurnMillis`. Set it before `start()`; it must not block.
    public func onSlowTurn(_ observer: @escaping @Sendable (SlowTurn) -> Void) {
        loop.value.slowTurn = observer
    }

    /// Calls `observer` on the node's thread with this node's role, term and known leader: at
    /// the first turn, then after every turn that changed one of them (an election won or lost,
    /// a new term, a leader learned). Set it before `start()`; it must not block. The log line it
    /// feeds is how the chaos checker proves at most one leader per term (docs/testing.md).
    public func onLeadership(_ observer: @escaping @Sendable (Leadership) -> Void) {
        loop.value.leadershipChanged = observer
    }

    /// Starts the node's thread.
    public func start() {
        let box = loop
        spawnThread(name: "peer-node") { box.value.run() }
    }

    // MARK: - Inputs

    /// A message from a peer (the transport calls this). Dropped when the lane is full.
    public func receive(_ message: Message) {
        _ = mailbox.post(message: message)
    }

    /// The transport lost its connection to `peer` (or could not reach it).
    public func reportUnreachable(_ peer: NodeID) {
        _ = mailbox.post(request: .unreachable(peer), force: true)
    }

    /// Proposes one command's bytes and waits until it applied here, returning what apply
    /// said. A follower refuses at once with `.notLeader` (docs/adr/0002): forward to the leader.
    public func propose(_ bytes: [UInt8]) async throws(ProposeError) -> ApplyResult {
        try await propose(bytes, afterApply: nil)
    }

    /// `propose`, and `body` run on the state right after the entry applied, on the node thread
    /// (no second trip through the mailbox, as a `read` after the proposal would take).
    public func propose<T: Sendable>(_ bytes: [UInt8], thenRead body: @escaping @Sendable (ClusterState) -> T) async throws(ProposeError) -> (ApplyResult, T) {
        let box = Mutex<T?>(nil)
        let result = try await propose(bytes, afterApply: { state in
            let value = body(state)
            box.withLock { $0 = value }
        })
        guard let value = box.withLock({ $0 }) else { preconditionFailure("an applied proposal's read did not run") }
        return (result, value)
    }

    private func propose(_ bytes: [UInt8], afterApply: AfterApply?) async throws(ProposeError) -> ApplyResult {
        let result: Result<ApplyResult, ProposeError> = await withCheckedContinuation { cont in
            let p = Request.propose(bytes, afterApply, cont)
            if !mailbox.post(request: p) {
                cont.resume(returning: .failure(mailbox.isClosed ? .stopped : .notApplied(reason: "the peer's request queue is full")))
            }
        }
        return try result.get()
    }

    /// Runs `body` on the applied state. `linearizable`: only after a ReadIndex round confirmed
    /// the state includes every write acknowledged before this call (Raft thesis §6.4);
    /// otherwise at once, on whatever this peer applied (possibly stale).
    public func read<T: Sendable>(linearizable: Bool, _ body: @escaping @Sendable (ClusterState) -> T) async throws(ReadError) -> T {
        let result: Result<T, ReadError> = await withCheckedContinuation { cont in
            let serve: @Sendable (ClusterState) -> Void = { state in cont.resume(returning: .success(body(state))) }
            let fail: @Sendable (ReadError) -> Void = { e in cont.resume(returning: .failure(e)) }
            if !mailbox.post(request: .read(linearizable: linearizable, ReadWaiter(serve: serve, fail: fail))) {
                fail(mailbox.isClosed ? .stopped : .overloaded)
            }
        }
        return try result.get()
    }

    /// This node's status, taken on its thread.
    public func status() async throws(ReadError) -> NodeStatus {
        let result: Result<NodeStatus, ReadError> = await withCheckedContinuation { cont in
            if !mailbox.post(request: .status(cont), force: true) { cont.resume(returning: .failure(.stopped)) }
        }
        return try result.get()
    }

    /// Proposes one single-server membership change (ADR 0005) and waits until it applied here.
    /// The core refuses a change while another is pending, before the leader committed an entry
    /// of its term, or a promotion of a learner not caught up (`.notApplied` says which).
    public func changeMembership(_ change: ConfChange) async throws(ProposeError) {
        let result: Result<ApplyResult, ProposeError> = await withCheckedContinuation { cont in
            if !mailbox.post(request: .confChange(change, cont)) {
                cont.resume(returning: .failure(mailbox.isClosed ? .stopped : .notApplied(reason: "the peer's request queue is full")))
            }
        }
        _ = try result.get()
    }

    /// Asks the leader (this node) to hand leadership to `target`.
    public func transferLeadership(to target: NodeID) async throws(ProposeError) {
        let result: Result<Void, ProposeError> = await withCheckedContinuation { cont in
            if !mailbox.post(request: .transfer(target, cont), force: true) {
                cont.resume(returning: .failure(.stopped))
            }
        }
        try result.get()
    }

    /// Who this node believes leads, its role and term, without a round trip to its thread.
    public var leaderHint: (leader: NodeID, role: Role, term: Term) {
        shared.published.withLock { ($0.leader, $0.role, $0.term) }
    }

    public var haltReason: String? { shared.published.withLock { $0.haltReason } }

    /// Stops the loop: waiting requests fail (`.stopped`), the thread exits. Returns when it has.
    public func stop() async {
        let first = shared.stopped.withLock { s -> Bool in
            defer { s = true }
            return !s
        }
        if first { _ = mailbox.post(request: .stop, force: true) }
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let done = shared.exitWaiters.withLock { w -> Bool in
                if w.exited { return true }
                w.waiters.append(cont)
                return false
            }
            if done { cont.resume() }
        }
    }
}

/// What `onMembership` observers see: the configuration now, the changes that led to it in this
/// turn (empty at start and after a snapshot), and the applied state.
public struct MembershipUpdate: Sendable {
    public var conf: ConfState
    public var changes: [ConfChangeResult]
    public var state: ClusterState
}

/// A read waiting on the loop: type-erased so the loop stores reads of any result type.
struct ReadWaiter: Sendable {
    let serve: @Sendable (ClusterState) -> Void
    let fail: @Sendable (ReadError) -> Void
}

/// Run on the node thread with the state right after a proposal's entry applied, before the
/// proposer resumes.
typealias AfterApply = @Sendable (ClusterState) -> Void

enum Request: Sendable {
    case propose([UInt8], AfterApply?, CheckedContinuation<Result<ApplyResult, ProposeError>, Never>)
    case read(linearizable: Bool, ReadWaiter)
    case status(CheckedContinuation<Result<NodeStatus, ReadError>, Never>)
    case transfer(NodeID, CheckedContinuation<Result<Void, ProposeError>, Never>)
    case confChange(ConfChange, CheckedContinuation<Result<ApplyResult, ProposeError>, Never>)
    case unreachable(NodeID)
    /// The snapshot thread encoded the state as of `index`: the loop compacts the log.
    case snapshotEncoded(EncodedSnapshot)
    case stop
}

struct EncodedSnapshot: Sendable {
    var index: LogIndex
    var conf: ConfState
    var data: [UInt8]
}

/// Runs `body` on a new detached thread with an 8 MiB stack (the node loop, the snapshot
/// encoder). A thread that cannot start is a broken machine: trap with the reason.
/// `background`: the thread lowers its own scheduling priority (nice 10, Linux applies it per
/// thread) first. For the snapshot encoder: on a busy machine every member encodes at about the
/// same index (the same entries make the same decision), and encoders at the node thread's
/// priority took the cores from the node threads, whose loop turns then took 150-350 ms.
/// `name` is what `top -H` and /proc/PID/task/TID/comm show (at most 15 bytes).
func spawnThread(name: String, background: Bool = false, _ work: @escaping @Sendable () -> Void) {
    final class Body { let run: @Sendable () -> Void; init(_ r: @escaping @Sendable () -> Void) { run = r } }
    let body: @Sendable () -> Void = {
        nameThread(name)
        if background { lowerThreadPriority() }
        work()
    }
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setstacksize(&attr, 8 << 20)
    let context = Unmanaged.passRetained(Body(body)).toOpaque()
    #if canImport(Glibc)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    let rc = pthread_create(&thread, &attr, { raw in
        Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, context)
    pthread_attr_destroy(&attr)
    precondition(rc == 0, "cannot start a thread: pthread_create returned \(rc)")
    pthread_detach(thread)
}

/// Names the calling thread through /proc/thread-self/comm (Linux; Glibc's module does not
/// export pthread_setname_np). Best effort.
func nameThread(_ name: String) {
    #if canImport(Glibc)
    let fd = open("/proc/thread-self/comm", O_WRONLY)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    #endif
}

/// nice 10 for the calling thread only: on Linux the nice value is per thread, and who = 0
/// names the calling thread (setpriority(2), "Bugs"). Best effort: a refusal changes nothing.
func lowerThreadPriority() {
    #if canImport(Glibc)
    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
    #endif
}

/// Moves the loop (which owns non-Sendable state: the core and the store) to its thread. Only
/// that thread touches `value` after `start()`; before it, only the initializer.
final class LoopBox: @unchecked Sendable {
    let value: NodeLoop
    init(_ value: NodeLoop) { self.value = value }
}
