import Glibc
import Logging
import Synchronization

/// Receives the local NGINX's `peer_json` access-log lines over syslog/UDP on 127.0.0.1, parses
/// them and keeps a `StatsAggregator` of the load, for the peer to report to the leader.
///
/// One dedicated thread runs a blocking receive loop (a datagram socket needs no event loop, and
/// the thread keeps parsing off the peer's async executors). The receive timeout
/// (`receiveTimeoutMs`) bounds how long `stop()` waits for it. The aggregator sits behind a
/// `Mutex`; parsing happens outside it, so `snapshot` waits at most for one `add`.
///
/// Bounds: datagrams over `StatsParser.datagramBytesMax` are refused; the kernel queue is the
/// socket's receive buffer (`receiveBufferBytes`, requested `receiveBufferBytesDefault`): when it
/// is full the kernel drops datagrams, and the listener reports how many (`SO_RXQ_OVFL`) as
/// `droppedDatagramsTotal`. Refused datagrams are counted by kind and logged at most once per
/// kind per minute, quoting at most `loggedPayloadBytesMax` bytes of the payload.
///
/// Life cycle: `init` binds, `start()` starts the thread, `stop()` ends it and closes the socket.
/// Call `stop()`: the running thread keeps the listener alive.
public final class StatsListener: Sendable {
    /// Receive buffer requested with SO_RCVBUF, in bytes: about 1,000 datagrams of a ~200-byte
    /// line (each costs ~1 KiB of kernel memory), i.e. a second of a busy router's log if the
    /// thread stalls. Linux doubles the request and caps it at `net.core.rmem_max`.
    public static let receiveBufferBytesDefault = 1 << 20
    /// Longest a blocked receive waits before checking for `stop()`, in milliseconds.
    public static let receiveTimeoutMs = 100
    /// Most payload bytes quoted in a log line about a refused datagram.
    public static let loggedPayloadBytesMax = 200
    /// Most receive errors in a row (other than timeouts) before the loop gives up and logs.
    static let receiveErrorsInARowMax = 100

    /// The UDP port bound on 127.0.0.1 (the one to put in `access_log syslog:server=`).
    public let port: UInt16
    /// The receive buffer the kernel granted, in bytes.
    public let receiveBufferBytes: Int

    private let socket: StatsSocket
    private let logger: Logger
    private let clockMs: @Sendable () -> Int64
    private let stopRequested = Atomic<Bool>(false)
    private let state: Mutex<State>

    private enum Phase {
        case bound
        case running(thread: pthread_t)
        case stopped
    }

    private struct State {
        var phase = Phase.bound
        var aggregator: StatsAggregator
        var logLimiter = StatsInvalidLogLimiter()
        /// Datagrams taken off the socket, valid or not.
        var datagramsReceived = 0
    }

    /// Binds 127.0.0.1:`port` (0: a free port; read `port` afterwards). Does not receive until
    /// `start()`. `clockMs` stamps each record's arrival (default: Unix ms, `wallClockMs`); pass
    /// the same clock's readings to `snapshot(nowMs:)`.
    public init(
        port: UInt16 = 0,
        receiveBufferBytes: Int = StatsListener.receiveBufferBytesDefault,
        configuration: StatsAggregator.Configuration = StatsAggregator.Configuration(),
        logger: Logger,
        clockMs: @escaping @Sendable () -> Int64 = StatsListener.wallClockMs
    ) throws(StatsListenerError) {
        precondition(receiveBufferBytes > 0, "receiveBufferBytes \(receiveBufferBytes) must be > 0")
        socket = try StatsSocket(port: port, receiveBufferBytes: receiveBufferBytes, receiveTimeoutMs: Self.receiveTimeoutMs)
        self.port = socket.port
        self.receiveBufferBytes = socket.receiveBufferBytes
        self.logger = logger
        self.clockMs = clockMs
        state = Mutex(State(aggregator: StatsAggregator(configuration: configuration)))
    }

    deinit {
        // Only reachable when the thread is not running (it retains the listener).
        let neverStopped = state.withLock { if case .bound = $0.phase { true } else { false } }
        if neverStopped { socket.close() }
    }

