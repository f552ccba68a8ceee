import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Certificates for years (docs/tls.md §Rotation): the cluster CA replaced and every certificate
/// renewed on a running cluster of `peer` processes with their routers, reloaded in place.
@Suite("Process-level: certificate rotation", .serialized, .sharesMachine)
struct TLSRotationProcessTests {
    /// Holds one mutual-TLS connection to a peer's admin API across the rotation: a request
    /// before (then it writes READY), a second one on the same socket once GO exists. Prints
    /// the two statuses and the SHA-256 of the certificate the server showed at the handshake.
    static let keepAlive = #"""
    import hashlib, json, os, socket, ssl, sys, time
    port, tls_dir, ready, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.create_default_context(cafile=tls_dir + "/ca.pem")
    ctx.check_hostname = False
    ctx.load_cert_chain(tls_dir + "/client-admin.pem", tls_dir + "/client-admin.key")
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
    shown = hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
    def get():
        s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk: return "closed"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk: return "closed"
            body += chunk
        return int(head.split(b" ")[1])
    first = get()
    open(ready, "w").write(str(first))
    deadline = time.monotonic() + 120
    while not os.path.exists(go) and time.monotonic() < deadline: time.sleep(0.05)
    second = get() if os.path.exists(go) else "no go"
    print(json.dumps({"first": first, "second": second, "shown": shown}))
    """#

    func tls(_ c: ProcessCluster, api: String) async throws -> [String: Any] {
        let out = try await c.runProgram("/usr/bin/curl", [
            "-s", "--max-time", "10", "--tlsv1.3", "--cacert", c.dir + "/tls/ca.pem",
            "--cert", c.dir + "/tls/client-admin.pem", "--key", c.dir + "/tls/client-admin.key", "https://\(api)/v1/tls",
        ])
        return try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any], "GET /v1/tls: \(out.stdout) \(out.stderr)")
    }

    static func certificate(_ side: Any?) -> [String: Any] { ((side as? [String: Any])?["certificate"] as? [String: Any]) ?? [:] }
    static func trusted(_ side: Any?) -> [String] { ((side as? [String: Any])?["trusted"] as? [[String: Any]] ?? []).compactMap { $0["sha256"] as? String } }

    @Test("certs rotate --ca: the CA is replaced and every certificate renewed on a running cluster; no peer connection is dialled again, an open admin connection keeps working, NGINX verifies with the new CA, the old client certificate is refused")
    func caRotationInPlace() async throws {
        let c = try ProcessCluster(extraYAML: DataPlaneProcessTests.securedCatalog, dataPlane: true)
        let cfg = c.configPath
        let b = try await BrokerClient(cluster: c)  // init, up, broker credentials
        _ = try await c.waitForStatus("3 members converged") { ProcessCluster.converged($0, members: 3) }
        let apis = c.apiPorts.map { "127.0.0.1:\($0)" }
        // A tenant whose requests NGINX admits only after the peer's API checked the token
        // (over TLS, verified with ca.pem).
        let provisioned = try await b.request(b.apis[0], "PUT", "/v2/service_instances/vault?accepts_incomplete=true",
                                              body: #"{"service_id":"dreamface","plan_id":"secured","organization_guid":"org","space_guid":"space"}"#)
        #expect(provisioned.status == 202, "\(provisioned.body)")
        #expect(try await b.waitForOperation(b.apis[0], "vault", try #require(provisioned.json["operation"] as? String))["state"] as? String == "succeeded")

        let before = try await apis.asyncMap { try await tls(c, api: $0) }
        let oldCA = Set(before.flatMap { Self.trusted($0["api"]) })
        #expect(oldCA.count == 1, "one CA before: \(before)")

        // The old admin pair, kept to show it is refused at the end; a connection opened now.
        let old = c.dir + "/old-admin"
        try FileManager.default.createDirectory(atPath: old, withIntermediateDirectories: true)
        for f in ["client-admin.pem", "client-admin.key", "ca.pem"] { try FileManager.default.copyItem(atPath: "\(c.dir)/tls/\(f)", toPath: "\(old)/\(f)") }
        let (ready, go) = (c.dir + "/keepalive.ready", c.dir + "/keepalive.go")
        let held = try c.spawnProgram("/usr/bin/python3", ["-c", Self.keepAlive, "\(c.apiPorts[0])", c.dir + "/tls", ready, go], out: c.dir + "/keepalive.out")
        try await b.waitFor("the held connection's first answer", seconds: 20) { FileManager.default.fileExists(atPath: ready) }

        let rotated = try await c.run(["certs", "rotate", "--config", cfg, "--ca"], timeoutSeconds: 180)
        #expect(rotated.status == 0, "\(rotated.stdout)\n\(rotated.stderr)")
        for phase in ["trust", "leaves", "finish"] {
            #expect(rotated.stdout.contains("phase \(phase): 3 member(s) reloaded and checked"), "\(rotated.stdout)")
        }

        let after = try await apis.asyncMap { try await tls(c, api: $0) }
        for (i, (was, now)) in zip(before, after).enumerated() {
            for side in ["api", "transport"] {
                let newTrust = Self.trusted(now[side])
                #expect(newTrust.count == 1 && oldCA.isDisjoint(with: newTrust), "member \(i + 1) \(side) trusts \(newTrust)")
                #expect(Self.certificate(now[side])["serial"] as? String != Self.certificate(was[side])["serial"] as? String)
            }
            // The peers' connections were never closed: none was established again.
            #expect(now["peerConnectionsEstablished"] as? Int == was["peerConnectionsEstablished"] as? Int, "member \(i + 1): \(was) -> \(now)")
            #expect(now["routerTrustSHA256"] as? String != was["routerTrustSHA256"] as? String)
        }

        // The connection opened before the rotation still answers, on the same TLS session.
        FileManager.default.createFile(atPath: go, contents: nil)
        #expect(try await c.waitProgram(held, timeoutSeconds: 30) == 0)
        let keptText = (try? String(contentsOfFile: c.dir + "/keepalive.out", encoding: .utf8)) ?? ""
        let kept = try #require(try JSONSerialization.jsonObject(with: Data(keptText.utf8)) as? [String: Any], "\(keptText)")
        #expect(kept["first"] as? Int == 200 && kept["second"] as? Int == 200, "\(kept)")
        #expect(kept["shown"] as? String == Self.certificate(before[0]["api"])["sha256"] as? String, "the held connection is the one from before")

        // The new certificates work everywhere: a write through the CLI, a token check by NGINX
        // (a new binding: its token was never cached), the broker over the new CA.
        try await c.must(["tenants", "create", "after-rotation", "--plan", "deployment", "--config", cfg, "--wait"])
        let bound = try await b.request(b.apis[1], "PUT", "/v2/service_instances/vault/service_bindings/user-2",
                                        body: #"{"service_id":"dreamface","plan_id":"secured","bind_resource":{"app_guid":"app"}}"#)
        #expect(bound.status == 201, "\(bound.body)")
        let token = try #require((bound.json["credentials"] as? [String: Any])?["token"] as? String)
        for r in c.routerPorts {
            try await b.waitFor("router \(r) admits the new token") {
                try await DataPlaneProcessTests.requestWithToken(c, router: r, tenant: "vault", token: token) == 200
            }
        }
        // The old client certificate (from the dropped CA) is refused by every member.
        for api in apis {
            let refused = try await c.runProgram("/usr/bin/curl", [
                "-s", "--max-time", "10", "--tlsv1.3", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", c.dir + "/tls/ca.pem",
                "--cert", old + "/client-admin.pem", "--key", old + "/client-admin.key", "https://\(api)/v1/status",
            ])
            #expect(refused.stdout != "200", "\(api) accepted the old client certificate: \(refused)")
        }
        print("CA rotated on 3 members: \(rotated.stdout.split(separator: "\n").filter { $0.hasPrefix("phase") }.joined(separator: "; "))")
        try await c.must(["down", "--config", cfg])
    }

    @Test("a reload with a key that is not the certificate's is refused and changes nothing; finishing a rotation that never started is refused")
    func badFilesAreRefused() async throws {
        let c = try ProcessCluster()
        let cfg = c.configPath
        try await c.must(["init", "--config", cfg])
        try await c.must(["up", "--config", cfg])
        _ = try await c.waitForStatus("3 members converged") { ProcessCluster.converged($0, members: 3) }
        let api = "127.0.0.1:\(c.apiPorts[0])"
        let before = try await tls(c, api: api)

        let key = c.dir + "/tls/peer-1.key"
        let original = try Data(contentsOf: URL(fileURLWithPath: key))
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.copyItem(atPath: c.dir + "/tls/peer-2.key", toPath: key)
        let reload = try await c.runProgram("/usr/bin/curl", [
            "-s", "--max-time", "10", "--tlsv1.3", "-X", "POST", "-w", "\n%{http_code}", "--cacert", c.dir + "/tls/ca.pem",
            "--cert", c.dir + "/tls/client-admin.pem", "--key", c.dir + "/tls/client-admin.key", "https://\(api)/v1/tls/reload",
        ])
        #expect(reload.stdout.hasSuffix("\n422"), "\(reload.stdout)")
        #expect(reload.stdout.contains("is not the key of") && reload.stdout.contains("nothing changed"), "\(reload.stdout)")
        try FileManager.default.removeItem(atPath: key)
        FileManager.default.createFile(atPath: key, contents: original, attributes: [.posixPermissions: 0o600])
        let after = try await tls(c, api: api)
        #expect(Self.certificate(after["api"])["serial"] as? String == Self.certificate(before["api"])["serial"] as? String)
        #expect(after["loadedAtMs"] as? Int == before["loadedAtMs"] as? Int)
        try await c.must(["tenants", "create", "still-writes", "--plan", "deployment", "--config", cfg])

        let finish = try await c.run(["certs", "rotate", "--config", cfg, "--phase", "finish"])
        #expect(finish.status != 0)
        #expect(finish.stderr.contains("no CA rotation is in progress"), "\(finish.stderr)")
        // Renewal alone (no --ca): every member presents a new certificate from the same CA.
        let renewed = try await c.run(["certs", "rotate", "--config", cfg], timeoutSeconds: 120)
        #expect(renewed.status == 0 && renewed.stdout.contains("phase leaves: 3 member(s) reloaded and checked"), "\(renewed.stdout)\n\(renewed.stderr)")
        let now = try await tls(c, api: api)
        #expect(Self.certificate(now["api"])["serial"] as? String != Self.certificate(before["api"])["serial"] as? String)
        #expect(Self.trusted(now["api"]) == Self.trusted(before["api"]))
        try await c.must(["down", "--config", cfg])
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
