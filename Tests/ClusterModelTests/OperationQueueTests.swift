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

/// A full operations table: the finished operation that started first gives way to a new one,
/// identically on a replica restored from a snapshot; only a table of operations all in progress
/// refuses (`ClusterLimits.operationsMax`, lowered here to reach it in a few commands).
struct FinishedOperationsTests {
    static let limit = 20

    /// Applies the same command to both replicas.
    static func both(_ a: inout Replica, _ b: inout Replica, _ body: Command.OneOf_Body) -> (ApplyResult, ApplyResult) {
        a.sequence += 1
        a.timeMs += 10
        let command = Command(clientId: a.clientId, sequence: a.sequence, leaderTimeMs: a.timeMs, body)
        return (a.apply(command), b.apply(command))
    }

    @Test func aFullTableRefusesOnlyWhenEveryOperationIsInProgress() {
        var r = Replica()
        r.state.operationsMax = Self.limit
        for i in 0...Self.limit { r.expectApplied(Make.createTenant("t\(i)")) }
        for i in 0..<Self.limit { r.expectApplied(Make.startOperation("op\(i)", tenant: "t\(i)")) }
        r.expectRejected(Make.startOperation("op-new", tenant: "t\(Self.limit)"), .limitReached)
        // Finished out of start order: op9, then op2, then op5. op2 started first: it goes.
        for i in [9, 2, 5] { r.expectApplied(Make.finishOperation("op\(i)", .succeeded)) }
        r.expectApplied(Make.startOperation("op-new", tenant: "t\(Self.limit)"))
        #expect(r.state.operations.count == Self.limit)
        #expect(r.state.operation("op2") == nil && r.state.operation("op5") != nil && r.state.operation("op9") != nil)
        #expect(r.state.lastOperation(ofTenant: "t2") == nil, "t2's only operation is forgotten")
        #expect(r.state.lastOperation(ofTenant: "t5")?.id == "op5")
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func theFinishedOperationThatStartedFirstGoesAlsoAfterASnapshot(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        var r = Replica()
        r.state.operationsMax = Self.limit
        let tenants = (0..<30).map { "t\($0)" }
        for t in tenants { r.expectApplied(Make.createTenant(t)) }
        var restored = Replica()
        restored.state = try ClusterState(snapshot: r.state.encodeSnapshot())
        restored.state.operationsMax = Self.limit
        restored.index = r.index
        // The model: operation id → (started index, finished?).
        var model: [String: (started: UInt64, finished: Bool)] = [:]
        var running: [String: String] = [:]  // tenant → operation in progress
        var next = 0
        var forgotten = 0
        for step in 0..<2_000 {
            let tenant = tenants[Int(rng.next() % UInt64(tenants.count))]
            if let op = running[tenant] {
                let (a, b) = Self.both(&r, &restored, Make.finishOperation(op, .succeeded))
                #expect(a == b)
                model[op]!.finished = true
                running[tenant] = nil
            } else {
                next += 1
                let id = "op\(next)"
                let expectedGone = model.count >= Self.limit
                    ? model.filter { $0.value.finished }.min { $0.value.started < $1.value.started }?.key : nil
                let (a, b) = Self.both(&r, &restored, Make.startOperation(id, tenant: tenant))
                #expect(a == b)
                if case .rejected = a {
                    #expect(model.count >= Self.limit && expectedGone == nil, "refused with a finished operation to forget, step \(step)")
                } else {
                    if let gone = expectedGone {
                        model[gone] = nil
                        forgotten += 1
                    }
                    model[id] = (r.index, false)
                    running[tenant] = id
                }
            }
            #expect(Set(r.state.operations.keys) == Set(model.keys), "step \(step)")
            #expect(r.state == restored.state, "step \(step)")
            if step % 400 == 399 {
                // A replica restored now forgets in the same order as the one that applied it all.
                restored.state = try ClusterState(snapshot: r.state.encodeSnapshot())
                restored.state.operationsMax = Self.limit
            }
        }
        #expect(forgotten > 500, "the table was full most of the run")
    }

    @Test func insertsOutOfOrderAndForgetsOldestFirst() {
        var f = FinishedOperations()
        for i in [5, 1, 9, 3, 7, 2] as [UInt64] { f.insert(.init(index: i, id: "op\(i)")) }
        var out: [UInt64] = []
        while let k = f.removeOldest() { out.append(k.index) }
        #expect(out == [1, 2, 3, 5, 7, 9])
        #expect(f.isEmpty && f.count == 0)
        // Past the compaction threshold the order holds too.
        for i in 1...3_000 as ClosedRange<UInt64> { f.insert(.init(index: i, id: "op\(i)")) }
        for i in 1...2_000 as ClosedRange<UInt64> { #expect(f.removeOldest()?.index == i) }
        f.insert(.init(index: 2_500, id: "op2500b"))
        #expect(f.count == 1_001)
        #expect(f.removeOldest()?.index == 2_001)
    }
}
