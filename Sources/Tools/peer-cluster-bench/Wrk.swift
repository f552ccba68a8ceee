import Foundation

/// One wrk run's numbers, from the line our Lua `done()` prints.
struct WrkResult: Sendable {
    var requests: Int
    var durationMicros: Int
    var connectErrors: Int
    var readErrors: Int
    var writeErrors: Int
    /// Answers with an HTTP status >= 400.
    var statusErrors: Int
    var timeouts: Int
    var p50Micros: Double
    var p90Micros: Double
    var p99Micros: Double
    var maxMicros: Double
    var meanMicros: Double

    /// Accepted writes per second: answered requests minus error answers, over wrk's duration.
    var writesPerSecond: Double {
        durationMicros > 0 ? Double(requests - statusErrors) / (Double(durationMicros) / 1e6) : 0
    }

    var errors: Int { connectErrors + readErrors + writeErrors + statusErrors + timeouts }
}

enum WrkRun {
    /// Appended to every script: prints one parseable line at the end of the run.
    static let doneFunction = """
        function done(summary, latency, requests)
          local e = summary.errors
          io.write(string.format("BENCH-RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f mean_us=%.0f\\n",
            summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
            latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
        end
        """

    /// Runs `wrk -t T -c C -d Ds --timeout 10s --latency -s script url`, bounded, and parses it.
    static func run(wrk: String, script: String, url: String, connections: Int, threads: Int, seconds: Int, logFile: String) async throws -> WrkResult {
        let args = ["-t", "\(threads)", "-c", "\(connections)", "-d", "\(seconds)s", "--timeout", "10s", "--latency", "-s", script, url]
        let (status, output) = try await Children.shared.run(wrk, args, logFile: logFile, timeoutSeconds: Double(seconds) + 60)
        guard status == .exited(code: 0) else { throw BenchError("wrk \(args.joined(separator: " ")) ended (\(status)):\n\(output.suffix(2000))") }
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("BENCH-RESULT ") }) else {
            throw BenchError("wrk printed no BENCH-RESULT line:\n\(output.suffix(2000))")
        }
        var fields: [String: Double] = [:]
        for pair in line.split(separator: " ").dropFirst() {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2, let v = Double(kv[1]) { fields[String(kv[0])] = v }
        }
        func f(_ k: String) throws -> Double {
            guard let v = fields[k] else { throw BenchError("wrk result lacks \(k): \(line)") }
            return v
        }
        return WrkResult(
            requests: Int(try f("requests")), durationMicros: Int(try f("duration_us")),
            connectErrors: Int(try f("connect")), readErrors: Int(try f("read")), writeErrors: Int(try f("write")),
            statusErrors: Int(try f("status")), timeouts: Int(try f("timeout")),
            p50Micros: try f("p50_us"), p90Micros: try f("p90_us"), p99Micros: try f("p99_us"),
            maxMicros: try f("max_us"), meanMicros: try f("mean_us"))
    }
}