    /// Starts the receive thread. Call once, before `stop()`.
    public func start() throws(StatsListenerError) {
        try state.withLock { state throws(StatsListenerError) in
            guard case .bound = state.phase else { preconditionFailure("StatsListener.start() called twice or after stop()") }
            var thread = pthread_t()
            let retained = Unmanaged.passRetained(self)
            let code = pthread_create(&thread, nil, { argument in
                let listener = Unmanaged<StatsListener>.fromOpaque(argument!).takeRetainedValue()
                listener.receiveLoop()
                return nil
            }, retained.toOpaque())
            guard code == 0 else {
                retained.release()
                throw .thread(code: code)
            }
            state.phase = .running(thread: thread)
        }
        logger.info("stats listener receiving", metadata: [
            "address": "127.0.0.1:\(port)", "receive_buffer_bytes": "\(receiveBufferBytes)",
        ])
    }

    /// Stops the receive thread (within about `receiveTimeoutMs`), waits for it and closes the
    /// socket. Idempotent; the counts stay readable afterwards.
    public func stop() {
        let previous = state.withLock { state -> Phase in
            defer { state.phase = .stopped }
            return state.phase
        }
        switch previous {
        case .stopped:
            return
        case .bound:
            socket.close()
        case .running(let thread):
            stopRequested.store(true, ordering: .releasing)
            pthread_join(thread, nil)
            socket.close()
        }
    }

    /// The load over the window that ends at `nowMs` (same clock as `clockMs`).
    public func snapshot(nowMs: Int64) -> StatsSnapshot {
        state.withLock { $0.aggregator.snapshot(nowMs: nowMs) }
    }

    /// The load over the window that ends now, by the listener's clock.
    public func snapshot() -> StatsSnapshot {
        snapshot(nowMs: clockMs())
    }

    /// Datagrams taken off the socket since start, valid or not.
    public var datagramsReceived: Int {
        state.withLock { $0.datagramsReceived }
    }

    /// Unix time in milliseconds (CLOCK_REALTIME), the same clock as NGINX's `$msec`.
    @Sendable public static func wallClockMs() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    // MARK: - The receive thread

    private func receiveLoop() {
        // One buffer byte more than the largest accepted datagram is not needed: MSG_TRUNC
        // reports the real length, so the buffer holds exactly what the parser may accept.
        var buffer = [UInt8](repeating: 0, count: StatsParser.datagramBytesMax)
        var control = [UInt8](repeating: 0, count: 64)
        var kernelDrops: UInt32 = 0
        var errorsInARow = 0
        while !stopRequested.load(ordering: .acquiring) {
            switch socket.receive(into: &buffer, control: &control) {
            case .timeout:
                continue
            case .failed(let code):
                if code == EINTR { continue }
                errorsInARow += 1
                logger.error("stats receive failed", metadata: ["error": "\(StatsSocket.errorText(code))"])
                if errorsInARow >= Self.receiveErrorsInARowMax || code == EBADF || code == ENOTSOCK {
                    logger.critical("stats listener gave up after \(errorsInARow) receive errors in a row")
                    return
                }
            case .datagram(let byteCount, let drops):
                errorsInARow = 0
                var newDrops = 0
                if let drops {
                    newDrops = Int(drops &- kernelDrops)  // the kernel's counter is cumulative and wraps
                    kernelDrops = drops
                }
                handle(buffer: buffer, byteCount: byteCount, newDrops: newDrops)
            }
        }
    }

    private func handle(buffer: [UInt8], byteCount: Int, newDrops: Int) {
        let nowMs = clockMs()
        let payload = buffer.prefix(min(byteCount, buffer.count))
        let outcome: Result<StatsRecord, StatsParseError>
        if byteCount > buffer.count {
            outcome = .failure(.tooLarge(byteCount: byteCount))
        } else {
            do throws(StatsParseError) {
                outcome = .success(try StatsParser.parse(datagram: Array(payload)))
            } catch {
                outcome = .failure(error)
            }
        }
        let suppressed: Int? = state.withLock { state in
            state.datagramsReceived += 1
            if newDrops > 0 { state.aggregator.countDropped(newDrops) }
            switch outcome {
            case .success(let record):
                state.aggregator.add(record, nowMs: nowMs)
                return nil
            case .failure(let error):
                state.aggregator.countInvalid(error.kind)
                return state.logLimiter.admit(error.kind, nowMs: nowMs)
            }
        }
        if case .failure(let error) = outcome, let suppressed {
            logger.warning("stats datagram refused", metadata: [
                "kind": "\(error.kind.rawValue)",
                "error": "\(error)",
                "suppressed_since_last": "\(suppressed)",
                "payload": "\(StatsParseError.quoted(payload, limit: Self.loggedPayloadBytesMax))",
            ])
        }
    }
}
