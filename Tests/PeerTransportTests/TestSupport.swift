import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PeerCerts
@testable import PeerTransport
@testable import PeerWire
import Raft

/// Certificates for one test, made by our own library in a fresh temp directory.
struct TestPKI {
    let root: String
    let clusterID = "test-cluster"
    let ca: CertificateAuthority

    init() throws {
        root = NSTemporaryDirectory() + "peer-transport-\(UUID().uuidString)"
        ca = try CertificateAuthority.create(directory: root + "/ca", clusterID: clusterID)
    }

    var caPath: String { ca.certificatePath }

    /// A good peer certificate for `node` (IP SAN 127.0.0.1).
    func peer(_ node: NodeID) throws -> TLSFiles {
        let dir = root + "/ca"
        let certPath = dir + "/" + CertificateFiles.peerCertificate(nodeID: node)
        if !FileManager.default.fileExists(atPath: certPath) {
            _ = try ca.issuePeer(nodeID: node, ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"])
        }
        return TLSFiles(caCertificatePath: caPath, certificatePath: certPath,
                        privateKeyPath: dir + "/" + CertificateFiles.peerPrivateKey(nodeID: node))
    }

    /// A peer certificate in its own directory with a chosen validity (expired ones too).
    func peer(_ node: NodeID, validity: Validity, tag: String) throws -> TLSFiles {
        let out = root + "/" + tag
        let issued = try ca.issuePeer(nodeID: node, ipAddresses: ["127.0.0.1"], validity: validity, outputDirectory: out)
        return TLSFiles(caCertificatePath: caPath, certificatePath: issued.certificatePath, privateKeyPath: issued.privateKeyPath)
    }

    func client(_ name: String) throws -> TLSFiles {
        let issued = try ca.issueClient(name: name, outputDirectory: root + "/clients")
        return TLSFiles(caCertificatePath: caPath, certificatePath: issued.certificatePath, privateKeyPath: issued.privateKeyPath)
    }

    /// A certificate for `node` in `clusterID`'s name but signed by a different CA.
    func peerFromOtherCA(_ node: NodeID, clusterID other: String? = nil) throws -> TLSFiles {
        let otherCA = try CertificateAuthority.create(directory: root + "/other-ca-\(other ?? "same")", clusterID: other ?? clusterID)
        let issued = try otherCA.issuePeer(nodeID: node, ipAddresses: ["127.0.0.1"])
        return TLSFiles(caCertificatePath: otherCA.certificatePath, certificatePath: issued.certificatePath,
                        privateKeyPath: issued.privateKeyPath)
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: root) }
}

/// Collects a stream's elements and lets tests await the first matching one with a bound.
actor Recorder<T: Sendable> {
    private(set) var items: [T] = []
    private var waiters: [Int: (predicate: @Sendable (T) -> Bool, continuation: CheckedContinuation<T?, Never>)] = [:]
    private var nextID = 0

    init() {}

    nonisolated func record(_ stream: AsyncStream<T>) {
        Task { for await item in stream { await self.append(item) } }
    }

    func append(_ item: T) {
        items.append(item)
        for (id, w) in waiters where w.predicate(item) {
            waiters.removeValue(forKey: id)
            w.continuation.resume(returning: item)
        }
    }

    /// The first element (already seen or arriving) matching `predicate`, or nil after `timeout`.
    /// The timeout only bounds a failing test; success never waits for it.
    func first(timeout: Duration = .seconds(30), where predicate: @escaping @Sendable (T) -> Bool) async -> T? {
        if let hit = items.first(where: predicate) { return hit }
        let id = nextID
        nextID += 1
        return await withCheckedContinuation { c in
            waiters[id] = (predicate, c)
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id)
            }
        }
    }

    private func expire(_ id: Int) {
        waiters.removeValue(forKey: id)?.continuation.resume(returning: nil)
    }
}

/// Collects log lines so tests can prove a refusal was logged with its reason.
final class CapturedLogs: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
    func contains(_ needle: String) -> Bool { all.contains { $0.contains(needle) } }
}

struct CapturingLogHandler: LogHandler {
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let merged = self.metadata.merging(metadata ?? [:]) { $1 }
        let meta = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        sink.append("\(level) \(message) \(meta)")
    }
}

/// One running transport plus recorders of what it emits.
struct Node {
    let transport: PeerTransport
    let events = Recorder<TransportEvent>()
    let messages = Recorder<Message>()
    let logs: CapturedLogs
    let id: NodeID

    static func start(_ id: NodeID, security: TransportSecurity, clusterID: String = "test-cluster",
                      tune: (inout TransportConfiguration) -> Void = { _ in }) async throws -> Node {
        var config = TransportConfiguration(
            clusterID: clusterID, nodeID: id, listen: PeerAddress(host: "127.0.0.1", port: 0), security: security)
        let logs = CapturedLogs()
        config.logger = Logger(label: "test.node\(id)") { _ in CapturingLogHandler(sink: logs) }
        config.backoff = Backoff(initialMs: 20, maxMs: 200)
        tune(&config)
        let transport = try PeerTransport(configuration: config)
        let node = Node(transport: transport, logs: logs, id: id)
        node.events.record(transport.events)
        node.messages.record(transport.messages)
        try await transport.start()
        return node
    }

