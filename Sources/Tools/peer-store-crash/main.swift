// The child process of the crash test (Tests/PeerStoreTests/CrashTests.swift): it writes to a
// PeerStore as fast as it can and reports on stdout, one line each,
//   "R"                 the store is open (after recovery),
//   "I <op>"            it is about to perform <op>,
//   "A"                 <op> returned, so it is durable (acknowledged),
//   "E <message>"       a write failed (then it exits 2),
// until the parent kills it with SIGKILL. Ops, written so the parent can replay them:
//   "P <first> <count> <term> <hsTerm> <hsVote> <hsCommit>"  persist entries + hard state
//   "C <index>"                                               compact up to index
//   "T <index> <term> <offset> <bytes>"                       stage snapshot chunks (invisible)
//   "N <index> <term> <hsTerm> <hsVote> <hsCommit>"           stage the last chunks, install the
//                                                             snapshot, write the hard state
// A snapshot (index, term) being staged or installed has data `crashPayload(index:term: 0)`.
// Entry payloads are `crashPayload(index:term:)`, which the test repeats byte for byte.
//
// Usage: peer-store-crash <db-path> <cluster-id> <peer-id> <seed> [<file-size-limit-bytes>]
//
// With a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) the kernel fails every write past
// that size with EFBIG: a real I/O error under SQLite. The child then reports the error, tries
// one more write, reports its refusal as "H <message>", and exits 2.

import PeerStore
import Raft

#if canImport(Glibc)
import Glibc
#endif

/// Deterministic payload for entry (index, term); the test has the same function.
func crashPayload(index: LogIndex, term: Term) -> [UInt8] {
    var rng = SplitMix64(seed: index &* 0x9E37_79B9 &+ term)
    let size = Int(rng.next() % 300)
    return (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}

/// The vote is a function of term and commit: a torn hard state would break the relation.
func crashVote(term: Term, commit: LogIndex) -> NodeID { (term &* 2_654_435_761 &+ commit) % 5 + 1 }

func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + off, $0.count - off) }
        if n <= 0 { exit(3) }
        off += n
    }
}

let args = CommandLine.arguments
guard args.count == 5 || args.count == 6, let peerID = NodeID(args[3]), let seed = UInt64(args[4]) else {
    say("E usage: peer-store-crash <db-path> <cluster-id> <peer-id> <seed> [<file-size-limit-bytes>]")
    exit(64)
}
/// Under a file size limit the log must grow to reach it: no compaction then.
let fileSizeLimited = args.count == 6
if args.count == 6, let limit = UInt64(args[5]) {
    signal(SIGXFSZ, SIG_IGN)
    var rl = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
    guard setrlimit(Int32(RLIMIT_FSIZE.rawValue), &rl) == 0 else {
        say("E setrlimit failed: \(errno)")
        exit(2)
    }
}

let store: PeerStore
do {
    var options = PeerStore.Options()
    // A small WAL under a file size limit, so that the limit is reached after few writes.
    if fileSizeLimited { options.walAutocheckpointPages = 64 }
    // Snapshots span several rows, so a kill can land between rows of one staging write.
    options.snapshotRowBytesMax = 32
    store = try PeerStore.open(path: args[1], clusterID: args[2], peerID: peerID, initialConf: ConfState(voters: [1, 2, 3]), options: options)
} catch {
    say("E \(error)")
    exit(2)
}
say("R")

var rng = SplitMix64(seed: seed)
var hs = store.hardState
var term = max(hs.term, 1)
/// Bounds the log so that the parent's check of the whole log stays cheap.
let logEntriesMax: LogIndex = 2000
/// A snapshot being received, as a follower's driver stages it: (metadata, data, bytes staged).
var staging: (meta: SnapshotMetadata, data: [UInt8], staged: Int)?

