import Foundation
import PeerAPI

/// Asks members at once whether they answer (`GET /v1/status`): `peer recover` and `peer
/// snapshot restore --keep-cluster-id` refuse while any does, and a peer about to found its
/// cluster reads the configurations the running ones report (FoundingCheck).
enum MemberProbe {
    struct Answer {
        var id: UInt64
        /// `host:port (state, term N)`, or `host:port (HTTP N)`: where and what it answered.
        var description: String
        /// Its status, when it answered 200 with one.
        var status: MemberStatus?
    }

    /// The configuration file's other peers that answer within `timeoutMillis`, asked with this
    /// peer's own client certificate (FoundingCheck, StaleDataCheck).
    static func others(_ s: RuntimeSettings, timeoutMillis: Int) async throws -> [Answer] {
        let others = s.seeds.filter { $0.id != s.selfID }
        guard !others.isEmpty else { return [] }
        let client: AdminClient
        do {
            client = try AdminClient(tls: APITLSFiles(caCertificatePath: s.caCertificatePath, certificatePath: s.certificatePath, privateKeyPath: s.privateKeyPath))
        } catch {
            throw CLIError("\(error)")
        }
        return await answering(others.map { ($0.id, $0.apiAddress.host, Int($0.apiAddress.port)) }, client: client, timeoutMillis: timeoutMillis)
    }

    /// Every member of `targets` (id, API host, port) that gives any HTTP answer within
    /// `timeoutMillis`, by id.
    static func answering(_ targets: [(UInt64, String, Int)], client: AdminClient, timeoutMillis: Int) async -> [Answer] {
        await withTaskGroup(of: Answer?.self) { group in
            for (id, host, port) in targets {
                group.addTask {
                    guard let answer = try? await client.request(host: host, port: port, method: .GET, path: "/v1/status", timeoutMillis: timeoutMillis) else {
                        return nil
                    }
                    let status = answer.status == 200 ? try? JSONDecoder().decode(MemberStatus.self, from: Data(answer.body)) : nil
                    let what = status.map { " (\($0.state), term \($0.term))" } ?? " (HTTP \(answer.status))"
                    return Answer(id: id, description: "\(host):\(port)" + what, status: status)
                }
            }
            var out: [Answer] = []
            for await answer in group { if let answer { out.append(answer) } }
            return out.sorted { $0.id < $1.id }
        }
    }
}
