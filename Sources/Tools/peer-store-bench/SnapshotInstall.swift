// Snapshot install between two in-process nodes over PeerStore files:
//
//   peer-store-bench --snapshot-install-mb 50 [--chunk-kb 1024] [--dir DIR]
//
// The leader's store holds a compacted log whose snapshot is `stateMB` MB, written in 1 MiB
// pieces so that making it never holds it whole. Then the peak RSS is reset (Linux
// /proc/self/clear_refs "5") and measured around the transfer: two RaftNodes (leader 1, empty
// follower 2), messages handed over in memory, every Ready persisted into its own SQLite file
// (fsync'd), until the follower installed the snapshot. Memory must be bounded by the chunk
// size and the window, not by the snapshot's size.

import Foundation
import PeerStore
import Raft

#if canImport(Glibc)
import Glibc
#endif

/// `VmHWM` (peak resident set) or `VmRSS` of this process in KiB, from /proc/self/status.
func procStatusKiB(_ field: String) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
    }
    return nil
}

/// Resets VmHWM to the current RSS (Linux >= 4.0). Returns whether it worked.
func resetPeakRSS() -> Bool {
    let fd = open("/proc/self/clear_refs", O_WRONLY)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return write(fd, "5", 1) == 1
}

/// The deterministic state: piece `k` (1 MiB, the last one shorter) of a `totalBytes` state.
func statePiece(_ k: Int, totalBytes: Int) -> [UInt8] {
    let pieceBytes = 1 << 20
    let n = min(pieceBytes, totalBytes - k * pieceBytes)
    var rng = SplitMix64(seed: UInt64(k) &+ 0x5EED)
    var out = [UInt8](repeating: 0, count: n)
    out.withUnsafeMutableBytes { raw in
        var i = 0
        while i + 8 <= n { raw.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self); i += 8 }
        while i < n { raw[i] = UInt8(truncatingIfNeeded: rng.next()); i += 1 }
    }
    return out
}

func runSnapshotInstallBench(dir: String, stateMB: Int, chunkKiB: Int) {
    let totalBytes = stateMB * 1_000_000
    let pieces = (totalBytes + (1 << 20) - 1) >> 20
    let conf = ConfState(voters: [1, 2])
    var stores: [PeerStore] = []
    for id in [NodeID(1), 2] {
        do {
            stores.append(try PeerStore.open(path: dir + "/snap-\(id).sqlite", clusterID: "bench", peerID: id, initialConf: conf))
        } catch {
            fail("\(error)")
        }
    }
    // The leader's history: 10 entries of term 1, compacted into the state.
    let tMake = nowNs()
    do {
        try stores[0].persist(entries: (1...10).map { Entry(term: 1, index: $0, data: [1]) }, hardState: HardState(term: 1, vote: 1, commit: 10))
        try stores[0].compact(upTo: 10, conf: conf, chunks: (0..<pieces).lazy.map { statePiece($0, totalBytes: totalBytes) })
    } catch {
        fail("\(error)")
    }
    let makeSeconds = Double(nowNs() - tMake) / 1e9

    var nodes: [RaftNode] = []
    for id in [NodeID(1), 2] {
        var config = RaftConfig(id: id)
        config.snapshotChunkBytes = chunkKiB << 10
        config.applied = id == 1 ? 10 : 0
        nodes.append(try! RaftNode(config: config, storage: stores[Int(id) - 1], seed: id))
    }
    let peakReset = resetPeakRSS()
    let rssBefore = procStatusKiB("VmRSS") ?? 0
    let hwmBefore = procStatusKiB("VmHWM") ?? 0

    let t0 = nowNs()
    nodes[0].campaign()
    var queue: [Message] = []
    var installed = false
    var chunks = 0
    var largestMessageBytes = 0
    var readies = 0
    while !installed {
        var busy = false
        for i in nodes.indices where nodes[i].hasReady {
            busy = true
            readies += 1
            let rd = nodes[i].ready()
            do { try stores[i].persist(rd) } catch { fail("\(error)") }
            if rd.snapshot != nil { installed = true }
            for m in rd.messages where m.kind == .snapshot {
                chunks += 1
                largestMessageBytes = max(largestMessageBytes, m.snapshot!.data.count)
            }
            queue.append(contentsOf: rd.messages)
            nodes[i].advance(rd)
        }
        if !queue.isEmpty {
            busy = true
            let m = queue.removeFirst()
            nodes[Int(m.to) - 1].step(m)
        }
        if !busy { fail("the cluster went quiet before the follower installed the snapshot") }
    }
    let seconds = Double(nowNs() - t0) / 1e9
    let hwmAfter = procStatusKiB("VmHWM") ?? 0

    // Outside the timing: the follower's snapshot is the leader's state, byte for byte.
    do {
        let (followerMeta, leaderMeta) = (try stores[1].snapshotMetadata(), try stores[0].snapshotMetadata())
        precondition(followerMeta == leaderMeta, "follower installed another snapshot")
        precondition(stores[1].snapshotBytes == UInt64(totalBytes), "follower's snapshot has \(stores[1].snapshotBytes) bytes")
        for k in 0..<pieces {
            let c = try stores[1].snapshotChunk(offset: UInt64(k << 20), maxBytes: 1 << 20)
            precondition(c.data == statePiece(k, totalBytes: totalBytes), "follower's snapshot differs in MiB \(k)")
        }
        for s in stores { try s.close() }
    } catch {
        fail("\(error)")
    }
    let peakGrowthMiB = Double(hwmAfter - (peakReset ? rssBefore : hwmBefore)) / 1024
    print("### Snapshot install between two nodes over PeerStore (SQLite, fsync per Ready)")
    print("")
    print("| state MB | chunk KiB | window | chunks | Readys | make state s | install s | MB/s | RSS before MiB | peak RSS during install MiB | peak growth MiB | peak reset |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print("| \(stateMB) | \(chunkKiB) | \(RaftConfig(id: 1).snapshotChunksInflightMax) | \(chunks) | \(readies) | \(fmt(makeSeconds, 2)) | \(fmt(seconds, 2)) "
          + "| \(fmt(Double(totalBytes) / 1e6 / seconds)) | \(fmt(Double(rssBefore) / 1024)) | \(fmt(Double(hwmAfter) / 1024)) | \(fmt(peakGrowthMiB)) "
          + "| \(peakReset ? "yes (clear_refs)" : "no: growth is over the earlier peak") |")
    precondition(largestMessageBytes <= chunkKiB << 10, "a message carried \(largestMessageBytes) bytes")
}
