#if canImport(Glibc)
import Glibc
#endif

/// Requests from async callers to the agent thread, and the thread's sleep between turns.
///
/// Bounded by construction: desired states coalesce (only the newest unapplied one is kept;
/// its waiters resume when it or a newer one is applied), resets are a set of known names,
/// and each waiter list holds at most ``waitersMax`` continuations. When the desired-state
/// waiters are full the oldest one resumes early: its desired state is superseded anyway.
///
/// A pthread mutex and a condition variable on CLOCK_MONOTONIC (not Mutex: the thread must
/// sleep until a deadline OR a request, which needs a condition variable).
final class AgentInbox: @unchecked Sendable {
    static let waitersMax = 64
    static let resetsMax = AgentLimits.componentsMax

    enum Openness { case notYet, open, closed }

    /// What the thread takes in one turn.
    struct Work {
        var desired: DesiredComponents?
        var desiredWaiters: [CheckedContinuation<Void, Never>] = []
        var resets: Set<String> = []
        var stopRequested = false
    }

    // Guarded by `mutex`.
    private var openness = Openness.notYet
    private var work = Work()
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []
    private var stopSeen = false

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        precondition(pthread_cond_init(condition, &attributes) == 0, "pthread_cond_init failed")
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// The agent thread opens the inbox once recovery is done.
    /// A stop asked for during recovery takes effect now.
    func open() {
        locked {
            openness = .open
            if !stopWaiters.isEmpty && !stopSeen { work.stopRequested = true }
        }
    }

    /// Queues `desired` (replacing an unapplied older one). False when the agent does not run:
    /// the caller resumes its continuation itself.
    func post(desired: DesiredComponents, waiter: CheckedContinuation<Void, Never>) -> Bool {
        var early: CheckedContinuation<Void, Never>?
        let accepted = locked {
            guard openness == .open else { return false }
            work.desired = desired
            if work.desiredWaiters.count >= Self.waitersMax { early = work.desiredWaiters.removeFirst() }
            work.desiredWaiters.append(waiter)
            pthread_cond_signal(condition)
            return true
        }
        early?.resume()
        return accepted
    }

    /// Queues a reset of `name`; false when the agent does not run or too many are queued.
    func post(reset name: String) -> Bool {
        locked {
            guard openness == .open, work.resets.count < Self.resetsMax else { return false }
            work.resets.insert(name)
            pthread_cond_signal(condition)
            return true
        }
    }

    /// Asks the thread to stop everything; `waiter` resumes when it has (or at once when the
    /// agent does not run).
    func post(stopWaiter waiter: CheckedContinuation<Void, Never>) {
        let accepted: Bool = locked {
            guard openness != .closed else { return false }
            precondition(stopWaiters.count < Self.waitersMax, "more than \(Self.waitersMax) concurrent Agent.stop() calls")
            stopWaiters.append(waiter)
            if openness == .open && !stopSeen { work.stopRequested = true }
            pthread_cond_signal(condition)
            return true
        }
        if !accepted { waiter.resume() }
    }

    /// Sleeps until `deadline` (nil: until a request) or a request; returns the requests.
    func take(until deadline: ContinuousClock.Instant?) -> Work {
        locked {
            while !hasWork {
                if let deadline {
                    let remaining = deadline - ContinuousClock.now
                    if remaining <= .zero { break }
                    var time = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &time)
                    let nanoseconds = Int64(time.tv_nsec) + remaining.components.attoseconds / 1_000_000_000
                    time.tv_sec += Int(remaining.components.seconds) + Int(nanoseconds / 1_000_000_000)
                    time.tv_nsec = Int(nanoseconds % 1_000_000_000)
                    _ = pthread_cond_timedwait(condition, mutex, &time)
                } else {
                    pthread_cond_wait(condition, mutex)
                }
            }
            let taken = work
            if work.stopRequested { stopSeen = true }
            work = Work()
            return taken
        }
    }

    private var hasWork: Bool { work.desired != nil || !work.resets.isEmpty || work.stopRequested }

    /// The thread is ending: no more requests; returns every waiter still pending.
    func close() -> [CheckedContinuation<Void, Never>] {
        locked {
            openness = .closed
            let waiters = work.desiredWaiters + stopWaiters
            work = Work()
            stopWaiters = []
            return waiters
        }
    }
}
