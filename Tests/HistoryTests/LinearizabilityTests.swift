import History
import Testing

/// The linearizability checker on histories whose verdict is known: the planted bugs of issue 24
/// (a stale read, a lost write, a duplicated create) are refused, concurrent good histories pass.
@Suite struct LinearizabilityTests {
    func op(_ client: Int, _ kind: HistoryOperation.Kind, _ key: String = "t", _ value: String? = nil, _ from: Int64, _ to: Int64, _ outcome: HistoryOperation.Outcome) -> HistoryOperation {
        HistoryOperation(client: client, kind: kind, key: key, value: value, invokedAt: from, completedAt: to, outcome: outcome)
    }

    func verdict(_ ops: [HistoryOperation], budget: Int = 1_000_000) throws -> Verdict {
        try Linearizability.check(ops, stepBudget: budget).verdict
    }

    @Test func aConcurrentHistoryThatSomeOrderExplainsIsLinearizable() throws {
        let history = [
            op(1, .create, "t", "v1", 0, 10, .ok(.applied)),
            op(2, .read, "t", nil, 5, 15, .ok(.value(nil))),  // concurrent with the create: before it
            op(3, .read, "t", nil, 12, 20, .ok(.value("v1"))),
            op(1, .update, "t", "v2", 21, 30, .ok(.applied)),
            op(2, .read, "t", nil, 22, 28, .ok(.value("v2"))),  // concurrent with the update: after it
            op(3, .read, "t", nil, 23, 29, .ok(.value("v1"))),  // ... and this one before it
            op(4, .create, "t", "x", 31, 35, .ok(.rejected)),
            op(1, .delete, "t", nil, 36, 40, .ok(.applied)),
            op(2, .delete, "t", nil, 37, 41, .ok(.rejected)),
            op(3, .update, "t", "v3", 42, 45, .ok(.rejected)),
            op(4, .read, "t", nil, 46, 47, .ok(.value(nil))),
        ]
        #expect(try verdict(history) == .linearizable)
    }

    @Test func aStaleReadIsAViolation() throws {
        let history = [
            op(1, .create, "t", "v1", 0, 10, .ok(.applied)),
            op(1, .update, "t", "v2", 11, 20, .ok(.applied)),
            op(2, .read, "t", nil, 21, 25, .ok(.value("v1"))),
        ]
        guard case .violation(let key, let prefix, let stuck) = try verdict(history) else {
            Issue.record("a stale read passed")
            return
        }
        #expect(key == "t" && prefix == 2 && stuck.contains { $0.kind == .read }, "\(prefix) \(stuck)")
    }

    @Test func aLostAcknowledgedWriteIsAViolation() throws {
        let history = [
            op(1, .create, "t", "v1", 0, 10, .ok(.applied)),
            op(2, .read, "t", nil, 20, 25, .ok(.value(nil))),
        ]
        #expect(!(try verdict(history)).isLinearizable)
    }

    @Test func aDuplicatedCreateIsAViolationWhetherTheTwoOverlapOrNot() throws {
        for second: (Int64, Int64) in [(20, 30), (5, 15)] {
            let history = [
                op(1, .create, "t", "a", 0, 10, .ok(.applied)),
                op(2, .create, "t", "b", second.0, second.1, .ok(.applied)),
            ]
            #expect(!(try verdict(history)).isLinearizable, "second create at \(second)")
        }
    }

    @Test func anUnknownWriteMayTakeEffectLateOrNeverButNotUndoItself() throws {
        let late = [
            op(1, .create, "t", "v", 0, 0, .unknown),
            op(2, .read, "t", nil, 10, 11, .ok(.value(nil))),
            op(2, .read, "t", nil, 20, 21, .ok(.value("v"))),
        ]
        #expect(try verdict(late) == .linearizable)
        let never = [op(1, .create, "t", "v", 0, 0, .unknown), op(2, .read, "t", nil, 10, 11, .ok(.value(nil)))]
        #expect(try verdict(never) == .linearizable)
        let flapping = late + [op(2, .read, "t", nil, 30, 31, .ok(.value(nil)))]
        #expect(!(try verdict(flapping)).isLinearizable)
    }

    @Test func aRemovalThatMayComeLaterRemovesOnlyWhatItWasFor() throws {
        // A tenant deleted (it shows "deleting"), removed later by the leader: fine.
        let deleted = [
            op(1, .create, "t", "plan", 0, 10, .ok(.applied)),
            op(2, .update, "t", "deleting", 20, 30, .ok(.applied)),
            op(9, .delete, "t", "deleting", 20, 20, .unknown),
            op(3, .read, "t", nil, 31, 32, .ok(.value("deleting"))),
            op(3, .read, "t", nil, 40, 41, .ok(.value(nil))),
            op(1, .create, "t", "plan2", 50, 60, .ok(.applied)),
            op(3, .read, "t", nil, 61, 62, .ok(.value("plan2"))),
        ]
        #expect(try verdict(deleted) == .linearizable)
        // The removal cannot explain a re-created tenant that vanished: that write was lost.
        let lost = deleted + [op(3, .read, "t", nil, 70, 71, .ok(.value(nil)))]
        #expect(!(try verdict(lost)).isLinearizable)
    }

    @Test func aFailedWriteIsLeftOutAndItsValueMustNeverBeSeen() throws {
        let failed = op(1, .create, "t", "v", 0, 5, .failed)
        #expect(try verdict([failed, op(2, .read, "t", nil, 10, 11, .ok(.value(nil)))]) == .linearizable)
        #expect(!(try verdict([failed, op(2, .read, "t", nil, 10, 11, .ok(.value("v")))])).isLinearizable)
        let report = try Linearizability.check([failed])
        #expect(report.dropped == 1 && report.operations == 0)
    }

