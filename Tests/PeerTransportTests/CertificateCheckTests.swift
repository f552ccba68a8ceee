import Foundation
import PeerCerts
import Testing

/// `checkPeerPair`/`checkClientPair`: what `peer init` accepts in place of issuing again.
@Suite struct CertificateCheckTests {
    func tempDir() -> String { NSTemporaryDirectory() + "peer-certcheck-\(UUID().uuidString)" }

    @Test func aPairIssuedForThisPeerPasses() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "c-1")
        let issued = try ca.issuePeer(nodeID: 4, ipAddresses: ["10.0.0.4", "::1"], dnsNames: ["p4.example"])
        try checkPeerPair(certificatePath: issued.certificatePath, privateKeyPath: issued.privateKeyPath,
                          caCertificate: ca.certificate, clusterID: "c-1", nodeID: 4,
                          ipAddresses: ["10.0.0.4"], dnsNames: ["p4.example"])
        let client = try ca.issueClient(name: "admin")
        try checkClientPair(certificatePath: client.certificatePath, privateKeyPath: client.privateKeyPath,
                            caCertificate: ca.certificate, clusterID: "c-1", name: "admin")
    }

    @Test func anotherIdentityAddressKeyOrExpiryIsAMismatch() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "c-1")
        let four = try ca.issuePeer(nodeID: 4, ipAddresses: ["10.0.0.4"])
        let five = try ca.issuePeer(nodeID: 5)
        func reason(_ body: () throws -> Void) -> String? {
            do { try body() } catch CertsError.certificateMismatch(_, let reason) { return reason } catch { return "\(error)" }
            return nil
        }
        #expect(reason {
            try checkPeerPair(certificatePath: four.certificatePath, privateKeyPath: four.privateKeyPath,
                              caCertificate: ca.certificate, clusterID: "c-1", nodeID: 5)
        }?.hasPrefix("it does not name URI:peer://c-1/node/5 (it names URI:peer://c-1/node/4, IP:10.0.0.4)") == true)
        #expect(reason {
            try checkPeerPair(certificatePath: four.certificatePath, privateKeyPath: four.privateKeyPath,
                              caCertificate: ca.certificate, clusterID: "c-2", nodeID: 4)
        }?.hasPrefix("it does not name URI:peer://c-2/node/4") == true)
        #expect(reason {
            try checkPeerPair(certificatePath: four.certificatePath, privateKeyPath: four.privateKeyPath,
                              caCertificate: ca.certificate, clusterID: "c-1", nodeID: 4, ipAddresses: ["10.0.0.5"])
        }?.hasPrefix("it does not name IP:10.0.0.5") == true)
        #expect(reason {
            try checkPeerPair(certificatePath: four.certificatePath, privateKeyPath: five.privateKeyPath,
                              caCertificate: ca.certificate, clusterID: "c-1", nodeID: 4)
        } == "its key is not \(five.privateKeyPath)")
        let expired = try ca.issueClient(
            name: "old", validity: Validity(notBefore: Date(timeIntervalSinceNow: -7200), notAfter: Date(timeIntervalSinceNow: -3600)))
        #expect(reason {
            try checkClientPair(certificatePath: expired.certificatePath, privateKeyPath: expired.privateKeyPath,
                                caCertificate: ca.certificate, clusterID: "c-1", name: "old")
        }?.hasPrefix("it expired at ") == true)
    }

    @Test func aCertificateOfAnotherCAIsAMismatch() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let ours = try CertificateAuthority.create(directory: dir + "/ours", clusterID: "c-1")
        let theirs = try CertificateAuthority.create(directory: dir + "/theirs", clusterID: "c-9")
        let foreign = try theirs.issuePeer(nodeID: 1)
        #expect(throws: CertsError.certificateMismatch(
            path: foreign.certificatePath,
            reason: "it is not signed by this cluster's CA: it was issued by \(theirs.certificate.subject), the CA is \(ours.certificate.subject)")) {
            try checkPeerPair(certificatePath: foreign.certificatePath, privateKeyPath: foreign.privateKeyPath,
                              caCertificate: ours.certificate, clusterID: "c-1", nodeID: 1)
        }
    }

    @Test func existingCAIsFoundWithOrWithoutItsKey() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try ExistingCA.find(directory: dir) == nil)
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "c-1")
        let found = try #require(try ExistingCA.find(directory: dir))
        #expect(found.clusterID == "c-1" && found.authority != nil && found.certificate == ca.certificate)
        try FileManager.default.moveItem(atPath: dir + "/ca.key", toPath: dir + "/ca.key.away")
        let certificateOnly = try #require(try ExistingCA.find(directory: dir))
        #expect(certificateOnly.clusterID == "c-1" && certificateOnly.authority == nil)
        try FileManager.default.moveItem(atPath: dir + "/ca.pem", toPath: dir + "/ca.pem.away")
        try FileManager.default.moveItem(atPath: dir + "/ca.key.away", toPath: dir + "/ca.key")
        #expect(throws: CertsError.incompletePair(present: dir + "/ca.key", missing: dir + "/ca.pem")) {
            try ExistingCA.find(directory: dir)
        }
    }
}
