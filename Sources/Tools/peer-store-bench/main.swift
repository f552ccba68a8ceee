// Storage benchmarks for PeerStore. Not a test: numbers go to docs/benchmarks.md.
//
//   swift build -c release --product peer-store-bench
//   .build/release/peer-store-bench [--dir DIR] [--samples N] [--open-entries N]
//
// Measures, on the file system of DIR (default: the system temp dir):
//  1. durable single-entry append latency (p50/p99), against a raw write+fsync (and
//     write+fdatasync) of a small record to a file in the same directory, sampled in
//     alternating blocks in the same run so both see the same disk and the same neighbours;
//  2. batched append throughput of 256-byte entries at batches of 1, 16 and 256;
//  3. open-to-ready time (open + RaftNode init) of a store holding a long log.
//
// With --snapshot-install-mb N it measures only a snapshot install of an N MB state between two
// nodes (SnapshotInstall.swift): time and peak memory.

import Foundation
import PeerStore
import Raft

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Arguments

var dirArg = NSTemporaryDirectory()
var samples = 2000
var openEntries: LogIndex = 1_000_000
var snapshotInstallMB: Int?
var chunkKiB = 1024
var it = CommandLine.arguments.dropFirst().makeIterator()
while let a = it.next() {
    switch a {
    case "--dir": dirArg = it.next() ?? dirArg
    case "--samples": samples = Int(it.next() ?? "") ?? samples
    case "--open-entries": openEntries = LogIndex(it.next() ?? "") ?? openEntries
    case "--snapshot-install-mb": snapshotInstallMB = Int(it.next() ?? "")
    case "--chunk-kb": chunkKiB = Int(it.next() ?? "") ?? chunkKiB
    default:
        FileHandle.standardError.write("usage: peer-store-bench [--dir DIR] [--samples N] [--open-entries N] [--snapshot-install-mb N [--chunk-kb K]]\n".data(using: .utf8)!)
        exit(64)
    }
}
let dir = (dirArg as NSString).appendingPathComponent("peer-store-bench-\(getpid())")
try? FileManager.default.removeItem(atPath: dir)
try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }

if let mb = snapshotInstallMB {
    guard mb > 0, chunkKiB > 0 else { fail("--snapshot-install-mb and --chunk-kb must be positive") }
    runSnapshotInstallBench(dir: dir, stateMB: mb, chunkKiB: chunkKiB)
    try? FileManager.default.removeItem(atPath: dir)
    exit(0)
}

let entryBytes = 256
let conf = ConfState(voters: [1, 2, 3])

func nowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func percentile(_ sorted: [UInt64], _ p: Double) -> Double {
    Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000
}

func fail(_ what: String) -> Never {
    FileHandle.standardError.write("peer-store-bench: \(what)\n".data(using: .utf8)!)
    exit(1)
}

func openStore(_ name: String) -> PeerStore {
    do {
        return try PeerStore.open(path: dir + "/" + name, clusterID: "bench", peerID: 1, initialConf: conf)
    } catch {
        fail("\(error)")
    }
}

// MARK: - 1. Latency against raw fsync

/// Writes one record of `entryBytes` bytes and syncs it: the physical floor of a durable log.
/// `overwrite` rewrites the same (already allocated) block instead of appending.
final class RawLog {
    let fd: Int32
    let record = [UInt8](repeating: 0xAB, count: entryBytes)
    let dataOnly: Bool
    let overwrite: Bool
    var offset: off_t = 0

    init(path: String, dataOnly: Bool, overwrite: Bool = false) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { fail("open \(path): \(errno)") }
        self.dataOnly = dataOnly
        self.overwrite = overwrite
    }

    func append() {
        let n = record.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, offset) }
        if n != record.count { fail("write: \(errno)") }
        if !overwrite { offset += off_t(n) }
        if (dataOnly ? fdatasync(fd) : fsync(fd)) != 0 { fail("sync: \(errno)") }
    }
}

let rawFsync = RawLog(path: dir + "/raw-fsync.log", dataOnly: false)
let rawFdatasync = RawLog(path: dir + "/raw-fdatasync.log", dataOnly: true)
let rawOverwrite = RawLog(path: dir + "/raw-overwrite.log", dataOnly: true, overwrite: true)
var latencyStore = openStore("latency.sqlite")
var nextIndex: LogIndex = 1
let payload = [UInt8](repeating: 0x5A, count: entryBytes)

@MainActor func storeAppend() -> UInt64 {
    let e = Entry(term: 1, index: nextIndex, data: payload)
    let t0 = nowNs()
    try! latencyStore.persist(entries: [e])
    nextIndex += 1
    return nowNs() - t0
}

// Cold phase: a new database's WAL grows until the first checkpoint (1000 pages by default),
// so these commits append to the WAL file. Reported apart from the steady state.
let coldCommits = PeerStore.Options().walAutocheckpointPages
var tCold: [UInt64] = []
for _ in 0..<coldCommits { tCold.append(storeAppend()) }
for _ in 0..<200 { _ = storeAppend() }
for _ in 0..<50 { rawFsync.append(); rawFdatasync.append(); rawOverwrite.append() }

