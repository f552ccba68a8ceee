import ArgumentParser
import Foundation
import History

/// `peer history check FILE`: is a recorded history of tenant operations linearizable
/// (docs/testing.md §Histories)? The chaos workload writes such files; anyone can write one.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Record the history of concurrent clients, and check a history for linearizability.",
        subcommands: [HistoryCheck.self, HistoryRecord.self])
}

struct HistoryCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check FILE (JSON lines: invoke and ok/fail/unknown per client call) for linearizability.",
        discussion: """
            Each line: {"client": 1, "type": "invoke|ok|fail|unknown", "f": "create|update|delete|read",
            "key": "tenant", "value": "...", "applied": true, "time": 123}. An invoke of a create or
            update carries the value written; an ok of a read the value read (null: absent); an ok of
            a write whether it was applied. Times are one monotonic clock. Exit status: 0
            linearizable, 1 a violation, 2 the search ran out of its budget (neither).
            """)

    @Argument(help: "The history file (JSON lines).")
    var file: String

    @Option(help: "Search steps allowed per key before the verdict is unknown.")
    var budget: Int = 5_000_000

    @Option(help: "table or json.")
    var output: OutputFormat = .table

    /// One line of the file.
    struct Line: Decodable {
        var client: Int
        var type: String
        var f: String
        var key: String
        var value: String?
        var applied: Bool?
        var time: Int64
    }

    static let linesMax = 10_000_000

    func run() throws {
        guard budget > 0 else { throw ValidationError("--budget must be positive") }
        let events = try Self.read(file)
        let report: CheckReport
        do {
            report = try Linearizability.check(try Linearizability.operations(from: events), stepBudget: budget)
        } catch {
            throw CLIError("\(file): \(error)")
        }
        let (yes, code): (String, Int32)
        switch report.verdict {
        case .linearizable: (yes, code) = ("yes", 0)
        case .violation: (yes, code) = ("no", 1)
        case .unknown: (yes, code) = ("unknown", 2)
        }
        switch output {
        case .json:
            var object: [String: Any] = ["linearizable": yes, "keys": report.keys, "operations": report.operations, "dropped": report.dropped, "steps": report.steps]
            if case .violation(let key, let prefix, let stuck) = report.verdict {
                object["key"] = key
                object["linearizedPrefix"] = prefix
                object["stuckAt"] = stuck.map(Self.describe)
            }
            if case .unknown(let key, _) = report.verdict { object["key"] = key }
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        case .table:
            print("linearizable=\(yes) keys=\(report.keys) ops=\(report.operations) dropped=\(report.dropped) steps=\(report.steps)")
            if case .violation(let key, let prefix, let stuck) = report.verdict {
                print("key \(key): no order explains it; after \(prefix) operation(s) linearized, none of these fits:")
                for op in stuck { print("  " + Self.describe(op)) }
            }
            if case .unknown(let key, let steps) = report.verdict {
                print("key \(key): the search stopped after \(steps) steps (--budget) without a verdict")
            }
        }
        if code != 0 { throw ExitCode(code) }
    }

    static func describe(_ op: HistoryOperation) -> String {
        let result: String
        switch op.outcome {
        case .ok(.applied): result = "applied"
        case .ok(.rejected): result = "rejected"
        case .ok(.value(let v)): result = "read \(v.map { "\"\($0)\"" } ?? "nothing")"
        case .failed: result = "failed"
        case .unknown: result = "unknown"
        }
        let wrote = op.value.map { " \"\($0)\"" } ?? ""
        return "client \(op.client) \(op.kind.rawValue) \(op.key)\(op.kind == .create || op.kind == .update ? wrote : "") [\(op.invokedAt), \(op.outcome == .unknown ? "..." : String(op.completedAt))]: \(result)"
    }

    /// Every line decoded and checked; a line that is not one names its number and why.
    static func read(_ path: String) throws -> [HistoryEvent] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw CLIError("cannot read \(path): \(error.localizedDescription)") }
        var events: [HistoryEvent] = []
        let decoder = JSONDecoder()
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard events.count < linesMax else { throw CLIError("\(path): more than \(linesMax) lines") }
            let decoded: Line
            do { decoded = try decoder.decode(Line.self, from: Data(line.utf8)) } catch {
                throw CLIError("\(path) line \(i + 1): not a history line: \(error)")
            }
            guard let phase = HistoryEvent.Phase(rawValue: decoded.type) else {
                throw CLIError("\(path) line \(i + 1): type \"\(decoded.type)\" is not one of \(HistoryEvent.Phase.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let kind = HistoryOperation.Kind(rawValue: decoded.f) else {
                throw CLIError("\(path) line \(i + 1): f \"\(decoded.f)\" is not one of \(HistoryOperation.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            events.append(HistoryEvent(client: decoded.client, phase: phase, kind: kind, key: decoded.key, value: decoded.value, applied: decoded.applied, time: decoded.time))
        }
        return events
    }
}
