import Foundation

/// Rows under a header in space-padded columns, like `etcdctl -w table` without borders; no
/// trailing blanks after the last column.
enum Table {
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
