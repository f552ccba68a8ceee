/// The node's view of the log: what is durable (`storage`) followed by what is not yet
/// (`unstable`, handed to the driver in `Ready.entries`, stable after `advance`).
///
/// Invariants:
/// - `unstableOffset == storage.lastIndex() + 1` whenever `unstable` is empty or after a
///   truncation is persisted; entries in `unstable` are contiguous from `unstableOffset`.
/// - `applied <= committed <= lastIndex`.
struct RaftLog {
    let storage: any RaftStorage
    /// A snapshot received from the leader, completely staged, whose install the driver has not
    /// yet persisted (`Ready.snapshot`). Until then it stands in for the whole log before it.
    var unstableSnapshot: SnapshotMetadata?
    /// Entries not yet persisted; `unstable[0].index == unstableOffset`.
    var unstable: [Entry] = []
    var unstableOffset: LogIndex

    /// Highest index known to be stored on a quorum.
    var committed: LogIndex
    /// Highest index handed to the application (in a Ready that was then advanced).
    var applied: LogIndex

    /// Set once a storage read failed; the node halts.
    var storageFailure: String? { failureBox.value }

    init(storage: any RaftStorage, committed: LogIndex, applied: LogIndex) throws(StorageError) {
        self.storage = storage
        let first = try storage.firstIndex()
        let last = try storage.lastIndex()
        unstableOffset = last + 1
        precondition(committed <= last, "hard state commit \(committed) beyond the stored log's last index \(last): the log was truncated or lost")
        self.committed = max(committed, first - 1)
        self.applied = min(max(applied, first - 1), self.committed)
    }

    // MARK: - Reading

    var firstIndex: LogIndex {
        if let s = unstableSnapshot { return s.index + 1 }
        return read { () throws(StorageError) -> LogIndex in try storage.firstIndex() } ?? unstableOffset
    }

    var lastIndex: LogIndex {
        if let last = unstable.last { return last.index }
        if let s = unstableSnapshot { return s.index }
        return read { () throws(StorageError) -> LogIndex in try storage.lastIndex() } ?? (unstableOffset - 1)
    }

    var lastTerm: Term { term(lastIndex) ?? 0 }

    /// The term of the entry at `index`, or nil if it is compacted, not present, or unreadable.
    /// Callers treat nil as "does not match" (the safe answer for every rule that uses it).
    func term(_ index: LogIndex) -> Term? {
        if index >= unstableOffset {
            let i = Int(index - unstableOffset)
            if i < unstable.count { return unstable[i].term }
            if i == 0, let s = unstableSnapshot, s.index == index { return s.term }
            return nil
        }
        if let s = unstableSnapshot {
            return index == s.index ? s.term : nil
        }
        do {
            return try storage.term(index)
        } catch .failed(let why) {
            noteFailure(why)
            return nil
        } catch {
            return nil
        }
    }

    func matchTerm(_ index: LogIndex, _ term: Term) -> Bool {
        self.term(index) == term
    }

    /// Raft paper §5.4.1: a candidate's log is at least as up to date as ours.
    func isUpToDate(lastIndex candIndex: LogIndex, lastTerm candTerm: Term) -> Bool {
        let t = lastTerm
        return candTerm > t || (candTerm == t && candIndex >= lastIndex)
    }

    /// Entries `[lo, hi)` up to `maxBytes` (at least one entry if any exist).
    /// Returns nil if `lo` is compacted or a read failed.
    func slice(_ lo: LogIndex, _ hi: LogIndex, maxBytes: Int) -> [Entry]? {
        if lo >= hi { return [] }
        if lo < firstIndex { return nil }
        precondition(hi <= lastIndex + 1, "slice [\(lo), \(hi)) beyond last index \(lastIndex)")
        var out: [Entry] = []
        if lo < unstableOffset {
            let storedHi = min(hi, unstableOffset)
            do {
                out = try storage.entries(lo, storedHi, maxBytes: maxBytes)
            } catch .failed(let why) {
                noteFailure(why)
                return nil
            } catch {
                return nil
            }
            if LogIndex(out.count) < storedHi - lo { return out }
        }
        if hi > unstableOffset {
            var size = out.reduce(0) { $0 + $1.sizeBytes }
            let start = Int(max(lo, unstableOffset) - unstableOffset)
            let end = Int(hi - unstableOffset)
            for i in start..<end {
                let e = unstable[i]
                size += e.sizeBytes
                if !out.isEmpty && size > maxBytes { break }
                out.append(e)
            }
        }
        return out
    }

    /// Committed entries not yet handed out, limited to what is durable locally: the core
    /// hands the application only entries that the driver has persisted (apply after persist).
    func nextCommittedEntries(maxBytes: Int) -> [Entry] {
        if unstableSnapshot != nil { return [] }
        let hi = min(committed, unstableOffset - 1)
        guard applied < hi else { return [] }
        return slice(applied + 1, hi + 1, maxBytes: maxBytes) ?? []
    }

    var hasNextCommittedEntries: Bool {
        unstableSnapshot == nil && applied < min(committed, unstableOffset - 1)
    }

    /// Finds where `entries` first disagrees with our log: the index of the first entry whose
    /// term differs or that we do not have, or 0 if every entry is already present.
    func findConflict(_ entries: [Entry]) -> LogIndex {
        for e in entries where !matchTerm(e.index, e.term) {
            return e.index
        }
        return 0
    }

