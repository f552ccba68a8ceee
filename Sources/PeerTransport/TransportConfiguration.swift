import Logging
import PeerWire
import Raft

/// Where a peer listens.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// How connections are secured.
public enum TransportSecurity: Sendable {
    /// Mutual TLS 1.3 with the cluster CA: the only mode for a real cluster.
    case mutualTLS(TLSFiles)
    /// No TLS; the peer's identity is whatever its hello claims. For the benchmark's baseline and
    /// tests only: never configure a cluster with it.
    case insecurePlaintext
}

/// The PEM files one peer needs (as written by `peer certs`).
public struct TLSFiles: Sendable, Hashable {
    public var caCertificatePath: String
    public var certificatePath: String
    public var privateKeyPath: String

    public init(caCertificatePath: String, certificatePath: String, privateKeyPath: String) {
        self.caCertificatePath = caCertificatePath
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
    }
}

/// Everything a `PeerTransport` needs. Limits carry their unit last.
public struct TransportConfiguration: Sendable {
    public var clusterID: String
    public var nodeID: NodeID
    /// Address to accept peers on; port 0 picks a free port (see `PeerTransport.listeningPort`).
    public var listen: PeerAddress
    public var security: TransportSecurity

    /// Largest frame body accepted or sent; a bigger one closes the connection.
    public var frameBytesMax = Framing.frameBytesMaxDefault
    /// Per-peer send queue bounds (drop-newest beyond them, see `SendQueue`).
    public var sendQueueMessagesMax = 4096
    public var sendQueueBytesMax = 64 * 1024 * 1024
    /// Below this many queued bytes, `waitForSendCapacity` returns (snapshot flow control).
    public var sendQueueLowWaterBytes = 8 * 1024 * 1024
    /// Bytes handed to the socket per flush pass before checking writability again.
    public var flushBatchBytesMax = 256 * 1024
    /// Socket write buffer watermarks: above high the channel is unwritable and we stop writing.
    public var writeBufferLowWaterBytes = 256 * 1024
    public var writeBufferHighWaterBytes = 1024 * 1024
    /// Inbound messages buffered for the consumer of `messages`; beyond it new ones are dropped.
    public var incomingMessagesMax = 8192
    /// TCP connect plus TLS plus hello must finish within these.
    public var connectTimeoutMs: Int64 = 3_000
    public var helloTimeoutMs: Int64 = 5_000
    /// After writing a `Reject`, the connection is closed this long later even if the write has
    /// not completed (a peer that does not read must not keep the connection open).
    public var rejectCloseGraceMs: Int64 = 1_000
    /// Accepted connections still in TLS or the hello; beyond it a new connection is closed at
    /// once, so a flood of idle sockets cannot exhaust file descriptors before the hello timeout.
    public var handshakingConnectionsMax = 64
    /// Of those, from one client address (all members of a one-host cluster share 127.0.0.1).
    public var handshakingPerAddressMax = 16
    /// Established inbound connections kept per peer (a peer needs one; a second covers a
    /// redial racing the close of the first). The oldest is closed when a newer one passes it.
    public var inboundConnectionsPerPeerMax = 2
    /// After this long unwritable (TCP back-pressure that never eases), a dialled connection is
    /// closed and the peer reported unreachable.
    public var writeStallMsMax: Int64 = 30_000
    public var backoff = Backoff()
    /// How long sent data may stay unacknowledged, and an idle connection silent to keepalive
    /// probes, before the kernel drops the connection (TCP_USER_TIMEOUT; keepalive probes every
    /// third of it): a partition that drops packets sends no reset, and a connection left to
    /// TCP's retransmission backoff would wait up to minutes after the heal. The link then
    /// dials again. 0 keeps the kernel's defaults. `peer` sets twice the election timeout.
    public var unacknowledgedTimeoutMs: Int64 = 0
    public var protocolVersionMin = ProtocolVersion.min
    public var protocolVersionMax = ProtocolVersion.max
    public var logger = Logger(label: "peer.transport")

    public init(clusterID: String, nodeID: NodeID, listen: PeerAddress, security: TransportSecurity) {
        precondition(nodeID != noNode, "node id 0 is reserved")
        self.clusterID = clusterID
        self.nodeID = nodeID
        self.listen = listen
        self.security = security
    }

    var localHello: Hello {
        Hello(clusterID: clusterID, nodeID: nodeID, protocolVersionMin: protocolVersionMin,
              protocolVersionMax: protocolVersionMax)
    }
}
