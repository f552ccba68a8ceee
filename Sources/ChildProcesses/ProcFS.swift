#if canImport(Glibc)
import Glibc
#endif

/// Reads and parses the few `/proc` files the agent and the process provider need (proc(5)). Every read is bounded
/// and every field is checked; a malformed file is an error, never a guess.
public enum ProcFS {
    /// `/proc/<pid>/stat` is one line of a few hundred bytes; `status` a few KiB.
    public static let procFileBytesMax = 64 * 1024

    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The fields of `/proc/<pid>/stat` the agent uses.
    public struct Stat: Sendable, Hashable {
        /// Field 3: R, S, D, Z (zombie), T, ...
        public var state: Character
        /// Field 5: the process group id.
        public var processGroup: Int32
        /// Fields 14 and 15: user and system CPU time, in clock ticks (`sysconf(_SC_CLK_TCK)`).
        public var userTicks: UInt64
        public var systemTicks: UInt64
        /// Field 22: start time after boot, in clock ticks; with the pid it names one process
        /// across pid reuse.
        public var startTimeTicks: UInt64

        public init(state: Character, processGroup: Int32, userTicks: UInt64, systemTicks: UInt64, startTimeTicks: UInt64) {
            self.state = state
            self.processGroup = processGroup
            self.userTicks = userTicks
            self.systemTicks = systemTicks
            self.startTimeTicks = startTimeTicks
        }
    }

    /// Parses a stat line. The command name (field 2) is in parentheses and may itself hold
    /// spaces and parentheses, so fields are counted after the LAST ')'.
    public static func parseStat(_ text: String) throws(ParseError) -> Stat {
        guard let close = text.lastIndex(of: ")") else { throw ParseError(message: "stat has no ')' after the command name") }
        let rest = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // rest[0] is field 3; field n is rest[n - 3]. Field 22 must be present.
        guard rest.count >= 20 else { throw ParseError(message: "stat has \(rest.count + 2) fields, expected at least 22") }
        guard rest[0].count == 1, let state = rest[0].first else { throw ParseError(message: "stat field 3 (state) is \(ProcFS.quoted(String(rest[0])))") }
        func number(_ field: Int) throws(ParseError) -> UInt64 {
            let raw = rest[field - 3]
            guard let value = UInt64(raw) else { throw ParseError(message: "stat field \(field) is not a number: \(ProcFS.quoted(String(raw)))") }
            return value
        }
        let group = try number(5)
        guard group <= UInt64(Int32.max) else { throw ParseError(message: "stat field 5 (pgrp) out of range: \(group)") }
        return Stat(state: state, processGroup: Int32(group), userTicks: try number(14), systemTicks: try number(15), startTimeTicks: try number(22))
    }

    /// The VmRSS line of `/proc/<pid>/status`, in bytes (the file gives kB).
    public static func parseResidentBytes(_ text: String) throws(ParseError) -> Int {
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count == 2, parts[1] == "kB", let kilobytes = Int(parts[0]), kilobytes >= 0, kilobytes < Int.max / 1024 else {
                throw ParseError(message: "VmRSS line is malformed: \(ProcFS.quoted(String(line)))")
            }
            return kilobytes * 1024
        }
        // Kernel threads and zombies have no VmRSS line.
        throw ParseError(message: "status has no VmRSS line")
    }

    public static func stat(pid: Int32) -> Stat? {
        guard let text = readFile("/proc/\(pid)/stat", bytesMax: procFileBytesMax) else { return nil }
        return try? parseStat(text)
    }

    public static func residentBytes(pid: Int32) -> Int? {
        guard let text = readFile("/proc/\(pid)/status", bytesMax: procFileBytesMax) else { return nil }
        return try? parseResidentBytes(text)
    }

    /// Clock ticks per second for the CPU fields (100 on Linux in practice).
    public static let clockTicksPerSecond: UInt64 = {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? UInt64(ticks) : 100
    }()

    /// Reads a whole small file, nil if it cannot be opened or exceeds `bytesMax`.
    public static func readFile(_ path: String, bytesMax: Int) -> String? {
        guard let bytes = readBytes(path, bytesMax: bytesMax) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func readBytes(_ path: String, bytesMax: Int) -> [UInt8]? {
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

    /// A value in quotes with control characters escaped, for error messages.
    static func quoted(_ value: String) -> String {
        let limited = value.count > 80 ? String(value.prefix(80)) + "..." : value
        return "\"" + limited.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined() + "\""
    }
}
