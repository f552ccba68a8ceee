import Raft

// The last events before a violation, kept in a ring and formatted only when reported.

extension Simulation {
    /// Frequent events are kept as values and formatted only when a violation is reported.
    enum TraceEvent {
        case tick(event: Int, now: UInt64)
        case deliver(event: Int, now: UInt64, Message, StepResult)
        case lost(event: Int, now: UInt64, Message)
        case text(event: Int, now: UInt64, String)

        var line: String {
            switch self {
            case .tick(let e, let t): return "[e\(e) t\(t)] tick \(t)"
            case .deliver(let e, let t, let m, let r):
                let outcome: String
                switch r {
                case .accepted: outcome = ""
                case .ignored(let why): outcome = " => ignored(\(why))"
                }
                return "[e\(e) t\(t)] deliver \(m)\(outcome)"
            case .lost(let e, let t, let m): return "[e\(e) t\(t)] lost (\(m.to) down): \(m)"
            case .text(let e, let t, let s): return "[e\(e) t\(t)] \(s)"
            }
        }
    }

    enum TraceKind {
        case tick
        case deliver(Message, StepResult)
        case lost(Message)
    }

    func record(_ kind: TraceKind) {
        let e = counters.events
        switch kind {
        case .tick: push(.tick(event: e, now: now))
        case .deliver(let m, let r): push(.deliver(event: e, now: now, m, r))
        case .lost(let m): push(.lost(event: e, now: now, m))
        }
    }

    func note(_ s: String) {
        push(.text(event: counters.events, now: now, s))
    }

    private func push(_ event: TraceEvent) {
        if trace.count < options.traceEventsMax {
            trace.append(event)
        } else {
            trace[traceStart] = event
            traceStart = (traceStart + 1) % trace.count
        }
    }

    func orderedTrace() -> [String] {
        (trace[traceStart...] + trace[..<traceStart]).map(\.line)
    }
}
