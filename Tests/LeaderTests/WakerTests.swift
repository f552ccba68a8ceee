@testable import Leader
import Synchronization
import Testing

/// The waker the operation driver sleeps on: a wake ends the wait early, one wake that comes
/// while nobody waits is kept for the next wait, and the clock's timeout ends it otherwise.
@Suite struct WakerTests {
    /// A clock whose sleeps end only when cancelled (the timeout never comes), or at once.
    struct TestClock: LeaderClock {
        let sleepsForever: Bool
        func nowMs() -> Int64 { 0 }
        func sleep(millis: Int) async {
            guard sleepsForever else { return }
            let done = Mutex<CheckedContinuation<Void, Never>?>(nil)
            await withTaskCancellationHandler {
                await withCheckedContinuation { c in
                    let now = done.withLock { d -> Bool in
                        if Task.isCancelled { return true }
                        d = c
                        return false
                    }
                    if now { c.resume() }
                }
            } onCancel: {
                done.withLock { d in defer { d = nil }; return d }?.resume()
            }
        }
    }

    @Test func aWakeBeforeTheWaitIsKeptAndEndsTheNextWaitAtOnce() async {
        let waker = Waker(clock: TestClock(sleepsForever: true))
        waker.wake()
        waker.wake()  // collapses into the first
        await waker.wait(timeoutMillis: 1_000)
        // The pending wake was used up: a second wait needs a wake of its own.
        let second = Task { await waker.wait(timeoutMillis: 1_000) }
        waker.wake()
        await second.value
    }

    @Test func aWakeDuringTheWaitEndsIt() async {
        let waker = Waker(clock: TestClock(sleepsForever: true))
        let waiting = Task { await waker.wait(timeoutMillis: 1_000) }
        waker.wake()
        await waiting.value
    }

    @Test func theClocksTimeoutEndsAWaitNobodyWakes() async {
        let waker = Waker(clock: TestClock(sleepsForever: false))
        await waker.wait(timeoutMillis: 1_000)
        await waker.wait(timeoutMillis: 1_000)
    }
}
