import Foundation

/// Prints rows under a header in space-padded columns, like `etcdctl -w table` without borders.
func printTable(header: [String], rows: [[String]]) {
    let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
    for row in [header] + rows {
        let cells = row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
        // No trailing blanks after the last column.
        var line = cells.joined(separator: "  ")
        while line.hasSuffix(" ") { line.removeLast() }
        print(line)
    }
}
