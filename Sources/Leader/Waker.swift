import Synchronization

/// Wakes a sleeping loop early. One pending wake is remembered (a wake while the loop is busy
/// makes its next wait return at once); more collapse into it, so it never queues.
public final class Waker: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

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

    /// Returns after `wake()` or `timeoutMillis`, whichever comes first. One waiter at a time.
    public func wait(timeoutMillis: Int) async {
        let timer = Task {
            guard (try? await Task.sleep(for: .milliseconds(timeoutMillis))) != nil else { return }
            self.wake()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                precondition(s.waiter == nil, "Waker supports one waiter at a time")
                if s.pending {
                    s.pending = false
                    return true
                }
                s.waiter = c
                return false
            }
            if now { c.resume() }
        }
        timer.cancel()
    }
}
