import Foundation
import PeerCerts
import Testing

@Suite struct PeerCertsTests {
    func tempDir() -> String { NSTemporaryDirectory() + "peer-certs-\(UUID().uuidString)" }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func caIsCreatedOnceWithAPrivateKeyReadableByItsOwnerOnly() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "c-1")
        #expect(try mode(dir + "/ca.key") == 0o600)
        #expect(throws: CertsError.caAlreadyExists(path: dir + "/ca.pem")) {
            try CertificateAuthority.create(directory: dir, clusterID: "c-1")
        }
        let loaded = try CertificateAuthority.load(directory: dir)
        #expect(loaded.clusterID == "c-1")
        #expect(loaded.certificate == ca.certificate)
    }

    @Test func leafNeverOutlivesTheCAThatSignsIt() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "c-1", validity: .days(30))
        let issued = try ca.issuePeer(nodeID: 1)  // asks for the 365-day default
        #expect(issued.certificate.notValidAfter <= ca.certificate.notValidAfter)
        #expect(issued.certificate.notValidAfter == ca.certificate.notValidAfter)
    }

    @Test func peerCertificateNamesItsIdentityAddressesAndIsNotReissuedOverTheOldOne() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "c-1")
        let issued = try ca.issuePeer(nodeID: 3, ipAddresses: ["127.0.0.1", "::1"], dnsNames: ["p3.example"])
        #expect(try mode(issued.privateKeyPath) == 0o600)
        let listed = try listCertificates(directory: dir)
        let peer = try #require(listed.first { $0.file == "peer-3.pem" })
        #expect(peer.subjectAlternativeNames == ["URI:peer://c-1/node/3", "DNS:p3.example", "IP:127.0.0.1", "IP:0:0:0:0:0:0:0:1"])
        #expect(!peer.isCertificateAuthority)
        #expect(listed.first { $0.file == "ca.pem" }?.isCertificateAuthority == true)
        #expect(throws: CertsError.fileAlreadyExists(path: dir + "/peer-3.pem")) { try ca.issuePeer(nodeID: 3) }
    }

    @Test func invalidInputsGetSpecificErrors() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: CertsError.invalidClusterID("bad/id")) { try CertificateAuthority.create(directory: dir, clusterID: "bad/id") }
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "c")
        #expect(throws: CertsError.invalidNodeID(0)) { try ca.issuePeer(nodeID: 0) }
        #expect(throws: CertsError.invalidIPAddress("10.0.0.300")) { try ca.issuePeer(nodeID: 1, ipAddresses: ["10.0.0.300"]) }
        #expect(throws: CertsError.invalidDNSName("-x.example")) { try ca.issuePeer(nodeID: 1, dnsNames: ["-x.example"]) }
        #expect(throws: CertsError.invalidClientName("")) { try ca.issueClient(name: "") }
        #expect(throws: CertsError.caNotFound(directory: dir + "/nope")) { try CertificateAuthority.load(directory: dir + "/nope") }
    }

    @Test func expiryIsReportedForPastValidityWindows() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "c")
        let past = Date().addingTimeInterval(-3 * 86_400)
        _ = try ca.issueClient(name: "old", validity: Validity(notBefore: past, notAfter: past.addingTimeInterval(86_400)))
        let old = try #require(try listCertificates(directory: dir).first { $0.file == "client-old.pem" })
        #expect(old.isExpired(at: Date()))
        #expect(old.daysLeft(at: Date()) < 0)
    }

    @Test func identityURIsParseOnlyInTheirOneCanonicalForm() {
        #expect(PeerIdentity(uri: "peer://c/node/3") == PeerIdentity(clusterID: "c", role: .node(3)))
        #expect(PeerIdentity(uri: "peer://c/client/ops") == PeerIdentity(clusterID: "c", role: .client("ops")))
        for bad in ["peer://c/node/0", "peer://c/node/+3", "peer://c/node/03", "peer://c/node/3/x", "https://c/node/3", "peer:///node/3"] {
            #expect(PeerIdentity(uri: bad) == nil, "\(bad)")
        }
    }
}
