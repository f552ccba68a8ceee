import Logging
import NIOCore
import Synchronization

/// What one HTTPS listener (the admin and broker API) allows a client: how many connections,
/// from one address and in all, and how long each phase of a connection may take. Defaults and
/// bounds are the configuration's (`limits.api` in docs/configuration.md).
public struct ListenerLimits: Sendable, Hashable {
    /// Open connections from clients in all; a new one beyond it is closed at once. The
    /// members' own connections are counted apart (`ConnectionRegistry`).
    public var connectionsMax = 1024
    /// Open connections from one client address (an IPv6 client: its /64); a new one beyond it
    /// is closed at once.
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
///
/// Connections from the cluster's own members' addresses (their forwarded writes, the leader's
/// data-plane polls, which the failure detector counts on) are kept apart: a flood from other
/// addresses cannot take their slots. They have a bound of their own,
/// `memberConnectionsMax(members:)`: two pools of 64 per member plus an operator's CLI.
final class ConnectionRegistry: Sendable {
    struct Counts {
        var open = 0
        var openFromMembers = 0
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
    /// Keys (`key(_:)`) of the members' addresses.
    let memberKeys: Set<String>
    let memberConnectionsMax: Int
    private let counts = Mutex(Counts())

    /// Connections the members may hold to one member's API: each member's admin client and
    /// the leader's poll client keep up to 64 each, and an operator's CLI a few.
    static func memberConnectionsMax(members: Int) -> Int { members * 128 + 64 }

    /// - Parameters:
    ///   - memberHosts: the hosts (IP literals) of the members' addresses; names are ignored.
    ///   - memberCount: how many members there are (several may share a host).
    init(name: String, limits: ListenerLimits, memberHosts: [String] = [], memberCount: Int = 0, logger: Logger) {
        self.name = name
        self.limits = limits
        self.logger = logger
        memberKeys = Set(memberHosts.compactMap { host in (try? SocketAddress(ipAddress: host, port: 0)).map { Self.key($0) } })
        memberConnectionsMax = Self.memberConnectionsMax(members: memberCount)
    }

    /// The host of `host:port` or `[v6]:port`.
    static func host(of address: String) -> String? {
        if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
            return String(address[address.index(after: address.startIndex)..<close])
        }
        guard let colon = address.lastIndex(of: ":") else { return nil }
        return String(address[..<colon])
    }

    /// The address a connection counts against: an IPv4 address (IPv4-mapped IPv6 included), or
    /// an IPv6 /64, which one client usually holds whole.
    static func key(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown" }
        guard case .v6(let v6) = address else { return address.ipAddress ?? "unknown" }
        let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return "\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])"
        }
        let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        return groups.joined(separator: ":") + "::/64"
    }

    /// Takes a slot for a new connection from `address` (a `key`), or says why not.
    func admit(_ address: String) -> String? {
        let refusal: String? = counts.withLock { c in
            if memberKeys.contains(address) {
                if c.openFromMembers >= memberConnectionsMax { return "the members' \(memberConnectionsMax) connections are open" }
                c.openFromMembers += 1
                return nil
            }
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
            if memberKeys.contains(address) {
                c.openFromMembers -= 1
                return
            }
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
        return "\(name): \(summary) (open now: \(c.open), and \(c.openFromMembers) from members; at most one such line per \(Self.logIntervalSeconds) s)"
    }
}
