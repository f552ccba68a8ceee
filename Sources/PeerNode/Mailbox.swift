#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node thread's inbox: two bounded lanes (peer messages, client requests) behind one lock,
/// and a wait with a deadline on the MONOTONIC clock, so a wall-clock step (NTP) never stalls
/// ticks. Producers never block: a full lane refuses, and the caller says what that means
/// (Raft messages are dropped and retried by Raft; requests fail "not applied").
final class Mailbox<Message: Sendable, Request: Sendable>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var messages: [Message] = []
    private var requests: [Request] = []
    private let messagesMax: Int
    private let requestsMax: Int
    private var dropped = 0
    private var closed = false

    init(messagesMax: Int, requestsMax: Int) {
        precondition(messagesMax > 0 && requestsMax > 0, "mailbox lanes must have room")
        self.messagesMax = messagesMax
        self.requestsMax = requestsMax
        pthread_mutex_init(&mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        #if canImport(Glibc)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(&cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
    }

    /// Queues a peer message; false (and counted) if the lane is full.
    func post(message: Message) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard !closed && messages.count < messagesMax else {
            dropped += 1
            return false
        }
        messages.append(message)
        if messages.count + requests.count == 1 { pthread_cond_signal(&cond) }
        return true
    }

    /// Queues a request; false if the lane is full or the mailbox is closed. `force` ignores the bound (stop, status:
    /// a handful of control requests must get through an overloaded lane).
    func post(request: Request, force: Bool = false) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard !closed && (force || requests.count < requestsMax) else { return false }
        requests.append(request)
        if messages.count + requests.count == 1 { pthread_cond_signal(&cond) }
        return true
    }

    /// Peer messages refused because the lane was full (or closed).
    var droppedMessages: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return dropped
    }

    /// True once `close` ran: every post is refused.
    var isClosed: Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return closed
    }

    /// Refuses every later post and returns what is still queued (for the owner to fail).
    func close() -> (messages: [Message], requests: [Request]) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        closed = true
        let out = (messages, requests)
        messages = []
        requests = []
        return out
    }

    /// Takes everything queued, waiting until something arrives or `deadlineNanos`
    /// (a `MonotonicTime.nanos()` value) passes.
    func take(waitingUntil deadlineNanos: UInt64) -> (messages: [Message], requests: [Request]) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while messages.isEmpty && requests.isEmpty {
            let now = MonotonicTime.nanos()
            if now >= deadlineNanos { break }
            #if canImport(Glibc)
            var ts = timespec(tv_sec: Int(deadlineNanos / 1_000_000_000), tv_nsec: Int(deadlineNanos % 1_000_000_000))
            _ = pthread_cond_timedwait(&cond, &mutex, &ts)
            #else
            let wait = deadlineNanos - now
            var ts = timespec(tv_sec: Int(wait / 1_000_000_000), tv_nsec: Int(wait % 1_000_000_000))
            _ = pthread_cond_timedwait_relative_np(&cond, &mutex, &ts)
            #endif
        }
        let out = (messages, requests)
        messages = []
        requests = []
        return out
    }
}

/// Nanoseconds on the monotonic clock (the same clock the mailbox waits on).
enum MonotonicTime {
    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
