/// Everything that can go wrong creating, issuing, loading or listing cluster certificates.
/// Each case names the file or value at fault so an operator can act on the message alone.
public enum CertsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `init` refuses to replace a CA: every certificate it signed would stop being trusted.
    case caAlreadyExists(path: String)
    /// Issued files are never overwritten either; remove the old ones first (rotation, docs/tls.md).
    case fileAlreadyExists(path: String)
    case caNotFound(directory: String)
    case invalidClusterID(String)
    case invalidClientName(String)
    case invalidNodeID(UInt64)
    case invalidIPAddress(String)
    case invalidDNSName(String)
    case invalidValidity(String)
    case unreadableFile(path: String, reason: String)
    case unwritableFile(path: String, reason: String)
    case malformedCertificate(path: String, reason: String)
    case malformedPrivateKey(path: String, reason: String)
    /// The CA directory's certificate and key do not belong together.
    case caKeyMismatch(directory: String)
    /// An existing certificate is not the one this cluster would issue there (another cluster's
    /// CA or id, another identity, a missing address, a key of another pair, expired).
    case certificateMismatch(path: String, reason: String)
    /// One file of a certificate/key pair exists without the other.
    case incompletePair(present: String, missing: String)
    /// `peer certs rotate --ca` found a new CA being introduced already (`ca-next.*`).
    case rotationInProgress(directory: String)
    /// The finishing phase of a CA rotation with no rotation to finish.
    case noRotationInProgress(directory: String)
    /// A CA rotation cannot drop the old CA while this certificate is still its.
    case issuedByOldCA(path: String)

    public var description: String {
        switch self {
        case .caAlreadyExists(let p): return "a cluster CA already exists at \(p); refusing to overwrite it"
        case .fileAlreadyExists(let p): return "\(p) already exists; remove it first to re-issue"
        case .caNotFound(let d): return "no cluster CA in \(d) (expected ca.pem and ca.key; run `peer certs init`)"
        case .invalidClusterID(let s):
            return "invalid cluster id \"\(s)\": use 1-\(PeerIdentity.nameCharactersMax) characters from [A-Za-z0-9._-]"
        case .invalidClientName(let s):
            return "invalid client name \"\(s)\": use 1-\(PeerIdentity.nameCharactersMax) characters from [A-Za-z0-9._-]"
        case .invalidNodeID(let id): return "invalid node id \(id): node ids start at 1"
        case .invalidIPAddress(let s): return "invalid IP address \"\(s)\""
        case .invalidDNSName(let s): return "invalid DNS name \"\(s)\""
        case .invalidValidity(let s): return "invalid validity: \(s)"
        case .unreadableFile(let p, let r): return "cannot read \(p): \(r)"
        case .unwritableFile(let p, let r): return "cannot write \(p): \(r)"
        case .malformedCertificate(let p, let r): return "\(p) is not a PEM certificate: \(r)"
        case .malformedPrivateKey(let p, let r): return "\(p) is not a PEM P-256 private key: \(r)"
        case .caKeyMismatch(let d): return "ca.pem and ca.key in \(d) do not belong together"
        case .certificateMismatch(let p, let r): return "\(p) does not fit: \(r)"
        case .rotationInProgress(let d):
            return "a CA rotation is in progress in \(d) (ca-next.pem/ca-next.key exist but do not belong together); restore or remove them"
        case .noRotationInProgress(let d): return "no CA rotation is in progress in \(d) (no ca-next.pem): nothing to finish"
        case .issuedByOldCA(let p): return "\(p) is still issued by the old CA: renew it first (peer certs rotate --phase leaves)"
        case .incompletePair(let present, let missing):
            return "\(present) exists but \(missing) does not; restore it, or move \(present) away to issue a new pair"
        }
    }
}
