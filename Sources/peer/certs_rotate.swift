import ArgumentParser
import Foundation
import PeerAPI
import PeerCerts
import PeerConfig
import X509

/// `peer certs rotate --config FILE [--ca] [--phase trust|leaves|finish]`: renews every
/// certificate in the config's `tlsDir`, and with `--ca` replaces the cluster CA, reloading every
/// member in place after each step and checking what it then runs (docs/tls.md §Rotation).
struct CertsRotate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Renew every certificate in the tlsDir (with --ca, replace the CA too) and reload every member in place.",
        discussion: """
            Without --ca: every peer-<id> and client-<name> pair in the tlsDir is issued again with
            the names it had, and every member reloads its files (no restart, no connection closed).
            With --ca, three phases, each checked on every member before the next: trust (a new CA,
            trusted beside the old one), leaves (every pair issued by the new CA), finish (the old
            CA dropped). --phase runs one phase, for hosts whose files are copied in between.
            Every member must answer; a phase whose check fails stops with the member and why.
            """)

    enum Phase: String, ExpressibleByArgument, CaseIterable { case trust, leaves, finish }

    @Option(help: "The cluster configuration file.")
    var config: String

    @Flag(help: "Replace the cluster CA as well: trust, leaves, finish.")
    var ca = false

    @Option(help: "Run one phase of a CA rotation only: trust, leaves or finish.")
    var phase: Phase?

    @Option(help: "Days the renewed peer and client certificates are valid.")
    var days = Validity.leafDaysDefault

    @Option(help: "Days a new CA is valid.")
    var caDays = Validity.caDaysDefault

    func run() async throws {
        let phases: [Phase] = phase.map { [$0] } ?? (ca ? [.trust, .leaves, .finish] : [.leaves])
        let directory = try ClusterContext(configPath: config).config.tlsDir
        for p in phases {
            try await run(p, directory: directory)
        }
    }

    func run(_ p: Phase, directory: String) async throws {
        // Before: every member answers, and is ready for this phase.
        let before = try await Self.reports(configPath: config, reload: false)
        let state = try runReportingCertsError { try CARotation.state(directory: directory) }
        switch p {
        case .trust:
            break
        case .leaves:
            let signer = CertificateInfo(state.signer)
            for r in before where !(r.api.trusted.contains(signer) && (r.transport?.trusted.contains(signer) ?? true)) {
                throw CLIError("member \(r.id) does not trust \(signer.subject), the CA that would sign the new certificates: run the trust phase first (or, for an instance whose files are not in \(directory), install that CA in its ca.pem and reload it)")
            }
        case .finish:
            guard let next = state.next.map(CertificateInfo.init) else {
                throw CLIError(CertsError.noRotationInProgress(directory: directory).description)
            }
            for r in before {
                for (side, info) in [("admin API", Optional(r.api)), ("peer transport", r.transport)] {
                    guard let info, info.certificate.issuer != next.subject else { continue }
                    throw CLIError("member \(r.id)'s \(side) still presents a certificate from \(info.certificate.issuer): dropping that CA would cut it off; renew it first (--phase leaves; an instance whose files are not in \(directory) is replaced: peer instances add, then remove)")
                }
            }
        }

        // The files.
        var renewed: [CARotation.Renewed] = []
        try runReportingCertsError {
            switch p {
            case .trust:
                let next = try CARotation.trust(directory: directory, validity: .days(caDays))
                print("phase trust: new CA \(next.subject) (sha256 \(CertificateInfo(next).sha256.prefix(16))...); ca.pem now trusts both")
            case .leaves:
                renewed = try CARotation.renewLeaves(directory: directory, validity: .days(days))
                print("phase leaves: \(renewed.count) certificate(s) issued again by \(try CARotation.state(directory: directory).signer.subject): \(renewed.map(\.file).joined(separator: ", "))")
            case .finish:
                let next = try CARotation.finish(directory: directory)
                print("phase finish: ca.pem trusts \(next.subject) alone; ca.key is its key")
            }
        }

        // After: every member reloads, and runs what the files now say.
        let after = try await Self.reports(configPath: config, reload: true)
        let trusted = try runReportingCertsError { try loadCertificates(path: CertificateFiles.join(directory, CertificateFiles.caCertificate)) }.map(CertificateInfo.init)
        let bundle = DataPlane.sha256Hex(ofFile: CertificateFiles.join(directory, CertificateFiles.caCertificate))
        let issued = Dictionary(renewed.map { ($0.file, CertificateInfo($0.certificate)) }, uniquingKeysWith: { a, _ in a })
        var problems: [String] = []
        for r in after {
            for (side, info) in [("admin API", Optional(r.api)), ("peer transport", r.transport)] {
                guard let info else { continue }
                if Set(info.trusted) != Set(trusted) {
                    problems.append("member \(r.id)'s \(side) trusts \(info.trusted.map(\.subject)), not what \(directory)/ca.pem holds (its files are elsewhere?)")
                }
                if let want = issued[CertificateFiles.peerCertificate(nodeID: r.id)], info.certificate != want {
                    problems.append("member \(r.id)'s \(side) presents serial \(info.certificate.serial), not the renewed \(want.serial)")
                }
            }
            if let router = r.routerTrustSHA256, router != bundle {
                problems.append("member \(r.id)'s NGINX runs with a CA bundle of sha256 \(router.prefix(16))..., not ca.pem's")
            }
        }
        Self.printReports(after)
        if !problems.isEmpty {
            throw CLIError("phase \(p.rawValue): the files are written but \(problems.count) check(s) failed:\n  " + problems.joined(separator: "\n  "))
        }
        print("phase \(p.rawValue): \(after.count) member(s) reloaded and checked")
    }

    /// Every member's TLS report, asking each (or reloading each, one at a time) with a client
    /// made from the files as they are now. A member that does not answer stops the rotation.
    static func reports(configPath: String, reload: Bool) async throws -> [TLSReport] {
        let context = try ClusterContext(configPath: configPath)
        let members = await context.memberStatuses(consistent: false)
        var reports: [TLSReport] = []
        for (peer, status) in members {
            if case .failure(let e) = status {
                throw CLIError("member \(peer.id) at \(peer.apiAddress) does not answer (\(e)): every member must answer to check its certificates; nothing more was done")
            }
            let answer: HTTPAnswer
            do {
                answer = try await context.client.request(
                    host: peer.apiAddress.host, port: Int(peer.apiAddress.port), method: reload ? .POST : .GET,
                    path: reload ? "/v1/tls/reload" : "/v1/tls", timeoutMillis: 30_000)
            } catch {
                throw CLIError("member \(peer.id) at \(peer.apiAddress): \(error)")
            }
            guard answer.status == 200, let report = try? JSONDecoder().decode(TLSReport.self, from: Data(answer.body)) else {
                throw CLIError("member \(peer.id) at \(peer.apiAddress) \(reload ? "did not reload" : "did not report its TLS"): \(ClusterContext.describe(answer))")
            }
            reports.append(report)
        }
        return reports
    }

    static func printReports(_ reports: [TLSReport]) {
        let iso = ISO8601DateFormatter()
        func cn(_ subject: String) -> String {
            subject.split(separator: ",").first { $0.hasPrefix("CN=") }.map { String($0.dropFirst(3)) } ?? subject
        }
        printTable(
            header: ["ID", "SERIAL", "ISSUER", "NOT AFTER", "TRUSTS", "PEER CONNECTIONS"],
            rows: reports.map { r in
                [String(r.id), String(r.api.certificate.serial.prefix(12)), cn(r.api.certificate.issuer),
                 iso.string(from: Date(timeIntervalSince1970: Double(r.api.certificate.notAfterMs) / 1000)),
                 r.api.trusted.map { cn($0.subject) }.joined(separator: " + "), String(r.peerConnectionsEstablished)]
            })
    }
}
