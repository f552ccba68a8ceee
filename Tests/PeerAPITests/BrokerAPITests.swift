import ClusterModel
import Foundation
import PeerAPI
import Testing

/// The Open Service Broker API v2.17 against one in-process node behind the real HTTPS server,
/// driven by curl: every status code the spec defines, and that a 4xx changes nothing.
@Suite("Open Service Broker API", .serialized)
struct BrokerAPITests {
    typealias F = BrokerFixture

    @Test("basic auth (401 with WWW-Authenticate), then the version header (400 missing, 412 unsupported); the request identity is echoed on every answer")
    func authAndVersionHeader() async throws {
        let f = try await F()
        let before = try await f.fingerprint
        let ok = try await f.osb("GET", "/v2/catalog", headers: [("X-Broker-API-Request-Identity", "req-1")])
        #expect(ok.status == 200 && ok.header("X-Broker-API-Request-Identity") == "req-1")
        let anonymous = try await f.osb("GET", "/v2/catalog", auth: .some(nil), headers: [("X-Broker-API-Request-Identity", "req-2")])
        #expect(anonymous.status == 401 && anonymous.header("WWW-Authenticate")?.hasPrefix("Basic") == true)
        #expect(anonymous.header("X-Broker-API-Request-Identity") == "req-2")
        #expect(try await f.osb("GET", "/v2/catalog", auth: ("platform", "wrong")).status == 401)
        #expect(try await f.osb("GET", "/v2/catalog", auth: ("someone", f.password)).status == 401)
        let missing = try await f.osb("GET", "/v2/catalog", version: nil)
        #expect(missing.status == 400 && missing.json["error"] as? String == "BadRequest")
        for unsupported in ["2.13", "1.0", "3.0", "2", "two", "2.17.1", ""] {
            #expect(try await f.osb("GET", "/v2/catalog", version: unsupported).status == (unsupported.isEmpty ? 400 : 412), "\(unsupported)")
        }
        for supported in ["2.14", "2.16", "2.17", "2.99"] {
            #expect(try await f.osb("GET", "/v2/catalog", version: supported).status == 200, "\(supported)")
        }
        // The broker's credentials do not open the admin API, nor the admin token the broker.
        #expect(try await f.osb("GET", "/v1/status").status == 401)
        #expect(try await f.fingerprint == before)
        await f.close()
    }

    @Test("the catalog lists the configured services and plans, bindable and retrievable")
    func catalog() async throws {
        let f = try await F()
        let a = try await f.osb("GET", "/v2/catalog")
        #expect(a.status == 200 && a.header("Content-Type") == "application/json")
        let services = try #require(a.json["services"] as? [[String: Any]])
        #expect(services.map { $0["id"] as? String } == ["dreamface", "other-service"])
        let dreamface = services[0]
        #expect(dreamface["bindable"] as? Bool == true && dreamface["instances_retrievable"] as? Bool == true)
        #expect(dreamface["bindings_retrievable"] as? Bool == true && dreamface["plan_updateable"] as? Bool == true)
        let plans = try #require(dreamface["plans"] as? [[String: Any]])
        #expect(plans.map { $0["name"] as? String } == ["development", "deployment"])
        let metadata = plans[0]["metadata"] as? [String: Any]
        #expect(metadata?["components"] as? [String] == ["dfc", "dfx-dev"] && metadata?["capacityUnits"] as? Int == 4)
        await f.close()
    }

