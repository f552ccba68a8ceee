/// A recorded history of operations on keyed objects (tenants), as concurrent clients saw them,
/// and the check that it is linearizable (docs/testing.md §Histories). Pure: no I/O, no clock;
/// the search is bounded by a step budget, so the same history always gets the same verdict.
///
/// The model per key is a register that is absent or holds a value:
///
/// | op | precondition | effect | definite outputs |
/// |---|---|---|---|
/// | `create(v)` | absent | holds v | `applied`, or `rejected` (it existed) |
/// | `update(v)` | present | holds v | `applied`, or `rejected` (it did not exist) |
/// | `delete` | present | absent | `applied`, or `rejected` (it did not exist) |
/// | `delete(v)` | holds v | absent | `applied`, or `rejected` (it did not hold v) |
/// | `read` | - | - | the value, or nil (absent) |
public struct HistoryOperation: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable { case create, update, delete, read }

    /// How the client saw the call end.
    public enum Outcome: Sendable, Hashable {
        /// It took effect (or, for a write that was refused, definitely did not and saw the
        /// state that refused it): `applied` or `rejected` for writes, the value read for reads.
        case ok(Output)
        /// Definitely did not take effect (nothing was applied, e.g. `503 noLeader`): dropped.
        case failed
        /// May or may not have taken effect, at any time after it was invoked (a timeout, a
        /// broken connection, `outcomeUnknown`).
        case unknown
    }

    public enum Output: Sendable, Hashable {
        case applied
        case rejected
        case value(String?)
    }

    public var client: Int
    public var kind: Kind
    public var key: String
    /// What `create` and `update` write; for `delete`, the only value it removes (nil: any);
    /// ignored for `read`.
    public var value: String?
    /// Monotonic times (any unit, one clock for the whole history): invoked, and completed
    /// (ignored for `unknown`, which may take effect up to the end of the history).
    public var invokedAt: Int64
    public var completedAt: Int64
    public var outcome: Outcome

    public init(client: Int, kind: Kind, key: String, value: String? = nil, invokedAt: Int64, completedAt: Int64, outcome: Outcome) {
        self.client = client
        self.kind = kind
        self.key = key
        self.value = value
        self.invokedAt = invokedAt
        self.completedAt = completedAt
        self.outcome = outcome
    }
}

/// Why a history is not a history at all (before any search).
public struct HistoryError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The verdict for one key, or for the whole history (the worst of its keys).
public enum Verdict: Sendable, Hashable {
    case linearizable
    /// No order of the key's operations respects both real time and the model. `operations`
    /// are the ones the search could not place after the longest prefix it linearized.
    case violation(key: String, linearizedPrefix: Int, stuckAt: [HistoryOperation])
    /// The search ran out of its step budget: neither proven nor refuted (a run fails on it).
    case unknown(key: String, steps: Int)

    public var isLinearizable: Bool { self == .linearizable }
}

public struct CheckReport: Sendable, Hashable {
    public var verdict: Verdict
    public var keys: Int
    public var operations: Int
    /// Operations that definitely failed, left out.
    public var dropped: Int
    public var steps: Int
}

public enum Linearizability {
    /// Checks every key on its own (a register's history is linearizable iff each key's is:
    /// linearizability is local). `stepBudget` bounds the search of each key.
    public static func check(_ history: [HistoryOperation], stepBudget: Int = 5_000_000) throws(HistoryError) -> CheckReport {
        for op in history where op.outcome != .unknown && op.completedAt < op.invokedAt {
            throw HistoryError("client \(op.client)'s \(op.kind.rawValue) of \(op.key) completes (\(op.completedAt)) before it is invoked (\(op.invokedAt))")
        }
        for op in history where (op.kind == .create || op.kind == .update) && op.value == nil {
            throw HistoryError("client \(op.client)'s \(op.kind.rawValue) of \(op.key) writes no value")
        }
        for op in history {
            if case .ok(let output) = op.outcome {
                let fits: Bool
                switch (op.kind, output) {
                case (.read, .value): fits = true
                case (.create, .applied), (.create, .rejected), (.update, .applied), (.update, .rejected), (.delete, .applied), (.delete, .rejected): fits = true
                default: fits = false
                }
                if !fits { throw HistoryError("client \(op.client)'s \(op.kind.rawValue) of \(op.key) completed with \(output), which that operation cannot answer") }
            }
        }
        let kept = history.filter { $0.outcome != .failed }
        var byKey: [String: [HistoryOperation]] = [:]
        for op in kept { byKey[op.key, default: []].append(op) }
        var steps = 0
        var verdict = Verdict.linearizable
        for key in byKey.keys.sorted() {
            let (v, used) = checkKey(key, byKey[key]!, stepBudget: stepBudget)
            steps += used
            switch (verdict, v) {
            case (_, .linearizable): break
            case (.violation, _): break
            case (_, .violation): verdict = v
            case (.linearizable, .unknown): verdict = v
            case (.unknown, .unknown): break
            }
        }
        return CheckReport(verdict: verdict, keys: byKey.count, operations: kept.count, dropped: history.count - kept.count, steps: steps)
    }

