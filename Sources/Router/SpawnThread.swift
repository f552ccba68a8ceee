import Foundation
import Synchronization

/// One long-lived thread that does every nginx spawn. The peer's launcher sets Linux
/// PR_SET_PDEATHSIG, which fires when the *thread* that spawned the child exits; a Swift
/// concurrency or Dispatch worker thread may exit when idle, which would kill a healthy nginx.
/// This thread lives as long as the process.
final class SpawnThread: Sendable {
    static let shared = SpawnThread()
    /// Spawns are rare (start, restart of a dead master); more waiting than this is a bug.
    static let pendingMax = 64

    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let wakeup = DispatchSemaphore(value: 0)

    private init() {
        let thread = Thread { [self] in loop() }
        thread.name = "peer-router-spawn"
        thread.start()
    }

    /// Runs `work` on the spawning thread and returns its result.
    func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
            jobs.withLock { queue in
                precondition(queue.count < Self.pendingMax, "SpawnThread: \(queue.count) spawns pending")
                queue.append { c.resume(returning: work()) }
            }
            wakeup.signal()
        }
    }

    private func loop() {
        while true {
            wakeup.wait()
            let job = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            job?()
        }
    }
}