    @Test func keysAreCheckedApartAndTheWorstVerdictIsTheHistorys() throws {
        let history = [
            op(1, .create, "a", "1", 0, 10, .ok(.applied)),
            op(2, .create, "b", "1", 0, 10, .ok(.applied)),
            op(3, .read, "a", nil, 11, 12, .ok(.value("1"))),
            op(3, .read, "b", nil, 13, 14, .ok(.value(nil))),
        ]
        guard case .violation(let key, _, _) = try verdict(history) else {
            Issue.record("the lost write on b passed")
            return
        }
        #expect(key == "b")
        #expect(try Linearizability.check(history).keys == 2)
    }

    @Test func aSearchOverItsBudgetIsUnknownNotAPass() throws {
        // Many concurrent unknown updates and reads of values in an order none explains cheaply.
        var history = [op(0, .create, "t", "v0", 0, 1, .ok(.applied))]
        for i in 1...14 { history.append(op(i, .update, "t", "v\(i)", 2, 2, .unknown)) }
        history.append(op(20, .read, "t", nil, 100, 101, .ok(.value("none of them"))))
        guard case .unknown(let key, _) = try verdict(history, budget: 500) else {
            Issue.record("a search over its budget gave a verdict")
            return
        }
        #expect(key == "t")
    }

    @Test func historiesOfARealRegisterPassAndOneChangedReadFails() throws {
        // Sequential runs of a real register, each operation's interval widened into its
        // neighbours' by a seeded amount: still linearizable (the real order explains it).
        var rng = SplitMix(seed: 24)
        for round in 0..<40 {
            var state: String?
            var history: [HistoryOperation] = []
            var t: Int64 = 0
            for i in 0..<30 {
                let kind = HistoryOperation.Kind.allCases[Int(rng.next() % 4)]
                let value = "v\(round)-\(i)"
                let outcome: HistoryOperation.Outcome
                switch kind {
                case .read: outcome = .ok(.value(state))
                case .create: outcome = .ok(state == nil ? .applied : .rejected); if state == nil { state = value }
                case .update: outcome = .ok(state != nil ? .applied : .rejected); if state != nil { state = value }
                case .delete: outcome = .ok(state != nil ? .applied : .rejected); state = nil
                }
                let at = t + 10
                let written = kind == .create || kind == .update ? value : nil
                history.append(op(Int(rng.next() % 5), kind, "t", written, at - Int64(rng.next() % 8), at + Int64(rng.next() % 8), outcome))
                t = at
            }
            #expect(try verdict(history) == .linearizable, "round \(round)")
            if let i = history.lastIndex(where: { $0.kind == .read }) {
                var changed = history
                changed[i].outcome = .ok(.value("never written"))
                #expect(!(try verdict(changed)).isLinearizable, "round \(round)")
            }
        }
    }

    @Test func eventsArePairedPerClientAndMalformedHistoriesAreRefused() throws {
        let events = [
            HistoryEvent(client: 1, phase: .invoke, kind: .create, key: "t", value: "v", time: 0),
            HistoryEvent(client: 2, phase: .invoke, kind: .read, key: "t", time: 1),
            HistoryEvent(client: 1, phase: .ok, kind: .create, key: "t", applied: true, time: 5),
            HistoryEvent(client: 2, phase: .ok, kind: .read, key: "t", value: "v", time: 6),
            HistoryEvent(client: 3, phase: .invoke, kind: .delete, key: "t", time: 7),  // never ends: unknown
        ]
        let ops = try Linearizability.operations(from: events)
        #expect(ops.count == 3 && ops[0].outcome == .ok(.applied) && ops[0].value == "v" && ops[1].outcome == .ok(.value("v")) && ops[2].outcome == .unknown)
        #expect(try verdict(ops) == .linearizable)

        let bad: [([HistoryEvent], String)] = [
            ([HistoryEvent(client: 1, phase: .ok, kind: .read, key: "t", time: 0)], "without a call"),
            ([HistoryEvent(client: 1, phase: .invoke, kind: .read, key: "t", time: 0), HistoryEvent(client: 1, phase: .invoke, kind: .read, key: "t", time: 1)], "is outstanding"),
            ([HistoryEvent(client: 1, phase: .invoke, kind: .read, key: "t", time: 0), HistoryEvent(client: 1, phase: .ok, kind: .read, key: "u", time: 1)], "but the call was"),
            ([HistoryEvent(client: 1, phase: .invoke, kind: .read, key: "t", time: 5), HistoryEvent(client: 1, phase: .ok, kind: .read, key: "t", time: 1)], "is before"),
            ([HistoryEvent(client: 1, phase: .invoke, kind: .delete, key: "t", time: 0), HistoryEvent(client: 1, phase: .ok, kind: .delete, key: "t", time: 1)], "must say whether it was applied"),
        ]
        for (events, phrase) in bad {
            #expect(throws: HistoryError.self) { try Linearizability.operations(from: events) }
            do { _ = try Linearizability.operations(from: events) } catch { #expect(error.description.contains(phrase), "\(error)") }
        }
        #expect(throws: HistoryError.self) { try Linearizability.check([op(1, .read, "t", nil, 0, 1, .ok(.applied))]) }
    }
}

/// A small seeded generator (SplitMix64): the same rounds on every run.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
