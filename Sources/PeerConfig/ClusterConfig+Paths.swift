// Where each file of the cluster lives. The certificate names are PeerCerts' `CertificateFiles`
// names, spelled again here because this target imports no certificate code; a test
// (`fileNamesMatchPeerCerts`) keeps the two in step.

extension ClusterConfig {
    /// `<dataDir>/<id>`: one peer's own state (its SQLite log). Created 0700 by `peer init`.
    public func dataDirectory(for id: UInt64) -> String {
        FilePath.join(dataDir, String(id))
    }

    /// `<tlsDir>/ca.pem`: the cluster CA certificate every peer trusts.
    public var caCertificatePath: String { FilePath.join(tlsDir, "ca.pem") }
    /// `<tlsDir>/ca.key`: the CA's private key (0600).
    public var caPrivateKeyPath: String { FilePath.join(tlsDir, "ca.key") }

    /// `<tlsDir>/peer-<id>.pem`: the peer's certificate (`peer://<cluster>/node/<id>`).
    public func peerCertificatePath(for id: UInt64) -> String { FilePath.join(tlsDir, "peer-\(id).pem") }
    /// `<tlsDir>/peer-<id>.key`: the peer's private key (0600).
    public func peerPrivateKeyPath(for id: UInt64) -> String { FilePath.join(tlsDir, "peer-\(id).key") }

    /// `<tlsDir>/client-admin.pem`: the CLI's client certificate for the admin API.
    public var adminCertificatePath: String { FilePath.join(tlsDir, "client-\(Self.adminClientName).pem") }
    /// `<tlsDir>/client-admin.key`: its private key (0600).
    public var adminPrivateKeyPath: String { FilePath.join(tlsDir, "client-\(Self.adminClientName).key") }

    /// `<runDir>/peer-<id>.pid`: the pid of a peer started by `peer up`.
    public func pidFilePath(for id: UInt64) -> String { FilePath.join(runDir, "peer-\(id).pid") }
    /// `<runDir>/peer-<id>.log`: the output of a peer started by `peer up`.
    public func logFilePath(for id: UInt64) -> String { FilePath.join(runDir, "peer-\(id).log") }
}

/// Lexical path arithmetic: no file system access, no symlink resolution (a config that names
/// `../data` means the directory beside the config's, whatever links lie on the way).
enum FilePath {
    static func isAbsolute(_ path: String) -> Bool { path.hasPrefix("/") }

    /// `path` if absolute, else `path` under `base` (absolute); normalized either way.
    static func resolve(_ path: String, against base: String) -> String {
        precondition(isAbsolute(base), "paths resolve against an absolute directory, got '\(base)'")
        return normalize(isAbsolute(path) ? path : base + "/" + path)
    }

    /// Removes `.`, empty components and `..` (with the component before it; `..` at the root
    /// stays at the root). Keeps the path absolute.
    static func normalize(_ absolute: String) -> String {
        var parts: [Substring] = []
        for part in absolute.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": _ = parts.popLast()
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// The directory part of an absolute path (`/` for a file at the root).
    static func directory(of path: String) -> String {
        let normalized = normalize(path)
        guard let slash = normalized.lastIndex(of: "/"), slash != normalized.startIndex else { return "/" }
        return String(normalized[..<slash])
    }
}
