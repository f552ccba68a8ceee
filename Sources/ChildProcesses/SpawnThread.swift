import Foundation
import Synchronization

/// One long-lived thread for spawns from async code. The peer's launcher (peer-exec) sets Linux
/// PR_SET_PDEATHSIG, which fires when the *thread* that spawned the child exits; a Swift
/// concurrency or Dispatch worker thread may exit when idle, which would kill a healthy child.
/// This thread lives as long as the process.
public final class SpawnThread: Sendable {
    public static let shared = SpawnThread()
    /// Spawns are rare (start, restart of a dead master); more waiting than this is a bug.
    static let pendingMax = 64

    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let wakeup = DispatchSemaphore(value: 0)

    private init() {
        let thread = Thread { [self] in
            ThreadName.setCurrent("peer-spawn")
            loop()
        }
        thread.start()
    }

    /// Runs `work` on the spawning thread and returns its result.
    public func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
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

/// Linux thread names (what `top -H` and /proc/PID/task/TID/comm show). Foundation's
/// `Thread.name` does not reach the kernel on Linux, and a new thread inherits its creator's
/// name, so a dedicated thread would show as a Dispatch worker.
public enum ThreadName {
    /// Names the calling thread (the kernel keeps the first 15 bytes).
    public static func setCurrent(_ name: String) {
        guard let comm = FileHandle(forWritingAtPath: "/proc/thread-self/comm") else { return }
        defer { try? comm.close() }
        try? comm.write(contentsOf: Array(name.utf8.prefix(15)))
    }
}
