#if canImport(Glibc)
import Glibc
#endif

/// Reads and parses the few `/proc` files the agent needs (proc(5)). Every read is bounded
/// and every field is checked; a malformed file is an error, never a guess.
enum ProcFS {
    /// `/proc/<pid>/stat` is one line of a few hundred bytes; `status` a few KiB.
    static let procFileBytesMax = 64 * 1024

    struct ParseError: Error, Hashable, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// The fields of `/proc/<pid>/stat` the agent uses.
    struct Stat: Hashable {
        /// Field 3: R, S, D, Z (zombie), T, ...
        var state: Character
        /// Field 5: the process group id.
        var processGroup: Int32
        /// Fields 14 and 15: user and system CPU time, in clock ticks (`sysconf(_SC_CLK_TCK)`).
        var userTicks: UInt64
        var systemTicks: UInt64
        /// Field 22: start time after boot, in clock ticks; with the pid it names one process
        /// across pid reuse.
        var startTimeTicks: UInt64
    }

    /// Parses a stat line. The command name (field 2) is in parentheses and may itself hold
    /// spaces and parentheses, so fields are counted after the LAST ')'.
    static func parseStat(_ text: String) throws(ParseError) -> Stat {
        guard let close = text.lastIndex(of: ")") else { throw ParseError(message: "stat has no ')' after the command name") }
        let rest = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // rest[0] is field 3; field n is rest[n - 3]. Field 22 must be present.
        guard rest.count >= 20 else { throw ParseError(message: "stat has \(rest.count + 2) fields, expected at least 22") }
        guard rest[0].count == 1, let state = rest[0].first else { throw ParseError(message: "stat field 3 (state) is \(quoted(String(rest[0])))") }
        func number(_ field: Int) throws(ParseError) -> UInt64 {
            let raw = rest[field - 3]
            guard let value = UInt64(raw) else { throw ParseError(message: "stat field \(field) is not a number: \(quoted(String(raw)))") }
            return value
        }
        let group = try number(5)
        guard group <= UInt64(Int32.max) else { throw ParseError(message: "stat field 5 (pgrp) out of range: \(group)") }
        return Stat(state: state, processGroup: Int32(group), userTicks: try number(14), systemTicks: try number(15), startTimeTicks: try number(22))
    }

    /// The VmRSS line of `/proc/<pid>/status`, in bytes (the file gives kB).
    static func parseResidentBytes(_ text: String) throws(ParseError) -> Int {
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count == 2, parts[1] == "kB", let kilobytes = Int(parts[0]), kilobytes >= 0, kilobytes < Int.max / 1024 else {
                throw ParseError(message: "VmRSS line is malformed: \(quoted(String(line)))")
            }
            return kilobytes * 1024
        }
        // Kernel threads and zombies have no VmRSS line.
        throw ParseError(message: "status has no VmRSS line")
    }

    static func stat(pid: Int32) -> Stat? {
        guard let text = readFile("/proc/\(pid)/stat", bytesMax: procFileBytesMax) else { return nil }
        return try? parseStat(text)
    }

    static func residentBytes(pid: Int32) -> Int? {
        guard let text = readFile("/proc/\(pid)/status", bytesMax: procFileBytesMax) else { return nil }
        return try? parseResidentBytes(text)
    }

    /// Clock ticks per second for the CPU fields (100 on Linux in practice).
    static let clockTicksPerSecond: UInt64 = {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? UInt64(ticks) : 100
    }()

    /// Reads a whole small file, nil if it cannot be opened or exceeds `bytesMax`.
    static func readFile(_ path: String, bytesMax: Int) -> String? {
        guard let bytes = readBytes(path, bytesMax: bytesMax) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readBytes(_ path: String, bytesMax: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { return bytes }
            guard bytes.count + count <= bytesMax else { return nil }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }
}

/// CPU use between two samples of one process, in thousandths of one core.
struct CPUSampler: Hashable {
    private var last: (ticks: UInt64, at: ContinuousClock.Instant)?

    static func == (lhs: CPUSampler, rhs: CPUSampler) -> Bool { lhs.last?.ticks == rhs.last?.ticks && lhs.last?.at == rhs.last?.at }
    func hash(into hasher: inout Hasher) { hasher.combine(last?.ticks) }

    /// Records `ticks` (utime + stime) at `now`; returns the permille since the previous sample,
    /// nil on the first sample or when the counter went backwards (a different process).
    mutating func sample(ticks: UInt64, at now: ContinuousClock.Instant, ticksPerSecond: UInt64) -> Int? {
        defer { last = (ticks, now) }
        guard let last, ticks >= last.ticks else { return nil }
        let elapsed = now - last.at
        let elapsedMs = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        guard elapsedMs > 0 else { return nil }
        let cpuMs = (ticks - last.ticks) * 1000 / ticksPerSecond
        return Int(cpuMs * 1000 / UInt64(elapsedMs))
    }
}
