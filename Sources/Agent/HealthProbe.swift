import LoopbackHTTP
import NIOCore

/// The components' health and tenant probes, over the one loopback HTTP client. A round of
/// probes runs concurrently with one deadline each, so a round takes at most the health
/// timeout however many components hang. Only the status code is used; the whole response is
/// read, so the component never sees a reset.
enum HealthProbe {
    /// A response body longer than this fails the probe (a health answer is a few hundred bytes).
    static let responseBytesMax = 8 * 1024
    /// Probes in one round; the caller plans within it.
    static let probesPerRoundMax = 256

    struct Request: Hashable {
        var port: Int
        var path: String
        /// Sent as `X-Tenant-ID` when set: the component answers 2xx only if it serves it.
        var tenant: String?
    }

    enum Outcome: Hashable {
        case status(Int)
        case failed(String)

        var isSuccess: Bool {
            if case .status(let code) = self { return (200...299).contains(code) }
            return false
        }
    }

    /// Runs `requests` concurrently and blocks the calling thread until every one has its
    /// outcome (at most `timeout`); one outcome per request, in order. Never call it on an
    /// event loop or in the cooperative pool: the agent's own thread calls it.
    static func run(_ requests: [Request], timeout: Duration) -> [Outcome] {
        precondition(requests.count <= probesPerRoundMax, "\(requests.count) probes in one round, max \(probesPerRoundMax)")
        let pending = requests.map { start($0, timeout: timeout) }
        return pending.map { future in
            do {
                return outcome(try future.wait())
            } catch {
                return outcome(error)
            }
        }
    }

    /// One probe, awaited.
    static func probe(_ request: Request, timeout: Duration) async -> Outcome {
        do {
            return outcome(try await start(request, timeout: timeout).get())
        } catch {
            return outcome(error)
        }
    }

    private static func start(_ request: Request, timeout: Duration) -> EventLoopFuture<LoopbackHTTPReply> {
        var headers = [("User-Agent", "peer-agent")]
        if let tenant = request.tenant { headers.append(("X-Tenant-ID", tenant)) }
        return LoopbackHTTPClient.shared.start(
            "127.0.0.1:\(request.port)", path: request.path, headers: headers, timeout: timeout, responseBytesMax: responseBytesMax)
    }

    private static func outcome(_ reply: LoopbackHTTPReply) -> Outcome {
        .status(reply.status)
    }

    private static func outcome(_ error: any Error) -> Outcome {
        switch error as? LoopbackHTTPError {
        case .responseTooLarge?: .failed("response exceeds \(responseBytesMax) bytes")
        case .timedOut(_, let after)?: .failed("no complete response within the health timeout (\(after))")
        case let error?: .failed(error.description)
        case nil: .failed("\(error)")
        }
    }
}