    /// The register's state: absent (nil) or a value.
    typealias State = String?

    /// What applying `op` to `state` can give: the next state, for each way it may have taken
    /// effect that matches what the client saw (none: impossible here). An unknown write may
    /// also not have taken effect at all.
    static func step(_ op: HistoryOperation, _ state: State) -> [State] {
        switch op.outcome {
        case .failed:
            return []
        case .unknown:
            switch op.kind {
            case .read: return [state]
            case .create: return state == nil ? [op.value, state] : [state]
            case .update: return state != nil ? [op.value, state] : [state]
            case .delete:
                if let only = op.value { return state == only ? [nil, state] : [state] }
                return state != nil ? [nil, state] : [state]
            }
        case .ok(let output):
            switch (op.kind, output) {
            case (.read, .value(let seen)): return seen == state ? [state] : []
            case (.create, .applied): return state == nil ? [op.value] : []
            case (.create, .rejected): return state != nil ? [state] : []
            case (.update, .applied): return state != nil ? [op.value] : []
            case (.delete, .applied) where op.value != nil: return state == op.value ? [nil] : []
            case (.delete, .rejected) where op.value != nil: return state != op.value ? [state] : []
            case (.update, .rejected), (.delete, .rejected): return state == nil ? [state] : []
            case (.delete, .applied): return state != nil ? [nil] : []
            default: return []
            }
        }
    }

    /// Wing and Gong's search with Lowe's memo of (linearized set, state), over one key's
    /// call and return events in time order. A call is linearized when the model allows it
    /// from the current state; a return reached with its call still pending means the order so
    /// far is wrong: undo the last choice and try the next.
    static func checkKey(_ key: String, _ ops: [HistoryOperation], stepBudget: Int) -> (Verdict, Int) {
        let n = ops.count
        guard n > 0 else { return (.linearizable, 0) }
        // Events: (time, isReturn, op). Unknown operations return after everything else.
        let end = (ops.map { max($0.invokedAt, $0.completedAt) }.max() ?? 0) + 1
        struct Event { var time: Int64; var isReturn: Bool; var op: Int }
        var events: [Event] = []
        events.reserveCapacity(2 * n)
        for (i, op) in ops.enumerated() {
            events.append(Event(time: op.invokedAt, isReturn: false, op: i))
            events.append(Event(time: op.outcome == .unknown ? end : op.completedAt, isReturn: true, op: i))
        }
        // Calls before returns at equal times: two operations that touch in time are concurrent.
        events.sort { a, b in a.time != b.time ? a.time < b.time : (a.isReturn != b.isReturn ? !a.isReturn : a.op < b.op) }
        // A doubly linked list over the events, with a head sentinel at index `count`.
        let count = events.count
        var next = Array(1...count) + [0]
        var prev = [count] + Array(0..<count - 1) + [count - 1]
        next[count - 1] = count
        next[count] = 0
        prev[count] = count - 1
        var returnOf = [Int](repeating: 0, count: n)
        for (i, e) in events.enumerated() where e.isReturn { returnOf[e.op] = i }

        func lift(_ call: Int) {
            let ret = returnOf[events[call].op]
            next[prev[call]] = next[call]; prev[next[call]] = prev[call]
            next[prev[ret]] = next[ret]; prev[next[ret]] = prev[ret]
        }
        func unlift(_ call: Int) {
            let ret = returnOf[events[call].op]
            prev[next[ret]] = ret; next[prev[ret]] = ret
            prev[next[call]] = call; next[prev[call]] = call
        }

        struct Memo: Hashable { var done: [UInt64]; var state: State }
        var linearized = [UInt64](repeating: 0, count: (n + 63) / 64)
        var seen = Set<Memo>()
        // The choices made: the call event, the state before it, and which of its possible next
        // states was taken.
        var stack: [(call: Int, before: State, choice: Int)] = []
        var state: State = nil
        var entry = next[count]
        var steps = 0
        var longest = 0
        var stuck: [Int] = []
        var startChoice = 0

        while next[count] != count {
            steps += 1
            if steps > stepBudget { return (.unknown(key: key, steps: steps), steps) }
            if entry == count {
                // Nothing more to try at this level: backtrack.
                guard let last = stack.popLast() else { break }
                state = last.before
                linearized[events[last.call].op / 64] &= ~(1 << UInt64(events[last.call].op % 64))
                unlift(last.call)
                entry = last.call
                startChoice = last.choice + 1
                continue
            }
            let e = events[entry]
            if !e.isReturn {
                let outcomes = Self.step(ops[e.op], state)
                var moved = false
                var choice = startChoice
                while choice < outcomes.count {
                    var done = linearized
                    done[e.op / 64] |= 1 << UInt64(e.op % 64)
                    let memo = Memo(done: done, state: outcomes[choice])
                    if seen.insert(memo).inserted {
                        stack.append((entry, state, choice))
                        state = outcomes[choice]
                        linearized = done
                        lift(entry)
                        entry = next[count]
                        moved = true
                        break
                    }
                    choice += 1
                }
                startChoice = 0
                if moved {
                    if stack.count > longest { longest = stack.count; stuck = [] }
                    continue
                }
                entry = next[entry]
            } else {
                // A return whose call is still pending: nothing after it can come first.
                if stack.count >= longest && stuck.isEmpty {
                    var pending: [Int] = []
                    var i = next[count]
                    while i != count && i != next[entry] {
                        if !events[i].isReturn { pending.append(events[i].op) }
                        i = next[i]
                    }
                    stuck = pending + [e.op]
                }
                guard let last = stack.popLast() else {
                    return (.violation(key: key, linearizedPrefix: longest, stuckAt: Self.unique(stuck).map { ops[$0] }), steps)
                }
                state = last.before
                linearized[events[last.call].op / 64] &= ~(1 << UInt64(events[last.call].op % 64))
                unlift(last.call)
                entry = last.call
                startChoice = last.choice + 1
            }
        }
        if next[count] == count { return (.linearizable, steps) }
        return (.violation(key: key, linearizedPrefix: longest, stuckAt: Self.unique(stuck).map { ops[$0] }), steps)
    }