var tFsync: [UInt64] = [], tFdatasync: [UInt64] = [], tOverwrite: [UInt64] = [], tStore: [UInt64] = []
let blockSamples = 100
for _ in 0..<(samples / blockSamples) {
    for _ in 0..<blockSamples { let t0 = nowNs(); rawFsync.append(); tFsync.append(nowNs() - t0) }
    for _ in 0..<blockSamples { tStore.append(storeAppend()) }
    for _ in 0..<blockSamples { let t0 = nowNs(); rawFdatasync.append(); tFdatasync.append(nowNs() - t0) }
    for _ in 0..<blockSamples { let t0 = nowNs(); rawOverwrite.append(); tOverwrite.append(nowNs() - t0) }
}
// After a clean restart the WAL file is kept (PERSIST_WAL): no cold phase again.
try! latencyStore.close()
latencyStore = openStore("latency.sqlite")
var tReopened: [UInt64] = []
for _ in 0..<coldCommits { tReopened.append(storeAppend()) }
try! latencyStore.close()
tReopened.sort()
tFsync.sort(); tFdatasync.sort(); tOverwrite.sort(); tStore.sort(); tCold.sort()

func fmt(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }

print("### Durable single-entry append (\(entryBytes)-byte entry; \(tStore.count) samples each, interleaved in blocks of \(blockSamples))")
print("")
print("| operation | p50 µs | p99 µs | p50 ratio | p99 ratio |")
print("|---|---:|---:|---:|---:|")
let f50 = percentile(tFsync, 0.5), f99 = percentile(tFsync, 0.99)
let rows: [(String, [UInt64])] = [
    ("raw append + fsync (reference)", tFsync),
    ("raw append + fdatasync", tFdatasync),
    ("raw overwrite of one block + fdatasync", tOverwrite),
    ("PeerStore.persist, 1 entry, steady state", tStore),
    ("PeerStore.persist, 1 entry, first \(coldCommits) commits of a new file", tCold),
    ("PeerStore.persist, 1 entry, first \(coldCommits) commits after a clean reopen", tReopened),
]
for (name, t) in rows {
    let p50 = percentile(t, 0.5), p99 = percentile(t, 0.99)
    print("| \(name) | \(fmt(p50)) | \(fmt(p99)) | \(fmt(p50 / f50, 2))x | \(fmt(p99 / f99, 2))x |")
}
print("")

// MARK: - 2. Batched throughput

print("### Batched append throughput (\(entryBytes)-byte entries, one transaction per batch)")
print("")
print("| batch | batches | entries/s | MB/s | µs per batch |")
print("|---:|---:|---:|---:|---:|")
for (batch, batches) in [(1, 1000), (16, 500), (256, 400)] {
    let store = openStore("batch-\(batch).sqlite")
    var index: LogIndex = 1
    let work = (0..<batches).map { _ -> [Entry] in
        defer { index += LogIndex(batch) }
        return (0..<batch).map { Entry(term: 1, index: index + LogIndex($0), data: payload) }
    }
    let t0 = nowNs()
    for b in work { try! store.persist(entries: b, hardState: HardState(term: 1, vote: 1, commit: b.last!.index)) }
    let seconds = Double(nowNs() - t0) / 1e9
    let n = Double(batch * batches)
    print("| \(batch) | \(batches) | \(fmt(n / seconds, 0)) | \(fmt(n * Double(entryBytes) / seconds / 1e6)) | \(fmt(seconds / Double(batches) * 1e6)) |")
    try! store.close()
}
print("")

// MARK: - 3. Open-to-ready

do {
    let name = "open.sqlite"
    let store = openStore(name)
    var index: LogIndex = 1
    let t0 = nowNs()
    while index <= openEntries {
        let n = min(LogIndex(4096), openEntries - index + 1)
        let b = (0..<n).map { Entry(term: 1 + ($0 + index) / 100_000, index: index + $0, data: payload) }
        try! store.persist(entries: b, hardState: HardState(term: b.last!.term, vote: 1, commit: b.last!.index))
        index += n
    }
    let fillSeconds = Double(nowNs() - t0) / 1e9
    try! store.close()
    let fileBytes = (try? FileManager.default.attributesOfItem(atPath: dir + "/" + name)[.size] as? Int) ?? 0
    var times: [UInt64] = []
    for _ in 0..<5 {
        let t1 = nowNs()
        let s = openStore(name)
        let node = try! RaftNode(config: RaftConfig(id: 1), storage: s, seed: 1)
        times.append(nowNs() - t1)
        precondition(node.lastIndex == openEntries && node.commitIndex == openEntries, "reopened log is wrong")
        try! s.close()
    }
    times.sort()
    print("### Open-to-ready (PeerStore.open + RaftNode init)")
    print("")
    print("| log entries | file MB | fill time s | open-to-ready median ms | max ms (5 runs) |")
    print("|---:|---:|---:|---:|---:|")
    print("| \(openEntries) | \(fmt(Double(fileBytes) / 1e6)) | \(fmt(fillSeconds, 2)) | \(fmt(Double(times[2]) / 1e6, 2)) | \(fmt(Double(times[4]) / 1e6, 2)) |")
}
