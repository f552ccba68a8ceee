// Two-process loopback benchmark of PeerTransport: mutual TLS against plain TCP in one run.
// See docs/benchmarks.md §Transport (PeerTransport) for the command and results.
//
//   swift build -c release --product peer-transport-bench
//   .build/release/peer-transport-bench run
//
// The parent is node 1; for each security mode it spawns itself as node 2 (`serve`), which
// counts, echoes, and acknowledges. Only loopback addresses are used; the child writes its port
// to a file, exits on SIGTERM or when its parent is gone, and the parent reaps it.
import ArgumentParser
import ChildProcesses
import Foundation
import Logging
import PeerCerts
import PeerTransport
import Raft

@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer-transport-bench",
        abstract: "Loopback benchmark: PeerTransport over mutual TLS vs plain TCP, two processes.",
        subcommands: [Run.self, Serve.self], defaultSubcommand: Run.self)
}

enum Mode: String, ExpressibleByArgument, CaseIterable {
    case tls, plain
}

/// Message roles, told apart by kind so the echo side needs no state.
enum Wire {
    static let payloadBytes = 256
    /// Throughput: appends with one 256-byte entry; `context` = 1 marks the last.
    static func throughput(_ i: UInt64, last: Bool) -> Message {
        Message(kind: .append, from: 1, to: 2, term: 1, index: i,
                entries: [Entry(term: 1, index: i + 1, data: [UInt8](repeating: 7, count: payloadBytes))],
                context: last ? 1 : 0)
    }
    /// Latency: a readIndex carrying a 256-byte entry is not allowed (entries only on append), so
    /// the ping is an append too, marked by `commit` = sequence number and `context` = 2.
    static func ping(_ seq: UInt64) -> Message {
        Message(kind: .append, from: 1, to: 2, term: 1, index: seq,
                entries: [Entry(term: 1, index: seq + 1, data: [UInt8](repeating: 9, count: payloadBytes))],
                commit: seq, context: 2)
    }
}

func makeConfig(node: NodeID, mode: Mode, dir: String) -> TransportConfiguration {
    let security: TransportSecurity
    switch mode {
    case .tls:
        security = .mutualTLS(TLSFiles(
            caCertificatePath: dir + "/" + CertificateFiles.caCertificate,
            certificatePath: dir + "/" + CertificateFiles.peerCertificate(nodeID: node),
            privateKeyPath: dir + "/" + CertificateFiles.peerPrivateKey(nodeID: node)))
    case .plain:
        security = .insecurePlaintext
    }
    var c = TransportConfiguration(clusterID: "bench", nodeID: node, listen: PeerAddress(host: "127.0.0.1", port: 0), security: security)
    // The benchmark measures the transport, not drops: deep queues, flow control by waiting.
    c.sendQueueMessagesMax = 200_000
    c.sendQueueBytesMax = 256 << 20
    c.sendQueueLowWaterBytes = 16 << 20
    c.incomingMessagesMax = 1 << 20
    c.logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
    c.logger.logLevel = .critical
    return c
}

/// Node 2: echoes pings, acknowledges the last throughput message and the last snapshot chunk.
struct Serve: AsyncParsableCommand {
    @Option var mode: Mode
    @Option var dir: String
    @Option(name: .customLong("peer-port")) var peerPort: Int
    @Option(name: .customLong("port-file")) var portFile: String

    func run() async throws {
        let transport = try PeerTransport(configuration: makeConfig(node: 2, mode: mode, dir: dir))
        try await transport.start()
        transport.setPeer(1, address: PeerAddress(host: "127.0.0.1", port: peerPort))
        // Written whole, then renamed: the parent never reads half a port.
        try "\(transport.listeningPort!)\n".write(toFile: portFile + ".tmp", atomically: false, encoding: .utf8)
        try FileManager.default.moveItem(atPath: portFile + ".tmp", toPath: portFile)
        // The parent owns our lifetime: SIGTERM (default disposition) ends us, and so does its death.
        let parent = getppid()
        Thread.detachNewThread {
            while getppid() == parent { Thread.sleep(forTimeInterval: 0.5) }
            Foundation.exit(0)
        }
        var received: UInt64 = 0
        for await m in transport.messages {
            switch m.kind {
            case .append where m.context == 2:
                var echo = m
                echo.from = 2
                echo.to = 1
                sendRetrying(transport, echo)
            case .append:
                received += 1
                if m.context == 1 {
                    sendRetrying(transport, Message(kind: .appendResponse, from: 2, to: 1, term: 1, index: received))
                    received = 0
                }
            case .snapshot where m.snapshot?.done == true:
                sendRetrying(transport, Message(kind: .snapshotResponse, from: 2, to: 1, term: 1, index: m.snapshot!.offset))
            default:
                break
            }
        }
    }
}