    static func unique(_ xs: [Int]) -> [Int] {
        var out: [Int] = []
        for x in xs where !out.contains(x) { out.append(x) }
        return out
    }
}

/// One line of a recorded history, as a client writes it: a call (`invoke`) and, later, how it
/// ended (`ok`, `fail`, `unknown`), each with the time it happened. A client has at most one call
/// outstanding; a call with no end in the history ended unknown.
public struct HistoryEvent: Sendable, Hashable {
    public enum Phase: String, Sendable, Hashable, CaseIterable { case invoke, ok, fail, unknown }

    public var client: Int
    public var phase: Phase
    public var kind: HistoryOperation.Kind
    public var key: String
    /// `invoke` of a create or an update: the value written. `ok` of a read: the value read
    /// (nil: absent).
    public var value: String?
    /// `ok` of a write: whether it was applied or refused.
    public var applied: Bool?
    public var time: Int64

    public init(client: Int, phase: Phase, kind: HistoryOperation.Kind, key: String, value: String? = nil, applied: Bool? = nil, time: Int64) {
        self.client = client
        self.phase = phase
        self.kind = kind
        self.key = key
        self.value = value
        self.applied = applied
        self.time = time
    }
}

extension Linearizability {
    /// Pairs each client's calls with their ends, in the order given (each client's lines are
    /// in its own order). Refuses a history that is not one: an end without a call, a second
    /// call while one is outstanding, an end that names another operation or key, time going
    /// backwards for a client, an `ok` write without `applied`.
    public static func operations(from events: [HistoryEvent]) throws(HistoryError) -> [HistoryOperation] {
        var open: [Int: (HistoryEvent, Int)] = [:]
        var lastTime: [Int: Int64] = [:]
        var out: [HistoryOperation] = []
        for (line, e) in events.enumerated() {
            let at = "line \(line + 1) (client \(e.client))"
            if let t = lastTime[e.client], e.time < t { throw HistoryError("\(at): time \(e.time) is before the client's previous \(t)") }
            lastTime[e.client] = e.time
            switch e.phase {
            case .invoke:
                if let (pending, l) = open[e.client] {
                    throw HistoryError("\(at): a call while its \(pending.kind.rawValue) of \(pending.key) from line \(l + 1) is outstanding")
                }
                open[e.client] = (e, line)
            case .ok, .fail, .unknown:
                guard let (call, _) = open.removeValue(forKey: e.client) else { throw HistoryError("\(at): an end (\(e.phase.rawValue)) without a call") }
                guard call.kind == e.kind, call.key == e.key else {
                    throw HistoryError("\(at): ends \(e.kind.rawValue) of \(e.key), but the call was \(call.kind.rawValue) of \(call.key)")
                }
                let outcome: HistoryOperation.Outcome
                switch e.phase {
                case .fail: outcome = .failed
                case .unknown: outcome = .unknown
                default:
                    if e.kind == .read {
                        outcome = .ok(.value(e.value))
                    } else {
                        guard let applied = e.applied else { throw HistoryError("\(at): an ok \(e.kind.rawValue) must say whether it was applied") }
                        outcome = .ok(applied ? .applied : .rejected)
                    }
                }
                out.append(HistoryOperation(client: e.client, kind: e.kind, key: e.key, value: call.value, invokedAt: call.time, completedAt: e.time, outcome: outcome))
            }
        }
        for (_, (call, _)) in open.sorted(by: { $0.key < $1.key }) {
            out.append(HistoryOperation(client: call.client, kind: call.kind, key: call.key, value: call.value, invokedAt: call.time, completedAt: call.time, outcome: .unknown))
        }
        return out
    }
}
