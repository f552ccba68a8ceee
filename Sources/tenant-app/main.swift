import ArgumentParser
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// `tenant-app`: the demo DreamFace component. Serves only the tenants listed in its
/// tenant file (one id per line, `#` comments), which it re-reads on SIGHUP; finishes requests
/// in flight on SIGTERM, then exits. Every answer carries `X-Served-By: <instance>/<component>`
/// and names the tenant. The tenant is the `X-Tenant-ID` header, else the first label of Host.
@main
struct TenantApp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant-app",
        abstract: "Demo tenant component: serves the tenants of its tenant file (reloaded on SIGHUP).")

    @Option(help: "This instance's id (its peer's id).")
    var instance: String

    @Option(help: "The component name: dfx-dev, dfx-dep, dfc, ...")
    var component: String

    @Option(help: "Listen address.")
    var host: String = "127.0.0.1"

    @Option(help: "Listen port (0: any free port, printed at start).")
    var port: Int = 0

    @Option(name: .customLong("tenant-file"), help: "File listing the tenants to serve, one per line.")
    var tenantFile: String

    func run() async throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port \(port) is not 0...65535") }
        var logger = Logger(label: "tenant-app")
        logger.logLevel = .info
        let tenants = TenantSet()
        try tenants.load(from: tenantFile)
        let servedBy = "\(instance)/\(component)"
        let router = Router()
        router.add(middleware: ServedByMiddleware(servedBy: servedBy))
        // The agent's component contract: 2xx while up; with `X-Tenant-ID: T`, 2xx only once T
        // is in the loaded tenant file (the readiness probe before a tenant moves here).
        router.get("healthz") { request, _ in
            if let tenant = request.headers[HTTPField.Name("X-Tenant-ID")!], !tenants.contains(tenant) {
                return TenantApp.json(["status": "not serving", "tenant": tenant, "servedBy": servedBy], status: .notFound)
            }
            return TenantApp.json(["status": "ok", "servedBy": servedBy, "tenants": "\(tenants.count)"])
        }
        router.get("burn") { request, context in
            try TenantApp.serve(request, tenants: tenants, servedBy: servedBy) { tenant in
                let ms = request.uri.queryParameters.get("ms").flatMap { Int($0) } ?? 0
                guard (0...10_000).contains(ms) else {
                    return TenantApp.json(["error": "ms must be 0...10000", "tenant": tenant], status: .badRequest)
                }
                context.logger.info("burning \(ms) ms for tenant \(tenant)")
                let spent = burnCPU(milliseconds: ms)
                return TenantApp.json(["tenant": tenant, "servedBy": servedBy, "burnedMs": "\(spent)"])
            }
        }
        let any: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            try TenantApp.serve(request, tenants: tenants, servedBy: servedBy) { tenant in
                TenantApp.json(["tenant": tenant, "servedBy": servedBy, "path": request.uri.path])
            }
        }
        router.get("/", use: any)
        router.get("**", use: any)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "tenant-app"),
            onServerRunning: { channel in
                // The one line a supervisor reads to learn the port when it passed 0.
                FileHandle.standardOutput.write(Data("listening on \(host):\(channel.localAddress?.port ?? port)\n".utf8))
            },
            logger: logger
        )
        let hangups = SignalStream(SIGHUP)  // installed before serving: no SIGHUP can kill us
        let reload = Task {
            for await _ in hangups {
                do {
                    try tenants.load(from: tenantFile)
                    logger.info("reloaded \(tenantFile): \(tenants.count) tenant(s)")
                } catch {
                    logger.error("reload of \(tenantFile) failed, keeping the previous tenants: \(error)")
                }
            }
        }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        reload.cancel()
    }

    /// Answers for the request's tenant if it is served here, else a clear 404 (naming it).
    static func serve(_ request: Request, tenants: TenantSet, servedBy: String, _ body: (String) throws -> Response) throws -> Response {
        guard let tenant = tenantOf(request) else {
            return json(["error": "no tenant: send X-Tenant-ID or use <tenant>.<domain> as the host", "servedBy": servedBy], status: .badRequest)
        }
        guard tenants.contains(tenant) else {
            return json(["error": "tenant \(tenant) is not served by \(servedBy)", "tenant": tenant, "servedBy": servedBy], status: .notFound)
        }
        return try body(tenant)
    }

    static func tenantOf(_ request: Request) -> String? {
        if let t = request.headers[HTTPField.Name("X-Tenant-ID")!], !t.isEmpty { return t.lowercased() }
        guard let host = request.head.authority else { return nil }
        let name = host.split(separator: ":").first.map(String.init) ?? host
        let labels = name.split(separator: ".")
        guard labels.count >= 3 else { return nil }  // <tenant>.<domain>.<tld>
        return String(labels[0]).lowercased()
    }

    static func json(_ fields: [String: String], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data()
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Adds `X-Served-By` to every answer, errors included.
struct ServedByMiddleware<Context: RequestContext>: RouterMiddleware {
    let servedBy: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[HTTPField.Name("X-Served-By")!] = servedBy
        return response
    }
}

/// The tenants this component serves; replaced whole on reload.
final class TenantSet: Sendable {
    private let tenants = Mutex<Set<String>>([])
    static let bytesMax = 4 << 20

    var count: Int { tenants.withLock { $0.count } }
    func contains(_ t: String) -> Bool { tenants.withLock { $0.contains(t) } }

    /// Reads the file; on any error the previous set stays.
    func load(from path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read tenant file \(path)")
        }
        guard data.count <= Self.bytesMax else { throw ValidationError("tenant file \(path) is over \(Self.bytesMax) bytes") }
        var set: Set<String> = []
        for (n, raw) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            if line.isEmpty { continue }
            guard line.count <= 63, line.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }) else {
                throw ValidationError("tenant file \(path) line \(n + 1): \(line.prefix(80)) is not a tenant id (a-z, 0-9, '-', at most 63)")
            }
            set.insert(line)
        }
        tenants.withLock { $0 = set }
    }
}

/// Spins the CPU for `milliseconds` of wall time; returns the milliseconds spent.
func burnCPU(milliseconds: Int) -> Int {
    let start = ContinuousClock.now
    let end = start + .milliseconds(milliseconds)
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    while ContinuousClock.now < end {
        for _ in 0..<10_000 { x = x &* 6364136223846793005 &+ 1442695040888963407 }
    }
    if x == 42 { print("") }  // keeps the loop from being optimised away
    let spent = ContinuousClock.now - start
    return Int(spent.components.seconds * 1000 + spent.components.attoseconds / 1_000_000_000_000_000)
}

/// Delivers a signal as an async sequence (Dispatch source; nothing runs in a signal handler).
struct SignalStream: AsyncSequence {
    typealias Element = Int32
    let stream: AsyncStream<Int32>
    let source: any DispatchSourceSignal

    init(_ sig: Int32) {
        signal(sig, SIG_IGN)
        let (stream, cont) = AsyncStream.makeStream(of: Int32.self, bufferingPolicy: .bufferingNewest(1))
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler { cont.yield(sig) }
        source.resume()
        self.stream = stream
        self.source = source
    }

    /// The iterator keeps the Dispatch source alive (a released source is cancelled).
    struct Iterator: AsyncIteratorProtocol {
        var inner: AsyncStream<Int32>.Iterator
        let source: any DispatchSourceSignal
        mutating func next() async -> Int32? { await inner.next() }
    }

    func makeAsyncIterator() -> Iterator { Iterator(inner: stream.makeAsyncIterator(), source: source) }
}
