import Synchronization

/// Wakes a sleeping loop early. One pending wake is remembered (a wake while the loop is busy
/// makes its next wait return at once); more collapse into it, so it never queues.
public final class Waker: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    let clock: any LeaderClock

    public init(clock: any LeaderClock = SystemClock()) {
        self.clock = clock
    }

    public func wake() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns after `wake()` or `timeoutMillis` on the clock, whichever comes first. One
    /// waiter at a time.
    public func wait(timeoutMillis: Int) async {
        let pending = state.withLock { s -> Bool in
            defer { s.pending = false }
            return s.pending
        }
        if pending { return }
        let clock = self.clock
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await clock.sleep(millis: timeoutMillis) }
            group.addTask { await self.woken() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns after `wake()`, or when the task is cancelled (the timeout came first).
    private func woken() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    // Cancelled before the waiter is in place: the handler found nothing to resume.
                    if s.pending || Task.isCancelled {
                        s.pending = false
                        return true
                    }
                    precondition(s.waiter == nil, "Waker supports one waiter at a time")
                    s.waiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }?.resume()
        }
    }
}
