import PeerWire
import Raft

/// The protocol versions this build speaks. Raise `max` for a change older peers cannot ignore;
/// raise `min` only once no supported release speaks the old version.
public enum ProtocolVersion {
    public static let min: UInt32 = 1
    public static let max: UInt32 = 1

    /// The highest version both ranges contain, or nil when they do not overlap.
    public static func negotiate(localMin: UInt32, localMax: UInt32, remoteMin: UInt32, remoteMax: UInt32) -> UInt32? {
        let high = Swift.min(localMax, remoteMax)
        return high >= Swift.max(localMin, remoteMin) ? high : nil
    }
}

/// What a connection handler must do next. Handlers perform it; the state machines decide it.
enum HandshakeAction: Equatable {
    case none
    /// Send this frame.
    case send(WireFrame)
    /// The accepting side: answer with this hello; the connection now carries messages from `peer`.
    case answerAndEstablish(Hello, peer: NodeID, version: UInt32)
    /// The dialling side: hello answered; messages may flow to `peer`.
    case establish(peer: NodeID, version: UInt32)
    case deliver(Message)
    /// Refuse: log, report, send a `Reject` frame if `tellRemote`, close.
    case reject(RejectReason, String, tellRemote: Bool)
}

/// The accepting side of one connection: TLS identity, then the dialler's hello, then messages.
///
/// Invariant: a message is delivered only in `.established`, and only if it is from the
/// authenticated peer and addressed to us.
struct InboundHandshake {
    enum State: Equatable {
        case awaitingTLS
        /// `certified` is the peer the certificate named; nil over plaintext (benchmarks only).
        case awaitingHello(certified: NodeID?)
        case established(peer: NodeID, version: UInt32)
        case closed
    }

    private(set) var state: State = .awaitingTLS
    let local: Hello
    /// Peers allowed to dial us (plaintext mode checks the hello's claim against it).
    let members: Set<NodeID>

    init(local: Hello, members: Set<NodeID>) {
        self.local = local
        self.members = members
    }

    /// TLS finished and `PeerCertificatePolicy` accepted `peer` (nil: plaintext transport).
    mutating func transportReady(certified peer: NodeID?) -> HandshakeAction {
        guard state == .awaitingTLS else { return .none }
        state = .awaitingHello(certified: peer)
        return .none
    }

    mutating func frameReceived(_ frame: WireFrame) -> HandshakeAction {
        switch (state, frame) {
        case (.awaitingHello(let certified), .hello(let hello)):
            return helloReceived(hello, certified: certified)
        case (.awaitingHello, .message), (.awaitingTLS, _):
            return close(.expectedHello, "first frame was not a hello")
        case (_, .reject(let reason, let detail)):
            return close(.rejectedByRemote, "\(RemoteText.sanitized(reason)): \(RemoteText.sanitized(detail))", tellRemote: false)
        case (.established(let peer, _), .message(let m)):
            guard m.from == peer, m.to == local.nodeID else {
                return close(.messageMisaddressed, "message \(m.from)->\(m.to) on a connection from \(peer) to \(local.nodeID)")
            }
            return .deliver(m)
        case (.established, .hello):
            return close(.malformedFrame, "second hello")
        case (.closed, _):
            return .none
        }
    }

    /// The hello timeout fired. While TLS is still handshaking nothing can reach the other side
    /// (NIOSSL buffers writes until the handshake completes, so a `Reject` write would never
    /// finish and the close waiting on it would never come): close at once, telling nobody.
    mutating func timedOut() -> HandshakeAction {
        switch state {
        case .awaitingTLS: return close(.helloTimeout, "TLS handshake not done within the hello timeout", tellRemote: false)
        case .awaitingHello: return close(.helloTimeout, "no hello within the hello timeout")
        case .established, .closed: return .none
        }
    }

    /// Any other failure (TLS, framing) ends the connection in this state too.
    mutating func failed(_ reason: RejectReason, _ detail: String, tellRemote: Bool) -> HandshakeAction {
        close(reason, detail, tellRemote: tellRemote)
    }