    init(transport: PeerTransport, logs: CapturedLogs, id: NodeID) {
        self.transport = transport
        self.logs = logs
        self.id = id
    }

    var address: PeerAddress { PeerAddress(host: "127.0.0.1", port: transport.listeningPort!) }

    func rejection(_ reason: RejectReason, timeout: Duration = .seconds(30)) async -> ConnectionRejection? {
        let event = await events.first(timeout: timeout) { if case .connectionRejected(let r) = $0 { return r.reason == reason }; return false }
        if case .connectionRejected(let r)? = event { return r }
        return nil
    }

    func connected(to peer: NodeID) async -> Bool {
        await events.first { if case .peerConnected(let p, _) = $0 { return p == peer }; return false } != nil
    }

    func received(where predicate: @escaping @Sendable (Message) -> Bool) async -> Message? {
        await messages.first(where: predicate)
    }
}

/// Runs `/usr/bin/openssl` with arguments, feeding `input` to stdin and keeping stdin open, so
/// the TLS client stays until the server closes. Tracks only the process it started.
final class OpenSSLProcess: @unchecked Sendable {
    let process = Process()
    private let stdin = Pipe()
    private let output = Pipe()
    private let exited = Recorder<Int32>()

    init(_ arguments: [String]) {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardInput = stdin
        process.standardOutput = output
        process.standardError = output
        let exited = self.exited
        process.terminationHandler = { p in
            let status = p.terminationStatus
            Task { await exited.append(status) }
        }
    }

    func run(input: [UInt8] = []) throws {
        try process.run()
        if !input.isEmpty { stdin.fileHandleForWriting.write(Data(input)) }
    }

    /// Waits for exit (bounded); terminates the process if it is still running after the bound.
    @discardableResult
    func finish(timeout: Duration = .seconds(10)) async -> Int32? {
        if let status = await exited.first(timeout: timeout, where: { _ in true }) { return status }
        if process.isRunning { process.terminate() }
        return await exited.first(timeout: .seconds(5), where: { _ in true })
    }

    /// SIGKILL to the one process this object started (by its pid): `s_server` may linger on SIGTERM.
    func terminate() async {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        _ = await exited.first(timeout: .seconds(5), where: { _ in true })
    }

    var outputText: String {
        String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
    }
}

/// The bytes of one frame, for clients that speak the protocol by hand.
func frameBytes(_ frame: WireFrame) -> [UInt8] {
    let body = WireCodec.encode(frame)
    return withUnsafeBytes(of: UInt32(body.count).bigEndian) { Array($0) } + body
}

func sampleAppend(from: NodeID, to: NodeID, entries: Int = 3, bytes: Int = 16) -> Message {
    Message(kind: .append, from: from, to: to, term: 7, logTerm: 6, index: 10,
            entries: (0..<entries).map { Entry(term: 7, index: UInt64(11 + $0), data: Array(repeating: UInt8($0), count: bytes)) },
            commit: 9)
}

/// Runs `body`, then `cleanup` whether or not `body` threw: `defer` cannot await, and a transport
/// that is never shut down leaks its event-loop thread into the next test.
func withCleanup(_ body: () async throws -> Void, cleanup: () async -> Void) async throws {
    do {
        try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
}

/// True if `channel` closes within `timeout`. The bound only limits a failing test; the wait is
/// on the close event, and it does not block (a pending `closeFuture.get()` is not cancellable).
func closes(_ channel: any Channel, within timeout: Duration) async -> Bool {
    let closed = Recorder<Bool>()
    channel.closeFuture.whenComplete { _ in Task { await closed.append(true) } }
    return await closed.first(timeout: timeout) { $0 } != nil
}

/// The nodes one test starts, all shut down when the test ends (see `withNodes`).
final class NodeScope: Sendable {
    private let nodes = NIOLockedValueBox<[Node]>([])

    func start(_ id: NodeID, security: TransportSecurity, clusterID: String = "test-cluster",
               tune: (inout TransportConfiguration) -> Void = { _ in }) async throws -> Node {
        let node = try await Node.start(id, security: security, clusterID: clusterID, tune: tune)
        nodes.withLockedValue { $0.append(node) }
        return node
    }

    /// Shuts down every node started here (`shutdown` is idempotent, so nodes a test already
    /// shut down are fine).
    func shutdownAll() async {
        for node in nodes.withLockedValue({ $0 }) { await node.transport.shutdown() }
    }
}

/// Runs `body` with a `NodeScope` whose nodes are shut down however `body` ends: a failing
/// `try` must not leak transports' event-loop threads into later tests.
func withNodes(_ body: (NodeScope) async throws -> Void) async throws {
    let scope = NodeScope()
    try await withCleanup({ try await body(scope) }, cleanup: { await scope.shutdownAll() })
}