while true {
    do {
        let first = try store.firstIndex(), last = try store.lastIndex()
        let roll = rng.next() % 100
        if !fileSizeLimited && staging == nil && roll < 3 {
            // A leader's snapshot beyond our log starts arriving (the core installs only those).
            let index = last + 1 + rng.next() % 50
            staging = (SnapshotMetadata(index: index, term: term, conf: ConfState(voters: [1, 2, 3])), crashPayload(index: index, term: 0), 0)
        }
        // Free a replaced snapshot's rows now and then (a kill may land inside; it must never
        // touch the current snapshot or the log).
        if rng.next() % 3 == 0 { try store.reclaimSpace() }
        if var st = staging {
            // Stage one to three chunks of up to 40 bytes per write, as Readys would.
            let snap = Snapshot(metadata: st.meta, data: st.data)
            var chunks: [SnapshotChunk] = []
            var done = false
            for _ in 0...(rng.next() % 3) where !done {
                let c = SnapshotChunk.cut(from: snap, offset: UInt64(st.staged), maxBytes: 1 + Int(rng.next() % 40))
                chunks.append(c)
                st.staged += c.data.count
                done = c.done
            }
            let from = chunks[0].offset
            if done {
                let newHS = HardState(term: term, vote: crashVote(term: term, commit: st.meta.index), commit: st.meta.index)
                say("I N \(st.meta.index) \(st.meta.term) \(newHS.term) \(newHS.vote) \(newHS.commit)")
                try store.persist(snapshotChunks: chunks, installSnapshot: st.meta, hardState: newHS)
                hs = newHS
                staging = nil
            } else {
                say("I T \(st.meta.index) \(st.meta.term) \(from) \(st.staged - Int(from))")
                try store.persist(snapshotChunks: chunks)
                staging = st
            }
        } else if !fileSizeLimited && hs.commit >= first && (roll < 5 || last - first > logEntriesMax) {
            say("I C \(hs.commit)")
            let conf = ConfState(voters: [1, 2, 3])
            let data = crashPayload(index: hs.commit, term: 0)
            if rng.next() % 2 == 0 {
                try store.compact(upTo: hs.commit, conf: conf, data: data)
            } else {
                // The running peer's way: pieces in their own transactions, then the finish
                // (a kill between pieces must leave the old snapshot and the log intact).
                let snap = Snapshot(metadata: SnapshotMetadata(index: hs.commit, term: try store.term(hs.commit), conf: conf), data: data)
                var offset: UInt64 = 0
                var done = false
                while !done {
                    let c = SnapshotChunk.cut(from: snap, offset: offset, maxBytes: 1 + Int(rng.next() % 40))
                    try store.stageCompaction(c)
                    offset += UInt64(c.data.count)
                    done = c.done
                }
                try store.finishCompaction(snap.metadata)
            }
        } else {
            var from = last + 1
            if roll < 15 && last > hs.commit && last >= first {
                // A new leader overwrites our uncommitted suffix (Raft §5.3).
                term += 1
                from = hs.commit + 1 + rng.next() % (last - hs.commit)
            }
            let count = rng.next() % 10 == 0 ? Int(rng.next() % 64) + 1 : Int(rng.next() % 16) + 1
            let batch = (0..<count).map { i in
                let index = from + LogIndex(i)
                return Entry(term: term, index: index, data: crashPayload(index: index, term: term))
            }
            let newLast = from + LogIndex(count) - 1
            let commit = min(newLast, hs.commit + rng.next() % LogIndex(count + 1))
            let newHS = HardState(term: term, vote: crashVote(term: term, commit: commit), commit: commit)
            say("I P \(from) \(count) \(term) \(newHS.term) \(newHS.vote) \(newHS.commit)")
            try store.persist(entries: batch, hardState: newHS)
            hs = newHS
        }
        say("A")
    } catch {
        say("E \(error)")
        do {
            try store.persist(hardState: HardState(term: term + 1, vote: 0, commit: hs.commit))
            say("E a write after a failed write was accepted")
        } catch {
            say("H \(error)")
        }
        exit(2)
    }
}
