import Foundation
import Logging
import PeerNode
import Raft

/// Before a peer starts on its data dir, it asks the other members what they saw of it
/// (`MemberStatus.witnessed`): the highest term it sent and the last append it acknowledged.
/// A peer persists both before it sends them, so a data dir that holds less was restored from
/// an older copy or wiped. Starting on it could let this peer vote a second time in a term it
/// forgot (two leaders in one term), or lose entries the leader counted as stored here when it
/// committed them. It refuses instead and says how to bring the member back as a new one.
///
/// It protects while a member that saw the later state answers (members remember only since
/// their own process started); with none answering it starts (docs/operations.md §A data dir
/// older than the cluster remembers).
enum StaleDataCheck {
    /// `answers`: the other members' (`MemberProbe.others`), asked once for this check and
    /// FoundingCheck.
    static func refuseIfOlderThanTheClusterRemembers(_ s: RuntimeSettings, answers: [MemberProbe.Answer], term: Term, lastIndex: LogIndex, logger: Logger) throws {
        for answer in answers {
            guard let w = answer.status?.witnessed?.first(where: { $0.id == s.selfID }) else { continue }
            let seen = Witnessed(term: w.term, ackTerm: w.ackTerm, ackIndex: w.ackIndex)
            guard let why = seen.staleness(term: term, lastIndex: lastIndex) else { continue }
            throw CLIError("""
                peer \(s.selfID)'s data dir \(s.dataDirectory) is older than what member \(answer.id) saw of this peer: \(why). \
                It was restored from an older copy or emptied; starting on it could make this peer vote twice in one term or \
                forget entries the cluster committed with its acknowledgement, so it does not start. Keep the directory aside, \
                then bring the member back as a new one: `peer members remove \(s.selfID)`, an empty data dir, `peer run --existing`, \
                `peer members add \(s.selfID)` (docs/operations.md §A data dir older than the cluster remembers)
                """)
        }
        logger.info("data dir checked against what \(answers.count) answering member(s) saw of this peer", metadata: [
            "term": "\(term)", "last": "\(lastIndex)", "answered": "\(answers.map(\.id))",
        ])
    }
}
