import Foundation
import Logging
import Testing

@testable import Router

/// A real nginx logs with the router's `peer_json` format over syslog to a real listener.
@Suite("StatsListener with a real nginx")
struct StatsNginxEndToEndTests {
    /// The log format exactly as the router renders it (ARCHITECTURE §10).
    static let logFormat = #"log_format peer_json escape=json '{"time":"$msec","tenant":"$peer_tenant","instance":"$peer_instance","component":"$peer_component","status":$status,"request_time":$request_time,"upstream_time":"$upstream_response_time","bytes":$bytes_sent}';"#

    /// Tenants from the X-Tenant-ID header; "down" answers 503, unknown tenants 404 (and log no tenant).
    static func config(prefix: String, httpPort: UInt16, statsPort: UInt16) -> String {
        """
        worker_processes 1;
        pid \(prefix)/nginx.pid;
        error_log \(prefix)/error.log info;
        events { worker_connections 64; }
        http {
            client_body_temp_path \(prefix)/client_body;
            proxy_temp_path \(prefix)/proxy;
            fastcgi_temp_path \(prefix)/fastcgi;
            uwsgi_temp_path \(prefix)/uwsgi;
            scgi_temp_path \(prefix)/scgi;
            map $http_x_tenant_id $peer_tenant { default ""; acme acme; beta beta; down down; }
            map $peer_tenant $peer_instance { default ""; acme i-1; beta i-1; down i-2; }
            map $peer_tenant $peer_component { default ""; ~. web; }
            \(logFormat)
            access_log syslog:server=127.0.0.1:\(statsPort),tag=peer,severity=info peer_json;
            server {
                listen 127.0.0.1:\(httpPort);
                location / {
                    if ($peer_tenant = "") { return 404; }
                    if ($peer_tenant = down) { return 503; }
                    return 200 "ok\\n";
                }
            }
        }

        """
    }

    @Test func countsEveryRequestNginxServedPerTenant() async throws {
        // A 10-minute window: these tests count what arrived, not what expires (the aggregator
        // tests cover expiry); a starved test task must not see its counts leave the window.
        let listener = try StatsListener(configuration: StatsAggregator.Configuration(bucketMs: 10_000, bucketCount: 60), logger: Logger(label: "stats-e2e"))
        try listener.start()
        defer { listener.stop() }
        let directory = try StatsTemporaryDirectory()
        defer { directory.remove() }
        let httpPort = try statsFreeTCPPort()
        let configPath = directory.path + "/nginx.conf"
        try Self.config(prefix: directory.path, httpPort: httpPort, statsPort: listener.port)
            .write(toFile: configPath, atomically: true, encoding: .utf8)

        let nginx = try StatsNginxProcess(prefix: directory.path, config: configPath)
        var stopped = false
        defer { if !stopped { nginx.kill() } }  // only if the test failed before the graceful stop
        let up = try await statsPoll {
            if nginx.hasExited() { return true }
            guard let fd = StatsTinyHTTP.connect(port: httpPort) else { return false }
            close(fd)
            return true
        }
        let nginxOutput = { (try? String(contentsOfFile: directory.path + "/nginx.out", encoding: .utf8)) ?? "" }
        try #require(up && !nginx.hasExited(), "nginx did not come up: \(nginxOutput())")
        // The readiness probe connected without a request: nginx logs nothing for it.

        // 40 requests, bounded: 16 acme, 12 beta, 8 down (503), 4 unknown (404, no tenant).
        let plan = Array(repeating: "acme", count: 16) + Array(repeating: "beta", count: 12)
            + Array(repeating: "down", count: 8) + Array(repeating: "nobody", count: 4)
        var statuses: [String: Set<Int>] = [:]
        for tenant in plan {
            let status = try StatsTinyHTTP.get(port: httpPort, path: "/x", headers: ["X-Tenant-ID": tenant])
            statuses[tenant, default: []].insert(status)
        }
        #expect(statuses == ["acme": [200], "beta": [200], "down": [503], "nobody": [404]])

        let counted = try await statsPoll { listener.snapshot().requests == plan.count }
        let snapshot = listener.snapshot()
        #expect(counted, "sent \(plan.count) requests, the listener counted \(snapshot.requests)")
        #expect(snapshot.invalidDatagramsTotal == 0, "nginx's datagrams all parse: \(snapshot.invalidDatagramsByKind)")
        let byTenant = Dictionary(uniqueKeysWithValues: snapshot.tenants.map { ($0.tenant, $0) })
        #expect(snapshot.tenants.map(\.tenant) == ["acme", "beta", "down"])
        #expect(byTenant["acme"]?.requests == 16 && byTenant["acme"]?.status5xx == 0)
        #expect(byTenant["beta"]?.requests == 12 && byTenant["beta"]?.status5xx == 0)
        #expect(byTenant["down"]?.requests == 8 && byTenant["down"]?.status5xx == 8 && byTenant["down"]?.status5xxShare == 1)
        #expect(snapshot.unattributedRequests == 4)
        let byInstance = Dictionary(uniqueKeysWithValues: snapshot.instances.map { ($0.instance, $0.requests) })
        #expect(byInstance == ["i-1": 28, "i-2": 8])
        #expect((byTenant["acme"]?.bytesPerSecond ?? 0) > 0)

        try await nginx.stop()
        stopped = true
        #expect(nginx.hasExited())
    }
}
