import Foundation

/// Rows under a header in space-padded columns, like `etcdctl -w table` without borders; no
/// trailing blanks after the last column.
enum Table {
    /// `12.3 MiB`, `840 KiB`, `512 B`.
    static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: value < 10 ? "%.1f" : "%.0f", value) + " " + units[unit]
    }

    static func render(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        let widths = first.indices.map { i in rows.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0 }
        return rows.map { row in
            var line = row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ")
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }.joined(separator: "\n") + "\n"
    }
}

/// Prints `header` and `rows` as a table.
func printTable(header: [String], rows: [[String]]) {
    print(Table.render([header] + rows), terminator: "")
}
