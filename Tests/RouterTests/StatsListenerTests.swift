import Foundation
import Logging
import Testing

@testable import Router

/// The listener with a real UDP client on 127.0.0.1.
@Suite("StatsListener")
struct StatsListenerTests {
    /// A window longer than any test: these tests count what arrived, not what expires (the
    /// aggregator tests cover expiry deterministically); a test task starved for seconds by the
    /// suites beside it must not see its counts leave a 10 s window.
    static let longWindow = StatsAggregator.Configuration(bucketMs: 10_000, bucketCount: 60)

    static func logger(_ store: StatsCapturingLogHandler.Store = .init()) -> Logger {
        Logger(label: "stats-test") { _ in StatsCapturingLogHandler(store: store) }
    }

    @Test func countsDatagramsFromARealUDPClient() async throws {
        let listener = try StatsListener(configuration: Self.longWindow, logger: Self.logger())
        try listener.start()
        defer { listener.stop() }
        #expect(listener.port != 0)
        let sender = try StatsUDPSender(port: listener.port)
        for i in 0..<30 {
            let tenant = i % 3 == 0 ? "beta" : "acme"
            let status = i % 10 == 0 ? "503" : "200"
            try sender.send(StatsTestLine.datagram(StatsTestLine.json(tenant: tenant, instance: "i-\(i % 2)", status: status)))
        }
        let arrived = try await statsPoll { listener.snapshot().requests == 30 }
        #expect(arrived, "30 datagrams sent, \(listener.snapshot().requests) counted")
        let snapshot = listener.snapshot()
        try #require(snapshot.tenants.map(\.tenant) == ["acme", "beta"])
        #expect(snapshot.tenants[0].requests == 20 && snapshot.tenants[1].requests == 10)
        #expect(snapshot.tenants[0].status5xx == 2 && snapshot.tenants[1].status5xx == 1, "503s: i = 10, 20 (acme) and 0 (beta)")
        #expect(Set(snapshot.instances.map(\.instance)) == ["i-0", "i-1"])
        #expect(snapshot.invalidDatagramsTotal == 0 && listener.datagramsReceived == 30)
    }

