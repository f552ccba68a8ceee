import Synchronization

/// The one executor every simulated task runs on: a FIFO of jobs that the world's thread runs,
/// one at a time, when it chooses. Every leader loop of every simulated peer is started with this
/// executor as its preference (task-group children inherit it), and every continuation the world
/// resumes enqueues here, so the interleaving of all the loops is a function of the seed.
final class SimExecutor: TaskExecutor, @unchecked Sendable {
    private let queue = Mutex<[UnownedJob]>([])

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.withLock { $0.append(job) }
    }

    var isIdle: Bool { queue.withLock { $0.isEmpty } }

    /// Runs the oldest job; false when there is none.
    func runOne() -> Bool {
        guard let job = queue.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { return false }
        job.runSynchronously(on: asUnownedTaskExecutor())
        return true
    }
}
