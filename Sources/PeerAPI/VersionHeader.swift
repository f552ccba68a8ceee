import HTTPTypes
import Foundation

/// `X-Peer-Version: 0.2.0-dev; protocol=1-2` on the answers to the leader's data-plane poll
/// (`GET /v1/dataplane`): the build a member runs and the cluster-model protocol versions it
/// applies. The leader records them in the state (`ReportInstanceVersion`) and raises the cluster
/// version only when every member runs the target (docs/operations.md §Upgrades).
public enum VersionHeader {
    public static let nameText = "X-Peer-Version"
    static let name = HTTPField.Name(nameText)!

    public static func value(build: String, min: UInt32, max: UInt32) -> String { "\(build); protocol=\(min)-\(max)" }

    /// (build, min, max), or nil when the value is not of that form.
    public static func parse(_ value: String) -> (build: String, min: UInt32, max: UInt32)? {
        let parts = value.split(separator: ";", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64, parts[1].hasPrefix("protocol=") else { return nil }
        let range = parts[1].dropFirst("protocol=".count).split(separator: "-").map { UInt32($0) }
        guard range.count == 2, let lo = range[0], let hi = range[1], 1 <= lo, lo <= hi else { return nil }
        return (parts[0], lo, hi)
    }
}
