import ArgumentParser
import Failpoints

/// `peer failpoints`: every named failpoint, for chaos scripts to iterate over
/// (`PEER_FAILPOINT=NAME peer run ...` makes that peer exit there; docs/testing.md).
struct FailpointsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failpoints",
        abstract: "List the failpoints a peer can be told to die at (PEER_FAILPOINT=NAME).")

    @Flag(help: "Only the names, one per line.")
    var names = false

    func run() throws {
        if names {
            for f in Failpoint.allCases { print(f.rawValue) }
            return
        }
        var rows = [["FAILPOINT", "WHERE THE PROCESS EXITS (STATUS \(Failpoint.exitStatus))"]]
        for f in Failpoint.allCases { rows.append([f.rawValue, f.meaning]) }
        print(Table.render(rows), terminator: "")
    }
}