    @Test("provision: 422 AsyncRequired without accepts_incomplete; 202 with the operation; identical repeats 202 then 200; different attributes 409; last_operation in progress with Retry-After, then succeeded")
    func provisionLifecycle() async throws {
        let f = try await F(driver: false)
        let before = try await f.fingerprint
        let sync = try await f.osb("PUT", "/v2/service_instances/acme", body: F.provisionBody)
        #expect(sync.status == 422 && sync.json["error"] as? String == "AsyncRequired")
        #expect(try await f.fingerprint == before, "a 422 changes nothing")

        let identity = "test " + Data(#"{"user_id":"u-1"}"#.utf8).base64EncodedString()
        let first = try await f.osb("PUT", "/v2/service_instances/acme?accepts_incomplete=true", body: F.provisionBody,
                                    headers: [("X-Broker-API-Originating-Identity", identity)])
        #expect(first.status == 202, "\(first.body)")
        let operation = try #require(first.json["operation"] as? String)
        #expect(first.json["dashboard_url"] as? String == "https://acme.apps.test")
        #expect(try await f.state { $0.operation(operation)?.originatingIdentity } == identity, "the originating identity is recorded")

        // In progress (no driver yet): an identical PUT answers 202 with the same operation.
        let repeated = try await f.osb("PUT", "/v2/service_instances/acme?accepts_incomplete=true", body: F.provisionBody)
        #expect(repeated.status == 202 && repeated.json["operation"] as? String == operation)
        #expect(try await f.osb("PUT", "/v2/service_instances/acme", body: F.provisionBody).status == 422)
        let polling = try await f.osb("GET", "/v2/service_instances/acme/last_operation?operation=\(operation)&service_id=dreamface&plan_id=dreamface-deployment")
        #expect(polling.status == 200 && polling.json["state"] as? String == "in progress" && polling.header("Retry-After") == "1")
        #expect(try await f.osb("GET", "/v2/service_instances/acme").status == 404, "fetch is 404 while provisioning")
        let other = F.provisionBody.replacingOccurrences(of: "dreamface-deployment", with: "dreamface-development")
        #expect(try await f.osb("PUT", "/v2/service_instances/acme?accepts_incomplete=true", body: other).status == 409)

        // The leader's driver finishes it.
        f.startDriver()
        let done = try await f.waitForOperation("acme", operation)
        #expect(done["state"] as? String == "succeeded")
        #expect(try await f.state { $0.activeInstance(ofTenant: "acme") } != nil)
        let lastWithoutToken = try await f.osb("GET", "/v2/service_instances/acme/last_operation")
        #expect(lastWithoutToken.json["state"] as? String == "succeeded" && lastWithoutToken.header("Retry-After") == nil)
        let again = try await f.osb("PUT", "/v2/service_instances/acme?accepts_incomplete=true", body: F.provisionBody)
        #expect(again.status == 200, "an identical PUT of a provisioned instance is 200")
        #expect(try await f.osb("PUT", "/v2/service_instances/acme", body: F.provisionBody).status == 200, "also without accepts_incomplete")
        let params = F.provisionBody.replacingOccurrences(of: "\"context\"", with: "\"parameters\":{\"a\":1},\"context\"")
        #expect(try await f.osb("PUT", "/v2/service_instances/acme?accepts_incomplete=true", body: params).status == 409)
        let fetched = try await f.osb("GET", "/v2/service_instances/acme")
        #expect(fetched.status == 200 && fetched.json["plan_id"] as? String == F.deployment && fetched.json["service_id"] as? String == F.service)
        await f.close()
    }

    @Test("concurrent identical PUTs all get the one operation; concurrent conflicting PUTs: one wins, the others 409")
    func concurrentPuts() async throws {
        let f = try await F(driver: false)
        let answers = try await withThrowingTaskGroup(of: CurlAnswer.self) { group in
            for _ in 0..<8 {
                group.addTask { try await f.osb("PUT", "/v2/service_instances/twin?accepts_incomplete=true", body: F.provisionBody) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.allSatisfy { $0.status == 202 }, "\(answers.map(\.status))")
        #expect(Set(answers.compactMap { $0.json["operation"] as? String }).count == 1, "one operation for all of them")
        #expect(try await f.state { s in s.allTenants.filter { $0.id == "twin" }.count } == 1)

        let bodies = (0..<6).map { F.provisionBody.replacingOccurrences(of: "org-1", with: "org-\($0)") }
        let raced = try await withThrowingTaskGroup(of: CurlAnswer.self) { group in
            for body in bodies {
                group.addTask { try await f.osb("PUT", "/v2/service_instances/race?accepts_incomplete=true", body: body) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(raced.filter { $0.status == 202 }.count == 1, "\(raced.map(\.status))")
        #expect(raced.filter { $0.status == 409 }.count == 5, "\(raced.map(\.status))")
        await f.close()
    }

    @Test("bind: 201 with a 256-bit token whose hash alone is replicated; the token check answers 204/403/401 on the applied state; identical repeat 200 without the token; different 409; unbind revokes, then 410")
    func bindAndUnbind() async throws {
        let f = try await F()
        let p = try await f.osb("PUT", "/v2/service_instances/shop?accepts_incomplete=true", body: F.provisionBody)
        _ = try await f.waitForOperation("shop", try #require(p.json["operation"] as? String))
        let q = try await f.osb("PUT", "/v2/service_instances/blog?accepts_incomplete=true", body: F.provisionBody)
        _ = try await f.waitForOperation("blog", try #require(q.json["operation"] as? String))

        let identity = "test " + Data(#"{"user_id":"u-2"}"#.utf8).base64EncodedString()
        let bound = try await f.osb("PUT", "/v2/service_instances/shop/service_bindings/b-1", body: F.bindBody,
                                    headers: [("X-Broker-API-Originating-Identity", identity)])
        #expect(bound.status == 201, "\(bound.body)")
        let credentials = try #require(bound.json["credentials"] as? [String: Any])
        let token = try #require(credentials["token"] as? String)
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit))
        #expect(credentials["tenant_id"] as? String == "shop" && credentials["tenant_url"] as? String == "https://shop.apps.test")
        let hash = TokenHash.sha256Hex(of: Array(token.utf8))
        #expect(try await f.state { $0.binding("b-1")?.tokenSha256Hex } == hash)
        #expect(try await f.state { $0.binding("b-1")?.originatingIdentity } == identity)
        #expect(try await f.state { !$0.encodeSnapshot().containsSubsequence(Array(token.utf8)) }, "the token is never replicated")

        // The router's check, on the local applied state.
        func check(_ tenant: String, _ bearer: String?) async throws -> Int {
            try await curl(port: f.port, caPath: f.dir + "/ca.pem", method: "GET", path: "/v1/auth/tenant/\(tenant)", headers: [], body: nil, basicAuth: nil, bearer: bearer).status
        }
        #expect(try await check("shop", token) == 204)
        #expect(try await check("blog", token) == 403, "a token of another tenant")
        #expect(try await check("shop", String(repeating: "0", count: 64)) == 401)
        #expect(try await check("shop", nil) == 401)

        let repeated = try await f.osb("PUT", "/v2/service_instances/shop/service_bindings/b-1", body: F.bindBody)
        #expect(repeated.status == 200)
        #expect((repeated.json["credentials"] as? [String: Any])?["token"] == nil, "the token is shown once")
        let different = F.bindBody.replacingOccurrences(of: "app-1", with: "app-2")
        #expect(try await f.osb("PUT", "/v2/service_instances/shop/service_bindings/b-1", body: different).status == 409)
        #expect(try await f.osb("PUT", "/v2/service_instances/blog/service_bindings/b-1", body: F.bindBody).status == 409, "a binding id of another instance")
        let fetched = try await f.osb("GET", "/v2/service_instances/shop/service_bindings/b-1")
        #expect(fetched.status == 200 && (fetched.json["credentials"] as? [String: Any])?["tenant_id"] as? String == "shop")
        #expect(try await f.osb("GET", "/v2/service_instances/blog/service_bindings/b-1").status == 404)
        #expect(try await f.osb("GET", "/v2/service_instances/shop/service_bindings/b-1/last_operation").json["state"] as? String == "succeeded")

        #expect(try await f.osb("DELETE", "/v2/service_instances/shop/service_bindings/b-1?service_id=dreamface").status == 400, "plan_id is required")
        let unbound = try await f.osb("DELETE", "/v2/service_instances/shop/service_bindings/b-1?service_id=dreamface&plan_id=dreamface-deployment")
        #expect(unbound.status == 200 && unbound.body == "{}")
        #expect(try await check("shop", token) == 401, "unbind revokes the token")
        #expect(try await f.osb("DELETE", "/v2/service_instances/shop/service_bindings/b-1?service_id=dreamface&plan_id=dreamface-deployment").status == 410)
        #expect(try await f.osb("DELETE", "/v2/service_instances/shop/service_bindings/b-1").status == 410, "a binding that does not exist is 410 before anything else")
        #expect(try await f.osb("GET", "/v2/service_instances/shop/service_bindings/b-1").status == 404)
        await f.close()
    }

    @Test("update: a plan change within the service is 200; no change 200; another service's plan or an unknown one 400; unknown instance 400; maintenance_info mismatch 422")
    func update() async throws {
        let f = try await F(maintenance: "1.0.0")
        let p = try await f.osb("PUT", "/v2/service_instances/app?accepts_incomplete=true", body: F.provisionBody)
        _ = try await f.waitForOperation("app", try #require(p.json["operation"] as? String))
        let change = #"{"service_id":"dreamface","plan_id":"dreamface-development","previous_values":{"plan_id":"dreamface-deployment"}}"#
        let identity = "test " + Data(#"{"user_id":"u-3"}"#.utf8).base64EncodedString()
        let changed = try await f.osb("PATCH", "/v2/service_instances/app?accepts_incomplete=true", body: change,
                                      headers: [("X-Broker-API-Originating-Identity", identity)])
        #expect(changed.status == 200 && changed.body == "{}", "\(changed.body)")
        #expect(try await f.state { $0.tenant("app")?.components } == ["dfc", "dfx-dev"])
        #expect(try await f.state { $0.lastOperation(ofTenant: "app")?.originatingIdentity } == identity)
        #expect(try await f.osb("GET", "/v2/service_instances/app").json["plan_id"] as? String == F.development)
        #expect(try await f.osb("GET", "/v2/service_instances/app/last_operation").json["state"] as? String == "succeeded")
        let before = try await f.fingerprint
        #expect(try await f.osb("PATCH", "/v2/service_instances/app", body: change).status == 200, "no change: 200, nothing proposed")
        #expect(try await f.osb("PATCH", "/v2/service_instances/app", body: #"{"service_id":"dreamface","plan_id":"other-plan"}"#).status == 400)
        #expect(try await f.osb("PATCH", "/v2/service_instances/app", body: #"{"service_id":"dreamface","plan_id":"nope"}"#).status == 400)
        #expect(try await f.osb("PATCH", "/v2/service_instances/app", body: #"{"plan_id":"dreamface-deployment"}"#).status == 400, "service_id is required")
        #expect(try await f.osb("PATCH", "/v2/service_instances/ghost", body: change).status == 400)
        let stale = try await f.osb("PATCH", "/v2/service_instances/app", body: #"{"service_id":"dreamface","maintenance_info":{"version":"0.9.0"}}"#)
        #expect(stale.status == 422 && stale.json["error"] as? String == "MaintenanceInfoConflict")
        #expect(try await f.fingerprint == before)
        await f.close()
    }

    @Test("deprovision: 422 without accepts_incomplete; 202; identical repeat 202; last_operation succeeded; then 410; fetch 404; required query parameters 400")
    func deprovision() async throws {
        let f = try await F()
        let p = try await f.osb("PUT", "/v2/service_instances/gone?accepts_incomplete=true", body: F.provisionBody)
        _ = try await f.waitForOperation("gone", try #require(p.json["operation"] as? String))
        _ = try await f.osb("PUT", "/v2/service_instances/gone/service_bindings/b?accepts_incomplete=true", body: F.bindBody)
        let before = try await f.fingerprint
        #expect(try await f.osb("DELETE", "/v2/service_instances/gone?service_id=dreamface&plan_id=dreamface-deployment").status == 422)
        #expect(try await f.osb("DELETE", "/v2/service_instances/gone?accepts_incomplete=true&plan_id=dreamface-deployment").status == 400)
        #expect(try await f.osb("DELETE", "/v2/service_instances/gone?accepts_incomplete=maybe&service_id=dreamface&plan_id=dreamface-deployment").status == 400)
        #expect(try await f.fingerprint == before)
        let path = "/v2/service_instances/gone?accepts_incomplete=true&service_id=dreamface&plan_id=dreamface-deployment"
        let started = try await f.osb("DELETE", path)
        #expect(started.status == 202)
        let operation = try #require(started.json["operation"] as? String)
        let repeated = try await f.osb("DELETE", path)
        #expect((repeated.status == 202 && repeated.json["operation"] as? String == operation) || repeated.status == 410)
        let done = try await f.waitForOperation("gone", operation)
        #expect(done["state"] as? String == "gone", "a finished deprovision polls as 410 Gone")
        #expect(try await f.state { $0.tenant("gone") } == nil)
        #expect(try await f.state { $0.binding("b") } == nil, "its bindings went with it")
        #expect(try await f.osb("DELETE", path).status == 410)
        #expect(try await f.osb("GET", "/v2/service_instances/gone").status == 404)
        #expect(try await f.osb("GET", "/v2/service_instances/gone/last_operation").status == 410, "the operation outlives the tenant: 410, not 404")
        #expect(try await f.osb("DELETE", "/v2/service_instances/never?service_id=dreamface&plan_id=dreamface-deployment").status == 422, "asynchronous-only comes before 410")
        #expect(try await f.osb("GET", "/v2/service_instances/never/last_operation").status == 404)
        await f.close()
    }

    @Test("orphan mitigation: a deprovision during a provision aborts it (failed) and removes the half-created tenant")
    func deprovisionDuringProvision() async throws {
        let f = try await F(driver: false)
        let p = try await f.osb("PUT", "/v2/service_instances/half?accepts_incomplete=true", body: F.provisionBody)
        let provision = try #require(p.json["operation"] as? String)
        let d = try await f.osb("DELETE", "/v2/service_instances/half?accepts_incomplete=true&service_id=dreamface&plan_id=dreamface-deployment")
        #expect(d.status == 202)
        let failed = try await f.osb("GET", "/v2/service_instances/half/last_operation?operation=\(provision)")
        #expect(failed.json["state"] as? String == "failed")
        #expect((failed.json["description"] as? String)?.hasPrefix("aborted") == true)
        #expect(failed.json["instance_usable"] == nil, "instance_usable is only for update and deprovision failures")
        f.startDriver()
        let done = try await f.waitForOperation("half", try #require(d.json["operation"] as? String))
        #expect(done["state"] as? String == "gone")
        #expect(try await f.state { $0.tenant("half") } == nil)
        await f.close()
    }

    @Test("a provision that finds no headroom fails at its timeout; the same PUT starts it again; a DELETE removes the half-created tenant")
    func provisionFailure() async throws {
        let f = try await F(instanceCapacity: 1, provisionTimeoutMs: 300)
        let p = try await f.osb("PUT", "/v2/service_instances/huge?accepts_incomplete=true", body: F.provisionBody)
        let first = try #require(p.json["operation"] as? String)
        let failed = try await f.waitForOperation("huge", first)
        #expect(failed["state"] as? String == "failed")
        #expect((failed["description"] as? String)?.contains("capacity units") == true)
        #expect(try await f.osb("GET", "/v2/service_instances/huge").status == 404)
        #expect(try await f.osb("PUT", "/v2/service_instances/huge/service_bindings/x", body: F.bindBody).status == 422)
        let retry = try await f.osb("PUT", "/v2/service_instances/huge?accepts_incomplete=true", body: F.provisionBody)
        #expect(retry.status == 202 && retry.json["operation"] as? String != first, "a new attempt, a new operation")
        let d = try await f.osb("DELETE", "/v2/service_instances/huge?accepts_incomplete=true&service_id=dreamface&plan_id=dreamface-deployment")
        #expect(d.status == 202)
        #expect(try await f.waitForOperation("huge", try #require(d.json["operation"] as? String))["state"] as? String == "gone")
        await f.close()
    }

    @Test("malformed requests are 400 and change nothing")
    func badRequests() async throws {
        let f = try await F()
        let before = try await f.fingerprint
        let put = "/v2/service_instances/x?accepts_incomplete=true"
        let bodies = [
            "", "not json", "[]", "{}",
            #"{"service_id":"dreamface","plan_id":"dreamface-deployment","organization_guid":"o"}"#,
            #"{"service_id":5,"plan_id":"dreamface-deployment","organization_guid":"o","space_guid":"s"}"#,
            #"{"service_id":"","plan_id":"dreamface-deployment","organization_guid":"o","space_guid":"s"}"#,
            #"{"service_id":"dreamface","plan_id":"other-plan","organization_guid":"o","space_guid":"s"}"#,
            #"{"service_id":"nope","plan_id":"dreamface-deployment","organization_guid":"o","space_guid":"s"}"#,
            #"{"service_id":"dreamface","plan_id":"dreamface-deployment","organization_guid":"o","space_guid":"s","parameters":[1]}"#,
            #"{"service_id":"dreamface","plan_id":"dreamface-deployment","organization_guid":"o","space_guid":"s","context":"x"}"#,
        ]
        for body in bodies {
            let a = try await f.osb("PUT", put, body: body)
            #expect(a.status == 400 && a.json["description"] != nil, "\(body): \(a.status) \(a.body)")
        }
        #expect(try await f.osb("PUT", "/v2/service_instances/x?accepts_incomplete=yes", body: F.provisionBody).status == 400)
        let long = String(repeating: "i", count: 2_000)
        #expect(try await f.osb("PUT", "/v2/service_instances/\(long)?accepts_incomplete=true", body: F.provisionBody).status == 400)
        #expect(try await f.osb("PUT", put, body: F.provisionBody, headers: [("X-Broker-API-Originating-Identity", String(repeating: "a", count: 2_000))]).status == 400)
        #expect(try await f.osb("PUT", "/v2/service_instances/x/service_bindings/b", body: #"{"predecessor_binding_id":"a"}"#).status == 400)
        #expect(try await f.osb("PUT", "/v2/service_instances/nothing/service_bindings/b", body: F.bindBody).status == 400)
        #expect(try await f.osb("GET", "/v2/service_instances/x/last_operation?operation=").status == 400)
        #expect(try await f.fingerprint == before)
        await f.close()
    }

    @Test("an instance id that is not a DNS label (a GUID in capitals, any string) maps to a hashed tenant id")
    func foreignInstanceIds() async throws {
        let f = try await F()
        let id = "A1B2C3D4-Some%20Id"
        let p = try await f.osb("PUT", "/v2/service_instances/\(id)?accepts_incomplete=true", body: F.provisionBody)
        #expect(p.status == 202)
        let done = try await f.waitForOperation(id, try #require(p.json["operation"] as? String))
        #expect(done["state"] as? String == "succeeded")
        let tenants = try await f.state { $0.allTenants.map(\.id) }
        #expect(tenants.count == 1 && tenants[0].hasPrefix("i-") && tenants[0].count == 50)
        #expect(try await f.osb("GET", "/v2/service_instances/\(id)").status == 200)
        await f.close()
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        for i in 0...(count - needle.count) where Array(self[i..<(i + needle.count)]) == needle { return true }
        return false
    }
}
