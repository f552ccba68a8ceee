import Foundation
import PeerCerts
@testable import PeerTransport
import Raft
import Testing
import X509

/// `CARotation`'s three phases on a certificate directory, and what the transport's policy
/// accepts at each (docs/tls.md §Rotation).
@Suite struct CARotationTests {
    func tempDir() -> String { NSTemporaryDirectory() + "peer-rotate-\(UUID().uuidString)" }

    func verdict(_ dir: String, _ leaf: String, expecting id: UInt64) throws -> PeerCertificatePolicy.Verdict {
        let policy = PeerCertificatePolicy(trustedCAs: try loadCertificates(path: dir + "/ca.pem"), clusterID: "c-1")
        return policy.verify(chain: [try loadCertificate(path: dir + "/" + leaf)], expecting: .exactly(NodeID(id)), usage: .serverAuth, now: Date())
    }

    @Test func trustLeavesFinishReplaceTheCAAndEveryPairKeepsItsNames() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let old = try CertificateAuthority.create(directory: dir, clusterID: "c-1")
        let peer = try old.issuePeer(nodeID: 2, ipAddresses: ["10.0.0.2", "::1"], dnsNames: ["localhost"])
        _ = try old.issueClient(name: "admin")
        let oldPeer = try loadCertificate(path: dir + "/peer-2.pem")
        // A copy of the old peer pair: a host whose files were not renewed.
        try FileManager.default.copyItem(atPath: peer.certificatePath, toPath: dir + "/stale-peer-2.pem")

        // Phase 1: both CAs trusted, the new one signs; the old leaf is still accepted.
        let next = try CARotation.trust(directory: dir)
        #expect(next.subject != old.certificate.subject)
        #expect(try loadCertificates(path: dir + "/ca.pem") == [old.certificate, next])
        #expect(try CARotation.state(directory: dir).signer == next)
        #expect(try CARotation.trust(directory: dir) == next, "run again (after a crash), it keeps the same new CA")
        #expect(try loadCertificates(path: dir + "/ca.pem").count == 2)
        #expect(try verdict(dir, "peer-2.pem", expecting: 2) == .accepted(2))
        #expect(throws: CertsError.issuedByOldCA(path: dir + "/client-admin.pem")) { try CARotation.finish(directory: dir) }

        // Phase 2: every pair issued again by the new CA, with the names it had.
        let renewed = try CARotation.renewLeaves(directory: dir)
        #expect(renewed.map(\.file) == ["client-admin.pem", "peer-2.pem"])
        let newPeer = try loadCertificate(path: dir + "/peer-2.pem")
        #expect(newPeer.issuer == next.subject && newPeer.serialNumber != oldPeer.serialNumber)
        #expect(try newPeer.extensions.subjectAlternativeNames == oldPeer.extensions.subjectAlternativeNames)
        #expect(try checkPeerPair(certificatePath: dir + "/peer-2.pem", privateKeyPath: dir + "/peer-2.key", trustedCAs: [next],
                                  clusterID: "c-1", nodeID: 2, ipAddresses: ["10.0.0.2", "::1"], dnsNames: ["localhost"]) == ())
        #expect(try verdict(dir, "peer-2.pem", expecting: 2) == .accepted(2))
        #expect(try verdict(dir, "stale-peer-2.pem", expecting: 2) == .accepted(2), "both CAs are still trusted")
        #expect(try CertificateAuthority.load(directory: dir).certificate == old.certificate, "ca.key is still the old CA's")

        // Phase 3: the old CA is gone; its certificates are refused.
        #expect(try CARotation.finish(directory: dir) == next)
        #expect(try loadCertificates(path: dir + "/ca.pem") == [next])
        #expect(try CertificateAuthority.load(directory: dir).certificate == next)
        #expect(!FileManager.default.fileExists(atPath: dir + "/ca-next.pem") && !FileManager.default.fileExists(atPath: dir + "/ca-next.key"))
        #expect(try verdict(dir, "peer-2.pem", expecting: 2) == .accepted(2))
        guard case .rejected(.certificateNotFromClusterCA, _) = try verdict(dir, "stale-peer-2.pem", expecting: 2) else {
            Issue.record("a certificate of the dropped CA was not refused")
            return
        }
        #expect(throws: CertsError.noRotationInProgress(directory: dir)) { try CARotation.finish(directory: dir) }
        #expect(try listCertificates(directory: dir).filter(\.isCertificateAuthority).count == 1)
    }

    @Test func aFinishThatCrashedAfterMovingTheKeyIsCompletedByRunningItAgain() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try CertificateAuthority.create(directory: dir, clusterID: "c-1")
        let next = try CARotation.trust(directory: dir)
        _ = try CARotation.renewLeaves(directory: dir)
        // What a crash between the key's rename and the removal of ca-next.pem leaves.
        try (try next.serializeAsPEM().pemString + "\n").write(toFile: dir + "/ca.pem", atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: dir + "/ca.key")
        try FileManager.default.moveItem(atPath: dir + "/ca-next.key", toPath: dir + "/ca.key")
        #expect(try CARotation.finish(directory: dir) == next)
        #expect(!FileManager.default.fileExists(atPath: dir + "/ca-next.pem"))
        #expect(try CertificateAuthority.load(directory: dir).certificate == next)
    }

    @Test func aCAWhoseKeyIsLostIsReplacedAllTheSame() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let old = try CertificateAuthority.create(directory: dir, clusterID: "c-1")
        _ = try old.issuePeer(nodeID: 1)
        try FileManager.default.removeItem(atPath: dir + "/ca.key")
        #expect(throws: CertsError.caNotFound(directory: dir)) { try CARotation.renewLeaves(directory: dir) }
        let next = try CARotation.trust(directory: dir)
        #expect(try CARotation.renewLeaves(directory: dir).map(\.file) == ["peer-1.pem"])
        #expect(try CARotation.finish(directory: dir) == next)
        #expect(try CertificateAuthority.load(directory: dir).certificate == next)
    }

    @Test func aBundleWithSomethingElseThanCertificatesIsRefusedNamingTheBlock() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "c-1")
        let key = try String(contentsOfFile: dir + "/ca.key", encoding: .utf8)
        try (try ca.certificatePEM + "\n" + key).write(toFile: dir + "/mixed.pem", atomically: true, encoding: .utf8)
        do {
            _ = try loadCertificates(path: dir + "/mixed.pem")
            Issue.record("a bundle holding a private key was accepted")
        } catch let CertsError.malformedCertificate(path, reason) {
            #expect(path == dir + "/mixed.pem" && reason.contains("block 2") && reason.contains("PRIVATE KEY"), "\(reason)")
        }
        try "".write(toFile: dir + "/empty.pem", atomically: true, encoding: .utf8)
        #expect(throws: CertsError.malformedCertificate(path: dir + "/empty.pem", reason: "it holds no certificate")) {
            try loadCertificates(path: dir + "/empty.pem")
        }
    }
}
