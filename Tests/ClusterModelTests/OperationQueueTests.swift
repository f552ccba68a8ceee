@testable import ClusterModel
import Testing

/// The operations in progress, oldest first, as the driver reads them every round: kept in
/// start order by apply (no sort per read), equal to sorting every operation in progress by
/// (started index, id), through any order of finishes and across a snapshot.
struct OperationQueueTests {
    /// What the queue must return: every operation in progress, sorted. O(n log n), as it was.
    static func sortedInProgress(_ state: ClusterState) -> [String] {
        state.operations.values.filter { $0.state == .inProgress }
            .sorted { ($0.startedIndex, $0.id) < ($1.startedIndex, $1.id) }.map(\.id)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func oldestFirstThroughRandomStartsAndFinishesAndSnapshots(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        var r = Replica()
        let tenants = (0..<300).map { "t\($0)" }
        for t in tenants { r.expectApplied(Make.createTenant(t)) }
        var running: [String: String] = [:]  // tenant → operation id
        var next = 0
        for step in 0..<4_000 {
            let tenant = tenants[Int(rng.next() % UInt64(tenants.count))]
            if let op = running[tenant] {
                r.expectApplied(Make.finishOperation(op, rng.next() % 2 == 0 ? .succeeded : .failed))
                running[tenant] = nil
            } else {
                next += 1
                r.expectApplied(Make.startOperation("op\(next)", tenant: tenant))
                running[tenant] = "op\(next)"
            }
            let expected = Self.sortedInProgress(r.state)
            #expect(r.state.inProgressOperations.map(\.id) == expected, "step \(step)")
            #expect(r.state.hasInProgressOperations == !expected.isEmpty)
            let limit = Int(rng.next() % 40)
            #expect(r.state.oldestInProgressOperations(limit).map(\.id) == Array(expected.prefix(limit)), "step \(step), limit \(limit)")
            if step % 500 == 0 {
                // A restored replica reads the same order, and keeps it as both apply on.
                var restored = Replica()
                restored.state = try ClusterState(snapshot: r.state.encodeSnapshot())
                #expect(restored.state.inProgressOperations.map(\.id) == expected)
                #expect(restored.state.oldestInProgressOperations(5).map(\.id) == Array(expected.prefix(5)))
            }
        }
        #expect(next > 1_000, "the run started many operations")
    }

    @Test func finishingTheOldestFirstOrLastKeepsTheRestInOrder() {
        var q = OperationQueue()
        var live: Set<String> = []
        for i in 1...200 {
            q.started(.init(index: UInt64(i), id: "op\(i)"))
            live.insert("op\(i)")
        }
        let isLive = { (k: OperationQueue.Key) in live.contains(k.id) }
        // Finish the newest 150 (garbage behind live keys: compaction), then the oldest 10 (head).
        for i in stride(from: 200, to: 50, by: -1) {
            live.remove("op\(i)")
            q.finished(.init(index: UInt64(i), id: "op\(i)"), isLive: isLive)
        }
        for i in 1...10 {
            live.remove("op\(i)")
            q.finished(.init(index: UInt64(i), id: "op\(i)"), isLive: isLive)
        }
        #expect(q.liveCount == 40)
        #expect(q.oldest(100, isLive: isLive).map(\.id) == (11...50).map { "op\($0)" })
        #expect(q.oldest(3, isLive: isLive).map(\.id) == ["op11", "op12", "op13"])
        q.started(.init(index: 500, id: "op500"))
        live.insert("op500")
        #expect(q.oldest(100, isLive: isLive).last?.id == "op500")
        // A queue built from a snapshot's live keys in any order reads the same.
        let rebuilt = OperationQueue(live: q.oldest(100, isLive: isLive).reversed())
        #expect(rebuilt.oldest(100, isLive: isLive) == q.oldest(100, isLive: isLive))
    }
}
