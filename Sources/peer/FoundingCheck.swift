import Foundation
import Logging
import PeerAPI
import Raft

/// Before a configured peer with no log founds the file's cluster (its empty log starting with
/// every configured peer as a voter), it asks the other members whether a cluster already runs
/// without it. If one answers with a configuration that does not hold this peer, founding would
/// be wrong and dangerous: after `peer recover`, or once this peer was removed, the members whose
/// data was wiped could elect an empty-log leader among themselves beside the real cluster. It
/// refuses instead, saying how to join (`peer run --existing`, `peer members add`).
///
/// It protects only while a member answers; docs/operations.md §Recovery says to start every
/// member other than the survivor with `--existing`.
enum FoundingCheck {
    /// `probed`: the other members' answers (`MemberProbe.others`), asked once for this check
    /// and StaleDataCheck.
    static func refuseIfTheClusterRunsWithoutMe(_ s: RuntimeSettings, probed: [MemberProbe.Answer], logger: Logger) throws {
        let answers = probed.compactMap { a in a.status.map { (a.id, $0) } }
        for (id, status) in answers where !status.voters.isEmpty && !status.voters.contains(s.selfID) && !status.learners.contains(s.selfID) {
            throw CLIError("""
                peer \(s.selfID) has no log in \(s.dataDirectory), but member \(id) answers for a running cluster whose configuration \
                does not hold it (voters \(status.voters.sorted().map(String.init).joined(separator: ", ")), term \(status.term), \
                last index \(status.lastIndex)): founding a cluster now would split it. Start this peer with `peer run --existing` and \
                add it with `peer members add \(s.selfID)` (docs/operations.md §Recovery)
                """)
        }
        logger.info("no log yet: founding the cluster of the config file's \(s.seeds.count) peer(s)", metadata: ["answered": "\(answers.map(\.0))"])
    }
}
