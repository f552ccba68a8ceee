// A certificate names who holds it with one URI in its Subject Alternative Names:
//   peer://<cluster-id>/node/<node-id>    a Raft peer (server and client auth)
//   peer://<cluster-id>/client/<name>     an operator or tool (client auth only)
// A URI (rather than a DNS name or CN) keeps the identity apart from the addresses the
// certificate also lists, and carries the cluster id so a certificate from another cluster signed
// by a reused CA is still told apart (docs/transport.md §Identity).

/// The identity a cluster certificate proves: which cluster, and which peer or client.
public struct PeerIdentity: Sendable, Hashable, CustomStringConvertible {
    /// What kind of holder the certificate names.
    public enum Role: Sendable, Hashable {
        /// A Raft peer with this node id (never 0).
        case node(UInt64)
        /// An operator or tool with this name.
        case client(String)
    }

    public static let uriScheme = "peer"
    /// Cluster ids and client names: letters, digits, `-`, `_`, `.`; this long at most.
    public static let nameCharactersMax = 63

    public var clusterID: String
    public var role: Role

    public init(clusterID: String, role: Role) {
        self.clusterID = clusterID
        self.role = role
    }

    /// The SAN URI for this identity.
    public var uri: String {
        switch role {
        case .node(let id): return "\(Self.uriScheme)://\(clusterID)/node/\(id)"
        case .client(let name): return "\(Self.uriScheme)://\(clusterID)/client/\(name)"
        }
    }

    public var description: String { uri }

    /// The node id, if this identity is a Raft peer.
    public var nodeID: UInt64? {
        if case .node(let id) = role { return id }
        return nil
    }

    /// The client name, if this identity is an operator's or a tool's.
    public var clientName: String? {
        if case .client(let name) = role { return name }
        return nil
    }

    /// Parses a SAN URI; nil when it is not a `peer://` identity URI (other URIs are ignored).
    public init?(uri: String) {
        let prefix = "\(Self.uriScheme)://"
        guard uri.hasPrefix(prefix) else { return nil }
        let parts = uri.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, Self.isValidName(String(parts[0])) else { return nil }
        let cluster = String(parts[0])
        switch parts[1] {
        case "node":
            // Digits only: UInt64("+3") would parse, and two spellings of one id must not exist.
            guard parts[2].allSatisfy({ $0.isASCII && $0.isNumber }),
                  let id = UInt64(parts[2]), id != 0, String(id) == parts[2] else { return nil }
            self.init(clusterID: cluster, role: .node(id))
        case "client":
            guard Self.isValidName(String(parts[2])) else { return nil }
            self.init(clusterID: cluster, role: .client(String(parts[2])))
        default:
            return nil
        }
    }

    /// True for a non-empty name of at most `nameCharactersMax` characters from `[A-Za-z0-9._-]`.
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= nameCharactersMax else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x2D || c == 0x2E || c == 0x5F
        }
    }
}