    /// Fast backtracking (thesis §5.3, etcd-io/raft `findConflictByTerm`): the largest index
    /// `<= index` whose term is `<= term`. Every entry after it in our log has a larger term than
    /// `term`, so it cannot match the other side's log.
    func findConflictByTerm(index: LogIndex, term: Term) -> (LogIndex, Term) {
        var i = index
        while true {
            guard let t = self.term(i) else { return (i, 0) }
            if t <= term { return (i, t) }
            if i == 0 { return (0, 0) }
            i -= 1
        }
    }

    // MARK: - Writing

    /// Appends entries after truncating any conflicting suffix. Returns the new last index.
    /// Precondition: never truncates at or below `committed` (that would change a committed entry).
    @discardableResult
    mutating func append(_ entries: [Entry]) -> LogIndex {
        guard let first = entries.first else { return lastIndex }
        precondition(first.index > committed, "append at \(first.index) would overwrite committed entry (commit \(committed))")
        let after = first.index - 1
        if after + 1 == unstableOffset + LogIndex(unstable.count) {
            unstable.append(contentsOf: entries)
        } else if after + 1 <= unstableOffset {
            // Replaces everything unstable and truncates stored entries from `first.index` on:
            // the driver learns of the truncation because `Ready.entries` starts below its last index.
            unstableOffset = first.index
            unstable = entries
        } else {
            let keep = Int(after + 1 - unstableOffset)
            unstable.removeSubrange(keep...)
            unstable.append(contentsOf: entries)
        }
        return lastIndex
    }

    /// Follower side of AppendEntries (paper §5.3 steps 2–5). Returns the index of the last new
    /// entry if `(index, logTerm)` matches our log, nil otherwise.
    mutating func maybeAppend(index: LogIndex, logTerm: Term, committed leaderCommit: LogIndex, entries: [Entry]) -> LogIndex? {
        guard matchTerm(index, logTerm) else { return nil }
        let lastNew = index + LogIndex(entries.count)
        let conflict = findConflict(entries)
        if conflict != 0 {
            precondition(conflict > committed, "entry \(conflict) conflicts with committed entry (commit \(committed))")
            append(Array(entries[Int(conflict - index - 1)...]))
        }
        // Never commit beyond what this message proved matches the leader's log.
        commit(to: min(leaderCommit, lastNew))
        return lastNew
    }

    mutating func commit(to index: LogIndex) {
        if index > committed {
            precondition(index <= lastIndex, "commit \(index) beyond last index \(lastIndex)")
            committed = index
        }
    }

    /// Leader side: commit `index` if it is an entry of `term` (paper §5.4.2, Figure 8).
    mutating func maybeCommit(index: LogIndex, term: Term) -> Bool {
        if index > committed, self.term(index) == term {
            commit(to: index)
            return true
        }
        return false
    }

    /// The driver persisted every entry handed out up to `index` (which had term `term`).
    /// If the entry was replaced meanwhile, nothing is marked stable.
    mutating func stable(to index: LogIndex, term: Term) {
        guard index >= unstableOffset, let t = self.term(index), t == term else { return }
        let n = Int(index - unstableOffset) + 1
        guard n <= unstable.count else { return }
        unstable.removeFirst(n)
        unstableOffset = index + 1
    }

    mutating func stableSnapshot(_ metadata: SnapshotMetadata) {
        if unstableSnapshot == metadata {
            unstableSnapshot = nil
        }
    }

    /// Replaces the whole log by a snapshot the driver will install (paper §7: "discard the
    /// entire log"). Only called when our log does not hold the snapshot's last entry, so no
    /// entry we keep could be one the snapshot contradicts. The application restores its state
    /// from the snapshot, so `applied` jumps too.
    mutating func restore(_ metadata: SnapshotMetadata) {
        precondition(metadata.index > committed, "restore of snapshot \(metadata.index) at or below commit \(committed)")
        committed = metadata.index
        applied = metadata.index
        unstableSnapshot = metadata
        unstableOffset = metadata.index + 1
        unstable = []
    }

    // MARK: - Snapshot reads (bounded: one chunk at a time)

    /// The current snapshot's metadata, or nil if the read failed (the node then halts).
    func snapshotMetadata() -> SnapshotMetadata? {
        read { () throws(StorageError) -> SnapshotMetadata in try storage.snapshotMetadata() }
    }

    /// One chunk of the current snapshot, or nil if the read failed (the node then halts).
    /// A storage that breaks the chunk contract is a bug in the driver's storage: it traps.
    func snapshotChunk(offset: UInt64, maxBytes: Int) -> SnapshotChunk? {
        guard let c = read({ () throws(StorageError) -> SnapshotChunk in try storage.snapshotChunk(offset: offset, maxBytes: maxBytes) }) else {
            return nil
        }
        let end = c.offset + UInt64(c.data.count)
        precondition(c.data.count <= maxBytes && end <= c.totalBytes && c.done == (end == c.totalBytes)
                     && (c.done || !c.data.isEmpty) && c.offset == min(offset, c.totalBytes),
                     "storage returned a bad snapshot chunk for offset \(offset), maxBytes \(maxBytes): offset \(c.offset), \(c.data.count) bytes of \(c.totalBytes), done \(c.done)")
        return c
    }

    // MARK: - Failures

    private func noteFailure(_ why: String) {
        failureBox.value = failureBox.value ?? why
    }

    /// Reads are non-mutating, yet a failed read must be remembered: a tiny box keeps it.
    let failureBox = FailureBox()

    private func read<T>(_ f: () throws(StorageError) -> T) -> T? {
        do {
            return try f()
        } catch .failed(let why) {
            noteFailure(why)
            return nil
        } catch {
            return nil
        }
    }
}

/// Holds the first storage failure seen by a read. Reference type so non-mutating reads can set it.
final class FailureBox {
    var value: String?
}
