import ClusterModel
import Foundation
import NIOHTTP1
import PeerAPI
import Testing

/// The admin API checks what depends only on the request (id, plan, components) and what the
/// applied state already answers (with the apply's own rules, `ClusterState.preview`) before
/// proposing: a refused write appends nothing to the log (issue 19). The apply stays the final judge.
@Suite struct AdminValidationTests {
    static func admin(_ f: BrokerFixture) throws -> AdminClient {
        // A peer's own certificate is admitted by the admin API (a follower forwards with it).
        try AdminClient(tls: APITLSFiles(caCertificatePath: f.dir + "/ca.pem", certificatePath: f.dir + "/peer-1.pem", privateKeyPath: f.dir + "/peer-1.key"))
    }

    static func create(_ f: BrokerFixture, _ client: AdminClient, _ body: String) async throws -> (Int, String) {
        let a = try await client.request(host: "127.0.0.1", port: f.port, method: .POST, path: "/v1/tenants", body: Array(body.utf8))
        return (a.status, String(decoding: a.body, as: UTF8.self))
    }

    @Test func refusalsThatDependOnlyOnTheRequestAppendNothing() async throws {
        let f = try await BrokerFixture(driver: false)
        let client = try Self.admin(f)
        let before = try await f.fingerprint
        let unknownPlan = try await Self.create(f, client, #"{"id":"acme","plan":"no-such-plan"}"#)
        #expect(unknownPlan.0 == 400 && unknownPlan.1.contains("unknown plan 'no-such-plan'"), "\(unknownPlan)")
        let unknownComponent = try await Self.create(f, client, #"{"id":"acme","plan":"deployment","components":["nope"]}"#)
        #expect(unknownComponent.0 == 400 && unknownComponent.1.contains("component 'nope' is not in plan deployment"), "\(unknownComponent)")
        let otherPlansComponent = try await Self.create(f, client, #"{"id":"acme","plan":"deployment","components":["dfx-dev"]}"#)
        #expect(otherPlansComponent.0 == 400 && otherPlansComponent.1.contains("component 'dfx-dev' is not in plan deployment"), "\(otherPlansComponent)")
        let badId = try await Self.create(f, client, #"{"id":"-acme","plan":"deployment"}"#)
        #expect(badId.0 == 400 && badId.1.contains("DNS label"), "\(badId)")
        #expect(try await f.fingerprint == before, "a refused request appended an entry")
        await f.close()
    }

    @Test func anExistingTenantIsRefusedFromTheAppliedStateButARetryIsADuplicate() async throws {
        let f = try await BrokerFixture(driver: false)
        let client = try Self.admin(f)
        let first = try await Self.create(f, client, #"{"id":"acme","plan":"deployment","clientId":"op-1","sequence":1}"#)
        #expect(first.0 == 201, "\(first)")
        let afterCreate = try await f.fingerprint
        let conflict = try await Self.create(f, client, #"{"id":"acme","plan":"deployment","clientId":"op-2","sequence":1}"#)
        #expect(conflict.0 == 409 && conflict.1.contains("exists"), "\(conflict)")
        #expect(try await f.fingerprint == afterCreate, "a 409 decided from the applied state appended an entry")
        let retry = try await Self.create(f, client, #"{"id":"acme","plan":"deployment","clientId":"op-1","sequence":1}"#)
        #expect(retry.0 == 200 && retry.1.contains("\"duplicate\""), "the same request again is its first outcome: \(retry)")
        await f.close()
    }

    static func call(_ f: BrokerFixture, _ client: AdminClient, _ method: HTTPMethod, _ path: String, _ body: String? = nil) async throws -> (Int, String) {
        let a = try await client.request(host: "127.0.0.1", port: f.port, method: method, path: path, body: body.map { Array($0.utf8) })
        return (a.status, String(decoding: a.body, as: UTF8.self))
    }

    @Test func deletesAndMovesTheAppliedStateRefusesAppendNothing() async throws {
        let f = try await BrokerFixture(driver: false)
        let client = try Self.admin(f)
        #expect(try await Self.create(f, client, #"{"id":"acme","plan":"deployment"}"#).0 == 201)
        let before = try await f.fingerprint
        let unknownDelete = try await Self.call(f, client, .DELETE, "/v1/tenants/nobody")
        #expect(unknownDelete.0 == 404 && unknownDelete.1.contains("nobody"), "\(unknownDelete)")
        let unknownMove = try await Self.call(f, client, .POST, "/v1/tenants/nobody/move", #"{"to":"i-1"}"#)
        #expect(unknownMove.0 == 404, "\(unknownMove)")
        let toNowhere = try await Self.call(f, client, .POST, "/v1/tenants/acme/move", #"{"to":"no-such-instance"}"#)
        #expect(toNowhere.0 == 404 && toNowhere.1.contains("no-such-instance"), "\(toNowhere)")
        // acme's provision is still in progress (no driver runs here): it cannot move yet.
        let notReady = try await Self.call(f, client, .POST, "/v1/tenants/acme/move", #"{"to":"i1"}"#)
        #expect(notReady.0 == 409 && notReady.1.contains("in progress"), "\(notReady)")
        #expect(try await f.fingerprint == before, "a refused delete or move appended an entry")

        // A delete applies; a second one meets the first's operation without a new entry, while
        // the first one's retry is answered by the log as a duplicate.
        #expect(try await Self.call(f, client, .DELETE, "/v1/tenants/acme?clientId=d-1&sequence=1").0 == 200)
        let afterDelete = try await f.fingerprint
        let second = try await Self.call(f, client, .DELETE, "/v1/tenants/acme?clientId=d-2&sequence=1")
        #expect(second.0 == 409, "\(second)")
        #expect(try await f.fingerprint == afterDelete, "the refused second delete appended an entry")
        let retry = try await Self.call(f, client, .DELETE, "/v1/tenants/acme?clientId=d-1&sequence=1")
        #expect(retry.0 == 200 && retry.1.contains("\"duplicate\""), "\(retry)")
        await f.close()
    }
}
