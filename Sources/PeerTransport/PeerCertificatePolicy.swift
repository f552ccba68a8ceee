import Foundation
import PeerCerts
import PeerWire
import Raft
import SwiftASN1
import X509

/// Decides whether a presented certificate chain belongs to a peer we may talk to, and says why
/// not. It replaces BoringSSL's own verification (NIOSSL's custom verification callback) so the
/// reason is precise: "expired" rather than "verify failed".
///
/// Trust model (docs/transport.md §Identity): one cluster CA signs every leaf directly (the CA's
/// path length is 0), so a valid chain is exactly: leaf signed by the CA's key, both within their
/// validity windows, leaf not a CA, leaf's extended key usage allowing the role it plays, and one
/// `peer://<cluster>/node/<id>` URI in the leaf's SAN naming an acceptable peer. During a CA
/// rotation two CAs are trusted; the one whose name and key signed the leaf is its CA.
public struct PeerCertificatePolicy: Sendable {
    /// Who is acceptable at the other end.
    public enum Expectation: Sendable, Hashable {
        /// We accepted the connection: any member in this set (which excludes ourselves).
        case anyOf(Set<NodeID>)
        /// We dialled this peer: it and only it.
        case exactly(NodeID)
    }

    /// The cluster's CAs: one, or two while `peer certs rotate --ca` replaces it (docs/tls.md).
    public var trustedCAs: [Certificate]
    public var clusterID: String

    public init(trustedCAs: [Certificate], clusterID: String) {
        self.trustedCAs = trustedCAs
        self.clusterID = clusterID
    }

    public init(clusterCA: Certificate, clusterID: String) {
        self.init(trustedCAs: [clusterCA], clusterID: clusterID)
    }

    /// The verdict: the verified peer, or the reason to refuse.
    public enum Verdict: Sendable, Hashable {
        case accepted(NodeID)
        case rejected(RejectReason, String)
    }

    /// `chain` is leaf first, as presented. `usage` is what the peer is doing: `.clientAuth` when
    /// it dialled us, `.serverAuth` when we dialled it.
    public func verify(chain: [Certificate], expecting: Expectation, usage: ExtendedKeyUsage.Usage, now: Date) -> Verdict {
        guard let leaf = chain.first else { return .rejected(.noClientCertificate, "no certificate presented") }
        guard let clusterCA = issuingCA(of: leaf, among: trustedCAs) else {
            return .rejected(.certificateNotFromClusterCA, "\(leaf.subject) issued by \(leaf.issuer), not by this cluster's CA")
        }
        if now < leaf.notValidBefore {
            return .rejected(.certificateNotYetValid, "\(leaf.subject) valid from \(leaf.notValidBefore)")
        }
        if now > leaf.notValidAfter {
            return .rejected(.certificateExpired, "\(leaf.subject) expired at \(leaf.notValidAfter)")
        }
        if now > clusterCA.notValidAfter || now < clusterCA.notValidBefore {
            return .rejected(.certificateExpired, "the cluster CA is outside its validity (until \(clusterCA.notValidAfter))")
        }
        if let unfit = unfitness(of: leaf, usage: usage) { return .rejected(.certificateUnfit, unfit) }
        return checkIdentity(of: leaf, expecting: expecting)
    }

    private func unfitness(of leaf: Certificate, usage: ExtendedKeyUsage.Usage) -> String? {
        do {
            if case .isCertificateAuthority = try leaf.extensions.basicConstraints {
                return "\(leaf.subject) is a CA certificate"
            }
            guard let eku = try leaf.extensions.extendedKeyUsage, eku.contains(usage) else {
                return "\(leaf.subject) lacks extended key usage \(usage)"
            }
            // Any critical extension we do not understand must fail closed (RFC 5280 §4.2).
            let understood: Set<ASN1ObjectIdentifier> = [
                .X509ExtensionID.basicConstraints, .X509ExtensionID.keyUsage,
                .X509ExtensionID.extendedKeyUsage, .X509ExtensionID.subjectAlternativeName,
            ]
            for ext in leaf.extensions where ext.critical && !understood.contains(ext.oid) {
                return "\(leaf.subject) has unknown critical extension \(ext.oid)"
            }
        } catch {
            return "\(leaf.subject) has malformed extensions: \(error)"
        }
        return nil
    }

    private func checkIdentity(of leaf: Certificate, expecting: Expectation) -> Verdict {
        let uris: [String]
        do {
            uris = (try leaf.extensions.subjectAlternativeNames ?? SubjectAlternativeNames()).compactMap {
                if case .uniformResourceIdentifier(let u) = $0 { return u }
                return nil
            }
        } catch {
            return .rejected(.certificateHasNoIdentity, "\(leaf.subject) has a malformed SAN: \(error)")
        }
        let identities = uris.compactMap(PeerIdentity.init(uri:))
        guard identities.count == 1, let identity = identities.first else {
            return .rejected(.certificateHasNoIdentity, "\(leaf.subject) names \(identities.count) peer identities in its SAN, not 1")
        }
        guard identity.clusterID == clusterID else {
            return .rejected(.certificateForOtherCluster, "\(identity) is for cluster \(identity.clusterID), we are \(clusterID)")
        }
        guard let node = identity.nodeID else {
            return .rejected(.certificateNotAPeer, "\(identity) is a client certificate, not a peer's")
        }
        switch expecting {
        case .exactly(let want) where node != want:
            return .rejected(.certificateNamesOtherPeer, "dialled peer \(want) but its certificate names \(identity)")
        case .anyOf(let members) where !members.contains(node):
            return .rejected(.unknownPeer, "\(identity) is not a known peer")
        default:
            return .accepted(node)
        }
    }
}

