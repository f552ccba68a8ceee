import Logging
import Synchronization

/// What one HTTPS listener (the admin and broker API) allows a client: how many connections,
/// from one address and in all, and how long each phase of a connection may take. Defaults and
/// bounds are the configuration's (`limits.api` in docs/configuration.md).
public struct ListenerLimits: Sendable, Hashable {
    /// Open connections in all; a new one beyond it is closed at once.
    public var connectionsMax = 1024
    /// Open connections from one client address; a new one beyond it is closed at once. Another
    /// member's admin client pools up to 64 connections to this one, so this stays well above.
    public var connectionsPerAddressMax = 256
    /// From accept to a finished TLS handshake.
    public var handshakeTimeoutMs = 10_000
    /// From a finished handshake or the previous answer to a request's complete head: bounds an
    /// idle keep-alive connection and a head sent slowly alike.
    public var idleTimeoutMs = 60_000
    /// From a request's head to the end of its body.
    public var bodyTimeoutMs = 30_000
    /// Largest request head (request line and headers).
    public var headerBytesMax = 64 * 1024
    /// Largest request body.
    public var bodyBytesMax = 64 * 1024

    public init() {}
}

/// The open connections of one listener, by client address, and the refusals and timeouts
/// since the last log line. Every change is O(1) under one lock; log lines are rate-limited.
final class ConnectionRegistry: Sendable {
    struct Counts {
        var open = 0
        var byAddress: [String: Int] = [:]
        var refusedTotal = 0
        var timedOutTotal = 0
        /// Not yet logged: refusals and timeouts since the last line, by reason.
        var unlogged: [String: Int] = [:]
        var lastLogged: ContinuousClock.Instant?
    }

    /// At most one line per this long, summing what happened in between.
    static let logIntervalSeconds = 10

    let name: String
    let limits: ListenerLimits
    let logger: Logger
    private let counts = Mutex(Counts())

    init(name: String, limits: ListenerLimits, logger: Logger) {
        self.name = name
        self.limits = limits
        self.logger = logger
    }

    /// Takes a slot for a new connection from `address`, or says why not.
    func admit(_ address: String) -> String? {
        let refusal: String? = counts.withLock { c in
            if c.open >= limits.connectionsMax { return "the listener's \(limits.connectionsMax) connections are open" }
            if c.byAddress[address, default: 0] >= limits.connectionsPerAddressMax {
                return "\(limits.connectionsPerAddressMax) connections from \(address) are open"
            }
            c.open += 1
            c.byAddress[address, default: 0] += 1
            return nil
        }
        if let refusal { note(refused: true, "new connection closed: \(refusal)") }
        return refusal
    }

    func release(_ address: String) {
        counts.withLock { c in
            c.open -= 1
            let left = c.byAddress[address, default: 1] - 1
            c.byAddress[address] = left > 0 ? left : nil
        }
    }

    func timedOut(_ phase: String, after ms: Int) {
        note(refused: false, "connection closed: no \(phase) within \(ms) ms")
    }

    var open: Int { counts.withLock { $0.open } }
    var refusedTotal: Int { counts.withLock { $0.refusedTotal } }
    var timedOutTotal: Int { counts.withLock { $0.timedOutTotal } }

    /// Counts the event; logs it, with whatever else happened since the last line, at most once
    /// per `logIntervalSeconds` (what is held back is logged by the next event or `flush`).
    private func note(refused: Bool, _ reason: String) {
        let line: String? = counts.withLock { c in
            if refused { c.refusedTotal += 1 } else { c.timedOutTotal += 1 }
            c.unlogged[reason, default: 0] += 1
            return summary(&c, now: .now)
        }
        if let line { logger.warning("\(line)") }
    }

    /// Logs what was held back, if the interval since the last line has passed. The server
    /// calls it every `logIntervalSeconds`, so a burst's end is reported without a next event.
    func flush() {
        if let line = counts.withLock({ summary(&$0, now: .now) }) { logger.warning("\(line)") }
    }

    private func summary(_ c: inout Counts, now: ContinuousClock.Instant) -> String? {
        guard !c.unlogged.isEmpty else { return nil }
        if let last = c.lastLogged, now - last < .seconds(Self.logIntervalSeconds) { return nil }
        c.lastLogged = now
        let summary = c.unlogged.sorted { $0.key < $1.key }.map { "\($0.value) × \($0.key)" }.joined(separator: "; ")
        c.unlogged = [:]
        return "\(name): \(summary) (open now: \(c.open); at most one such line per \(Self.logIntervalSeconds) s)"
    }
}
