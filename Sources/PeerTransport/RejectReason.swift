import PeerWire
import Raft

/// Why a connection was refused or closed. The raw value is what logs (`reason=`) and the
/// `Reject` frame carry: stable words an operator can grep for (docs/transport.md §Errors).
public enum RejectReason: String, Sendable, Hashable, CaseIterable {
    // TLS layer: the handshake did not complete.
    /// The other side did not speak TLS at all (plaintext, HTTP, garbage).
    case notTLS = "not-tls"
    /// The other side offered only TLS versions older than 1.3.
    case tlsVersionRefused = "tls-version-refused"
    /// The dialling side presented no client certificate.
    case noClientCertificate = "no-client-certificate"
    /// The certificate was not signed by this cluster's CA.
    case certificateNotFromClusterCA = "certificate-not-from-cluster-ca"
    case certificateExpired = "certificate-expired"
    case certificateNotYetValid = "certificate-not-yet-valid"
    /// The certificate is a CA, lacks the needed key usage, or is otherwise unfit for a peer.
    case certificateUnfit = "certificate-unfit"
    /// Any other handshake failure (the detail carries BoringSSL's words).
    case tlsHandshakeFailed = "tls-handshake-failed"

    // Identity: the certificate verified, but names the wrong holder.
    /// No `peer://` identity URI in the SAN (or more than one).
    case certificateHasNoIdentity = "certificate-has-no-identity"
    case certificateForOtherCluster = "certificate-for-other-cluster"
    /// A client (operator/tool) certificate used on the peer port.
    case certificateNotAPeer = "certificate-not-a-peer"
    /// The certificate names a node id that is not a member we know.
    case unknownPeer = "unknown-peer"
    /// The certificate (or the hello) names another peer than the one expected.
    case certificateNamesOtherPeer = "certificate-names-other-peer"

    // Hello and framing.
    case helloClusterMismatch = "hello-cluster-mismatch"
    case helloNodeMismatch = "hello-node-mismatch"
    case noCommonProtocolVersion = "no-common-protocol-version"
    case helloTimeout = "hello-timeout"
    /// A frame other than the expected hello arrived first.
    case expectedHello = "expected-hello"
    case frameTooLarge = "frame-too-large"
    case malformedFrame = "malformed-frame"
    /// A Raft message whose `from`/`to` does not match the authenticated connection.
    case messageMisaddressed = "message-misaddressed"
    /// The other side sent a `Reject` frame.
    case rejectedByRemote = "rejected-by-remote"

    // Limits.
    /// `handshakingConnectionsMax` connections were already in their handshake.
    case tooManyHandshakes = "too-many-handshakes"
    /// The peer opened a connection beyond `inboundConnectionsPerPeerMax`; its oldest was closed.
    case tooManyConnections = "too-many-connections"
}

/// Which way a refused connection was going.
public enum ConnectionDirection: String, Sendable, Hashable {
    /// Someone dialled us.
    case inbound
    /// We dialled a peer.
    case outbound
}

/// A refused or failed connection, as reported in events and logs.
public struct ConnectionRejection: Sendable, Hashable, CustomStringConvertible {
    public var reason: RejectReason
    public var detail: String
    public var direction: ConnectionDirection
    /// The remote address, as NIO describes it.
    public var remote: String
    /// For outbound, the peer we dialled; for inbound, the peer the certificate named, if known.
    public var peer: NodeID?

    public init(reason: RejectReason, detail: String, direction: ConnectionDirection, remote: String, peer: NodeID?) {
        self.reason = reason
        self.detail = detail
        self.direction = direction
        self.remote = remote
        self.peer = peer
    }

    public var description: String {
        "\(direction) connection \(remote)\(peer.map { " peer=\($0)" } ?? "") refused: \(reason.rawValue): \(detail)"
    }
}

/// What the transport tells the layer above (the Raft driver). Delivered on `PeerTransport.events`.
public enum TransportEvent: Sendable, Hashable {
    /// An outbound connection to `peer` completed TLS and hello; messages flow.
    case peerConnected(NodeID, protocolVersion: UInt32)
    /// `peer` could not be reached (connect failed or connection lost): report it to Raft
    /// (`reportUnreachable`) so the leader probes instead of pipelining.
    case peerUnreachable(NodeID, reason: String)
    /// An inbound connection from `peer` completed TLS and hello.
    case inboundEstablished(NodeID, protocolVersion: UInt32)
    /// A connection was refused or closed for a protocol or security reason.
    case connectionRejected(ConnectionRejection)
    /// Messages for `peer` were dropped (queue full or peer unreachable). Counted, not per message.
    case messagesDropped(NodeID, count: Int, reason: DropReason)
}

/// Why `send` dropped a message instead of queueing it.
public enum DropReason: String, Sendable, Hashable {
    case queueFull = "queue-full"
    case peerUnreachable = "peer-unreachable"
    case unknownPeer = "unknown-peer"
    case stopped = "stopped"
    /// Its encoded frame would exceed `frameBytesMax`: the peer would refuse it, so it can never
    /// be delivered. Raft must send fewer entries per append (or smaller snapshot chunks).
    case tooLarge = "too-large"
}