    @Test func refusedDatagramsAreCountedByKindAndLoggedOncePerKind() async throws {
        let store = StatsCapturingLogHandler.Store()
        let listener = try StatsListener(configuration: Self.longWindow, logger: Self.logger(store))
        try listener.start()
        defer { listener.stop() }
        let sender = try StatsUDPSender(port: listener.port)
        let longJunk = Array(repeating: UInt8(ascii: "j"), count: 1_000)
        for _ in 0..<3 { try sender.send(longJunk) }                                                 // notSyslog
        try sender.send(StatsTestLine.datagram("{\"tenant\":"))                                         // badJSON
        try sender.send(StatsTestLine.datagram(StatsTestLine.json(tenant: "NOPE")))                      // invalidTenantId
        try sender.send(Array(repeating: UInt8(ascii: "x"), count: StatsParser.datagramBytesMax + 500))  // tooLarge
        try sender.send(StatsTestLine.datagram(StatsTestLine.json()))                                   // valid
        // datagramsReceived counts a datagram before it is parsed and aggregated: wait for the
        // aggregator's own counts.
        let arrived = try await statsPoll { let s = listener.snapshot(); return s.invalidDatagramsTotal + s.requests == 7 }
        #expect(arrived, "7 datagrams sent, \(listener.datagramsReceived) received")
        let snapshot = listener.snapshot()
        #expect(snapshot.invalidDatagramsByKind == ["notSyslog": 3, "badJSON": 1, "invalidTenantId": 1, "tooLarge": 1])
        #expect(snapshot.invalidDatagramsTotal == 6 && snapshot.requests == 1)

        let refusals = store.entries.withLock { $0.filter { $0.message == "stats datagram refused" } }
        #expect(refusals.map { $0.metadata["kind"] ?? "" }.sorted() == ["badJSON", "invalidTenantId", "notSyslog", "tooLarge"],
                "one line per kind within the minute, however many arrive")
        let junkLine = try #require(refusals.first { $0.metadata["kind"] == "notSyslog" })
        #expect(junkLine.metadata["payload"] == String(repeating: "j", count: StatsListener.loggedPayloadBytesMax) + "...")
        let tooLargeLine = try #require(refusals.first { $0.metadata["kind"] == "tooLarge" })
        #expect(tooLargeLine.metadata["error"]?.contains("\(StatsParser.datagramBytesMax + 500) bytes") == true,
                "the real length is reported although only 8 KiB were read")
    }

    @Test func stopIsPromptAndReleasesThePort() throws {
        let listener = try StatsListener(configuration: Self.longWindow, logger: Self.logger())
        try listener.start()
        let port = listener.port
        let started = ContinuousClock.now
        listener.stop()
        let took = ContinuousClock.now - started
        #expect(took < .milliseconds(StatsListener.receiveTimeoutMs * 5), "stop took \(took)")
        listener.stop()  // idempotent
        // The socket is closed: the same port can be bound again.
        let again = try StatsListener(port: port, logger: Self.logger())
        #expect(again.port == port)
        again.stop()
    }

    @Test func reportsTheReceiveBufferTheKernelGranted() throws {
        let listener = try StatsListener(receiveBufferBytes: 64 * 1024, logger: Self.logger())
        defer { listener.stop() }
        // Linux doubles the request for its bookkeeping (and would cap it at net.core.rmem_max).
        #expect(listener.receiveBufferBytes == 128 * 1024)
    }

    @Test func datagramsTheKernelDropsAreCounted() async throws {
        // A tiny buffer and no reader yet: most of a burst cannot be queued and is dropped.
        let listener = try StatsListener(receiveBufferBytes: 4_096, configuration: Self.longWindow, logger: Self.logger())
        defer { listener.stop() }
        let sender = try StatsUDPSender(port: listener.port)
        let burst = 300
        let line = StatsTestLine.datagram(StatsTestLine.json())
        for _ in 0..<burst { try sender.send(line) }
        try listener.start()
        // Wait until every datagram of the burst is either taken by the listener or dropped by
        // the kernel (its own count, read from /proc/net/udp independently of the listener), and
        // the queue is empty.
        var kernel = StatsProcNetUDP.Socket(receiveQueueBytes: -1, drops: -1)
        let drained = try await statsPoll {
            kernel = try #require(try StatsProcNetUDP.socket(port: listener.port), "port \(listener.port) not in /proc/net/udp")
            return kernel.receiveQueueBytes == 0 && listener.datagramsReceived + kernel.drops == burst
        }
        #expect(drained, "burst \(burst): listener received \(listener.datagramsReceived), kernel \(kernel)")
        #expect(kernel.drops > 0 && kernel.drops < burst, "the burst should overflow the buffer: \(kernel)")
        // The kernel reports its drop count with the next datagram it queues: send one now that
        // the queue is empty, so it cannot be dropped.
        try sender.send(line)
        let received = burst - kernel.drops + 1
        let accounted = try await statsPoll {
            let snapshot = listener.snapshot()
            return snapshot.droppedDatagramsTotal == kernel.drops && snapshot.requests == received
        }
        let snapshot = listener.snapshot()
        #expect(accounted, "kernel dropped \(kernel.drops), listener reports \(snapshot.droppedDatagramsTotal); counted \(snapshot.requests) of \(received)")
    }
}

/// A UDP socket's line in /proc/net/udp: the kernel's receive queue and drop counts.
enum StatsProcNetUDP {
    struct Socket: CustomStringConvertible {
        let receiveQueueBytes: Int
        let drops: Int
        var description: String { "rx_queue \(receiveQueueBytes) bytes, drops \(drops)" }
    }

    /// The socket bound to 127.0.0.1:`port`, if listed.
    static func socket(port: UInt16) throws -> Socket? {
        let table = try String(contentsOfFile: "/proc/net/udp", encoding: .utf8)
        let local = "0100007F:" + String(format: "%04X", port)
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            guard fields.count >= 13, fields[1] == local else { continue }
            let queues = fields[4].split(separator: ":")
            guard queues.count == 2, let receive = Int(queues[1], radix: 16), let drops = Int(fields[12]) else {
                throw StatsTestError("unreadable /proc/net/udp line: \(line)")
            }
            return Socket(receiveQueueBytes: receive, drops: drops)
        }
        return nil
    }
}