    var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    private mutating func helloReceived(_ hello: Hello, certified: NodeID?) -> HandshakeAction {
        guard hello.clusterID == local.clusterID else {
            return close(.helloClusterMismatch, "hello names cluster \(hello.clusterID), we are \(local.clusterID)")
        }
        if let certified {
            guard hello.nodeID == certified else {
                return close(.helloNodeMismatch, "hello claims node \(hello.nodeID), certificate names node \(certified)")
            }
        } else if !members.contains(hello.nodeID) {
            return close(.unknownPeer, "hello claims node \(hello.nodeID), not a known peer")
        }
        guard let version = ProtocolVersion.negotiate(
            localMin: local.protocolVersionMin, localMax: local.protocolVersionMax,
            remoteMin: hello.protocolVersionMin, remoteMax: hello.protocolVersionMax)
        else {
            return close(.noCommonProtocolVersion,
                         "peer speaks \(hello.protocolVersionMin)...\(hello.protocolVersionMax), we speak \(local.protocolVersionMin)...\(local.protocolVersionMax)")
        }
        state = .established(peer: hello.nodeID, version: version)
        var answer = local
        answer.protocolVersionChosen = version
        return .answerAndEstablish(answer, peer: hello.nodeID, version: version)
    }

    private mutating func close(_ reason: RejectReason, _ detail: String, tellRemote: Bool = true) -> HandshakeAction {
        guard state != .closed else { return .none }
        state = .closed
        return .reject(reason, detail, tellRemote: tellRemote)
    }
}

/// The dialling side of one connection: TLS identity, our hello, the answer; then we only send.
struct OutboundHandshake {
    enum State: Equatable {
        case awaitingTLS
        case awaitingAnswer
        case established(version: UInt32)
        case closed
    }

    private(set) var state: State = .awaitingTLS
    let local: Hello
    let expectedPeer: NodeID

    init(local: Hello, expectedPeer: NodeID) {
        self.local = local
        self.expectedPeer = expectedPeer
    }

    /// TLS finished and the certificate named `expectedPeer` (or plaintext): say hello.
    mutating func transportReady() -> HandshakeAction {
        guard state == .awaitingTLS else { return .none }
        state = .awaitingAnswer
        return .send(.hello(local))
    }

    mutating func frameReceived(_ frame: WireFrame) -> HandshakeAction {
        switch (state, frame) {
        case (.closed, _):
            return .none
        case (_, .reject(let reason, let detail)):
            return close(.rejectedByRemote, "\(RemoteText.sanitized(reason)): \(RemoteText.sanitized(detail))", tellRemote: false)
        case (.awaitingAnswer, .hello(let h)):
            return answerReceived(h)
        case (.awaitingTLS, _), (.awaitingAnswer, .message):
            return close(.expectedHello, "expected the hello answer")
        case (.established, _):
            // Protocol 1 sends nothing after the answer on a dialled connection.
            return close(.malformedFrame, "unexpected frame on a dialled connection")
        }
    }

    /// The hello timeout fired. As on the accepting side, a `Reject` cannot be written before TLS
    /// is up, so in `.awaitingTLS` the connection closes at once without one.
    mutating func timedOut() -> HandshakeAction {
        switch state {
        case .awaitingTLS: return close(.helloTimeout, "TLS handshake not done within the hello timeout", tellRemote: false)
        case .awaitingAnswer: return close(.helloTimeout, "no hello answer within the hello timeout")
        case .established, .closed: return .none
        }
    }

    mutating func failed(_ reason: RejectReason, _ detail: String, tellRemote: Bool) -> HandshakeAction {
        close(reason, detail, tellRemote: tellRemote)
    }

    private mutating func answerReceived(_ h: Hello) -> HandshakeAction {
        guard h.clusterID == local.clusterID else {
            return close(.helloClusterMismatch, "answer names cluster \(h.clusterID), we are \(local.clusterID)")
        }
        guard h.nodeID == expectedPeer else {
            return close(.helloNodeMismatch, "answer names node \(h.nodeID), we dialled \(expectedPeer)")
        }
        let chosen = h.protocolVersionChosen
        guard chosen >= local.protocolVersionMin, chosen <= local.protocolVersionMax,
              chosen >= h.protocolVersionMin, chosen <= h.protocolVersionMax
        else {
            return close(.noCommonProtocolVersion, "answer chose version \(chosen), we speak \(local.protocolVersionMin)...\(local.protocolVersionMax)")
        }
        state = .established(version: chosen)
        return .establish(peer: expectedPeer, version: chosen)
    }

    private mutating func close(_ reason: RejectReason, _ detail: String, tellRemote: Bool = true) -> HandshakeAction {
        guard state != .closed else { return .none }
        state = .closed
        return .reject(reason, detail, tellRemote: tellRemote)
    }
}