func sendRetrying(_ t: PeerTransport, _ m: Message) {
    while case .dropped(let reason) = t.send(m) {
        precondition(reason == .queueFull, "benchmark send dropped: \(reason)")
    }
}

struct Results {
    var mode: Mode
    var messagesPerSecond: Double
    var p50Micros: Double
    var p99Micros: Double
    var snapshotMBPerSecond: Double
}

struct Run: AsyncParsableCommand {
    @Option(help: "Throughput messages per trial.") var messages = 200_000
    @Option(help: "Latency round trips per trial.") var pings = 20_000
    @Option(help: "1 MiB snapshot chunks per trial.") var chunks = 256
    @Option(help: "Trials per mode (best throughput, median-of-trials latency are reported).") var trials = 3

    func run() async throws {
        let dir = NSTemporaryDirectory() + "peer-transport-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ca = try CertificateAuthority.create(directory: dir, clusterID: "bench")
        _ = try ca.issuePeer(nodeID: 1, ipAddresses: ["127.0.0.1"])
        _ = try ca.issuePeer(nodeID: 2, ipAddresses: ["127.0.0.1"])

        var all: [Mode: [Results]] = [:]
        // Interleave modes so drift on a shared machine hits both alike.
        for trial in 1...trials {
            for mode in Mode.allCases {
                let r = try await measure(mode: mode, dir: dir)
                all[mode, default: []].append(r)
                print(String(format: "trial %d %@: %.0f msg/s, RTT p50 %.1f us p99 %.1f us, snapshot %.1f MB/s",
                             trial, mode.rawValue, r.messagesPerSecond, r.p50Micros, r.p99Micros, r.snapshotMBPerSecond))
            }
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        print("\n| mode | messages/s (median) | RTT p50 (us) | RTT p99 (us) | snapshot MB/s (1 MiB chunks) |")
        print("|---|---|---|---|---|")
        var medians: [Mode: Double] = [:]
        for mode in Mode.allCases {
            let rs = all[mode]!
            medians[mode] = median(rs.map(\.messagesPerSecond))
            print(String(format: "| %@ | %.0f | %.1f | %.1f | %.1f |", mode.rawValue, medians[mode]!,
                         median(rs.map(\.p50Micros)), median(rs.map(\.p99Micros)), median(rs.map(\.snapshotMBPerSecond))))
        }
        let ratio = medians[.tls]! / medians[.plain]!
        let snapRatio = median(all[.tls]!.map(\.snapshotMBPerSecond)) / median(all[.plain]!.map(\.snapshotMBPerSecond))
        print(String(format: "\nTLS/plain messages/s ratio: %.2f (target >= 0.70); snapshot MB/s ratio: %.2f", ratio, snapRatio))
    }

    func measure(mode: Mode, dir: String) async throws -> Results {
        let transport = try PeerTransport(configuration: makeConfig(node: 1, mode: mode, dir: dir))
        try await transport.start()
        let (child, port) = try spawnServe(mode: mode, dir: dir, parentPort: transport.listeningPort!)
        defer { child.stop() }
        let inbox = Inbox(transport.messages)
        let events = EventWatch(transport.events)
        transport.setPeer(2, address: PeerAddress(host: "127.0.0.1", port: port))
        try await events.waitConnectedBothWays(peer: 2)

        // Warm-up, then throughput.
        _ = try await throughput(transport, inbox, count: 10_000)
        let mps = try await throughput(transport, inbox, count: messages)

        // Latency: sequential round trips.
        var rtts: [Double] = []
        rtts.reserveCapacity(pings)
        for seq in 1...UInt64(pings) {
            let start = ContinuousClock.now
            sendRetrying(transport, Wire.ping(seq))
            let echo = try await inbox.next()
            precondition(echo.commit == seq, "echo out of order: \(echo.commit) != \(seq)")
            rtts.append((ContinuousClock.now - start).seconds * 1e6)
        }
        rtts.sort()

        // Snapshot chunks with flow control.
        let chunkBytes = 1 << 20
        let meta = SnapshotMetadata(index: 1, term: 1, conf: ConfState(voters: [1, 2]))
        let payload = [UInt8](repeating: 5, count: chunkBytes)
        let snapStart = ContinuousClock.now
        for i in 0..<chunks {
            await transport.waitForSendCapacity(to: 2)
            let chunk = SnapshotChunk(metadata: meta, offset: UInt64(i * chunkBytes), totalBytes: UInt64(chunks * chunkBytes),
                                      data: payload, done: i == chunks - 1)
            sendRetrying(transport, Message(kind: .snapshot, from: 1, to: 2, term: 1, snapshot: chunk))
        }
        let ack = try await inbox.next()
        precondition(ack.kind == .snapshotResponse, "expected snapshot ack, got \(ack)")
        let snapSeconds = (ContinuousClock.now - snapStart).seconds
        await transport.shutdown()
        return Results(mode: mode, messagesPerSecond: mps,
                       p50Micros: rtts[rtts.count / 2], p99Micros: rtts[Int(Double(rtts.count) * 0.99)],
                       snapshotMBPerSecond: Double(chunks * chunkBytes) / 1e6 / snapSeconds)
    }

    func throughput(_ t: PeerTransport, _ inbox: Inbox, count: Int) async throws -> Double {
        let start = ContinuousClock.now
        for i in 0..<count {
            let m = Wire.throughput(UInt64(i), last: i == count - 1)
            while case .dropped = t.send(m) { await t.waitForSendCapacity(to: 2) }
        }
        let ack = try await inbox.next()
        precondition(ack.kind == .appendResponse && ack.index == UInt64(count), "throughput ack \(ack): messages lost")
        return Double(count) / (ContinuousClock.now - start).seconds
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// A single-consumer iterator over the transport's messages with a bounded wait.
final class Inbox: @unchecked Sendable {
    private var iterator: AsyncStream<Message>.Iterator
    init(_ s: AsyncStream<Message>) { iterator = s.makeAsyncIterator() }
    func next() async throws -> Message {
        guard let m = await iterator.next() else { throw ValidationError("message stream ended") }
        return m
    }
}

actor EventWatch {
    private var seen: [TransportEvent] = []
    private var waiters: [CheckedContinuation<Void, Never>] = []
    init(_ s: AsyncStream<TransportEvent>) {
        Task { for await e in s { await self.add(e) } }
        // Wakes the waiter now and then so the deadline is checked even if no event comes.
        Task { [weak self] in
            while let self {
                try? await Task.sleep(for: .seconds(1))
                await self.wake()
            }
        }
    }
    private func add(_ e: TransportEvent) {
        seen.append(e)
        wake()
    }
    private func wake() {
        let w = waiters
        waiters = []
        w.forEach { $0.resume() }
    }
    func waitConnectedBothWays(peer: NodeID) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            let out = seen.contains { if case .peerConnected(peer, _) = $0 { return true }; return false }
            let inb = seen.contains { if case .inboundEstablished(peer, _) = $0 { return true }; return false }
            if out && inb { return }
            // A refusal here is expected once: the child may dial before we have made it a member
            // (we learn its port only after it starts); its link retries with backoff.
            guard ContinuousClock.now < deadline else { throw ValidationError("peers did not connect: \(seen)") }
            await withCheckedContinuation { waiters.append($0) }
        }
    }
}

/// The child process: this same binary in `serve` mode, started the project's one way.
final class Child {
    let pid: pid_t
    init(pid: pid_t) { self.pid = pid }

    /// SIGTERM, SIGKILL if it has not ended within 5 s; then reaped (only the process we started).
    func stop() {
        ChildProcess.signalProcess(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(5)
        while !ChildProcess.hasExited(pid) && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        ChildProcess.signalProcess(pid, SIGKILL)
        _ = ChildProcess.reapBlocking(pid)
    }
}

func spawnServe(mode: Mode, dir: String, parentPort: Int) throws -> (Child, Int) {
    let portFile = "\(dir)/serve-\(mode.rawValue).port"
    let logFile = "\(dir)/serve-\(mode.rawValue).log"
    try? FileManager.default.removeItem(atPath: portFile)
    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
    let argv = [executable, "serve", "--mode", mode.rawValue, "--dir", dir, "--peer-port", "\(parentPort)", "--port-file", portFile]
    let child = Child(pid: try ChildProcess.spawn(argv, .init(outputPath: logFile, searchPath: false)))
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
        if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            return (child, port)
        }
        if ChildProcess.hasExited(child.pid) { break }
        Thread.sleep(forTimeInterval: 0.02)
    }
    child.stop()
    let said = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
    throw ValidationError("the serve child reported no port within 30 s; its output: \(said.suffix(1500))")
}
