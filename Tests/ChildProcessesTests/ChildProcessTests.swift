import ChildProcesses
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The one spawner against real children (/bin/sh): what each child gets (stdin, output,
/// signals, descriptors, group or session, environment) and how one pid is observed, reaped
/// and signalled without touching any other child.
@Suite(.serialized) struct ChildProcessTests {
    let directory: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("childprocesses-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Runs `script` under /bin/sh to its end (bounded) and returns its exit and output.
    func run(_ script: String, _ options: (String) -> ChildProcess.Options = { .init(outputPath: $0) }) throws -> (ChildExit, String) {
        let output = directory + "/out-\(UUID().uuidString)"
        let pid = try ChildProcess.spawn(["/bin/sh", "-c", script], options(output))
        let exit = try waitForExit(pid)
        return (exit, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    func waitForExit(_ pid: pid_t, within: Duration = .seconds(10)) throws -> ChildExit {
        let deadline = ContinuousClock.now + within
        while ContinuousClock.now < deadline {
            if let exit = ChildProcess.reapIfExited(pid) { return exit }
            Thread.sleep(forTimeInterval: 0.01)
        }
        ChildProcess.signalProcess(pid, SIGKILL)
        _ = ChildProcess.reapBlocking(pid)
        throw TestFailure("pid \(pid) did not end within \(within)")
    }

    @Test func outputIsAppendedAndStdinIsEmpty() throws {
        let output = directory + "/appended"
        try "before\n".write(toFile: output, atomically: true, encoding: .utf8)
        let pid = try ChildProcess.spawn(["/bin/sh", "-c", "echo out; echo err >&2; cat; echo read-nothing"], .init(outputPath: output))
        #expect(try waitForExit(pid) == .exited(code: 0))
        #expect(try String(contentsOfFile: output, encoding: .utf8) == "before\nout\nerr\nread-nothing\n")
    }

    @Test func theChildHasDefaultSignalsAnEmptyMaskAndItsOwnGroup() throws {
        // The test process ignores SIGPIPE (the Swift runtime); ignore SIGTERM too, as `peer run`
        // does: neither may reach the child.
        let previous = signal(SIGTERM, SIG_IGN)
        defer { signal(SIGTERM, previous) }
        let (exit, output) = try run("grep -E '^(SigIgn|SigBlk):' /proc/self/status; ps -o pid=,pgid=,sid= -p $$")
        #expect(exit == .exited(code: 0))
        let lines = output.split(separator: "\n").map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }) }
        // No standard signal (1...31) ignored or blocked. (glibc keeps its two internal
        // real-time signals, 32 and 33, out of every signal set, so they are not reset.)
        func standard(_ field: String) -> UInt64? {
            lines.first { $0.first == Substring(field) }.flatMap { UInt64($0.last ?? "", radix: 16) }.map { $0 & 0x7FFF_FFFF }
        }
        #expect(standard("SigIgn:") == 0)
        #expect(standard("SigBlk:") == 0)
        let ids = try #require(lines.last).compactMap { Int32($0) }
        #expect(ids.count == 3)
        #expect(ids[0] == ids[1], "leads its own process group: \(ids)")
        #expect(ids[2] == getsid(0), "stays in the caller's session: \(ids)")
    }

    @Test func aNewSessionDetachesFromTheCallersSession() throws {
        let (exit, output) = try run("ps -o pid=,pgid=,sid= -p $$") { .init(outputPath: $0, grouping: .newSession) }
        #expect(exit == .exited(code: 0))
        let ids = output.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        #expect(ids.count == 3 && ids[0] == ids[1] && ids[0] == ids[2], "leads its own session: \(ids)")
    }

    @Test func noDescriptorAboveStderrIsInherited() throws {
        // A descriptor without O_CLOEXEC, as a careless library might leave one.
        let leaked = open("/dev/null", O_RDONLY)
        #expect(leaked > 2)
        defer { close(leaked) }
        let (exit, output) = try run("ls /proc/self/fd")
        #expect(exit == .exited(code: 0))
        // 0, 1, 2 and the descriptor ls opens to read the directory.
        let fds = Set(output.split(separator: "\n").compactMap { Int32($0) })
        #expect(fds.isSuperset(of: [0, 1, 2]))
        #expect(!fds.contains(leaked), "inherited \(fds.sorted())")
        #expect(fds.count <= 4, "inherited \(fds.sorted())")
    }

    @Test func theEnvironmentIsReplacedOrInherited() throws {
        let (_, replaced) = try run("echo \"[$ONLY][$HOME]\"") { .init(outputPath: $0, environment: ["ONLY=this"]) }
        #expect(replaced == "[this][]\n")
        // Inherited: the test process's own PATH (read, never changed: other suites spawn meanwhile).
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let (_, inherited) = try run("echo \"[$PATH]\"")
        #expect(inherited == "[\(path)]\n")
    }

    @Test func aMissingProgramIsASpecificError() throws {
        #expect(throws: SpawnError(program: "/nonexistent/program", operation: "posix_spawn", errno: ENOENT)) {
            try ChildProcess.spawn(["/nonexistent/program"], .init(outputPath: directory + "/none", searchPath: false))
        }
        // A bare name is looked up in PATH only when asked.
        #expect(throws: SpawnError(program: "sh", operation: "posix_spawn", errno: ENOENT)) {
            try ChildProcess.spawn(["sh", "-c", "true"], .init(outputPath: directory + "/none", searchPath: false))
        }
        let pid = try ChildProcess.spawn(["sh", "-c", "exit 7"], .init(outputPath: directory + "/found"))
        #expect(try waitForExit(pid) == .exited(code: 7))
        let error = SpawnError(program: "/x", operation: "posix_spawn", errno: ENOENT)
        #expect(error.description == "cannot start /x: posix_spawn: No such file or directory (errno 2)")
    }

    @Test func observeSeesAnExitWithoutReapingThenReapSaysHow() throws {
        let pid = try ChildProcess.spawn(["/bin/sh", "-c", "read line < /dev/null; exit 3"], .init(outputPath: directory + "/observe"))
        let deadline = ContinuousClock.now + .seconds(10)
        var seen = ChildProcess.observe(pid)
        while seen == .running && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.01)
            seen = ChildProcess.observe(pid)
        }
        #expect(seen == .exited(.exited(code: 3)))
        // Not reaped: still a zombie, its pid reserved, and observed the same again.
        #expect(FileManager.default.fileExists(atPath: "/proc/\(pid)"))
        #expect(ChildProcess.observe(pid) == .exited(.exited(code: 3)))
        #expect(ChildProcess.hasExited(pid))
        #expect(ChildProcess.reapIfExited(pid) == .exited(code: 3))
        // Reaped: no longer our child.
        #expect(ChildProcess.observe(pid) == .lost)
        #expect(ChildProcess.reapIfExited(pid) == .unknown)
    }

    @Test func aSignalToTheGroupEndsTheChildAndWhatItForked() throws {
        let pidFile = directory + "/grandchild"
        let pid = try ChildProcess.spawn(
            ["/bin/sh", "-c", "sleep 60 & echo $! > \(pidFile).tmp; mv \(pidFile).tmp \(pidFile); wait"], .init(outputPath: directory + "/group"))
        let deadline = ContinuousClock.now + .seconds(10)
        var grandchild: Int32?
        while grandchild == nil && ContinuousClock.now < deadline {
            grandchild = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if grandchild == nil { Thread.sleep(forTimeInterval: 0.01) }
        }
        let orphan = try #require(grandchild)
        #expect(ChildProcess.observe(pid) == .running)
        ChildProcess.signalGroup(pid, SIGTERM)
        #expect(try waitForExit(pid) == .signaled(SIGTERM))
        // The grandchild got the same SIGTERM (it is not our child: wait for it to end; where
        // nothing reaps orphans it stays a zombie, which has ended all the same).
        func ended() -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(orphan)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return true }
            return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
        }
        let gone = ContinuousClock.now + .seconds(10)
        while !ended() && ContinuousClock.now < gone { Thread.sleep(forTimeInterval: 0.01) }
        #expect(ended(), "grandchild \(orphan) survived the group's SIGTERM")
    }

    @Test func theShellCodeFollowsTheConvention() {
        #expect(ChildExit.exited(code: 4).shellCode == 4)
        #expect(ChildExit.signaled(SIGKILL).shellCode == 137)
        #expect(ChildExit.unknown.shellCode == -1)
        #expect(ChildExit(waitStatus: 3 << 8) == .exited(code: 3))
        #expect(ChildExit(waitStatus: SIGTERM) == .signaled(SIGTERM))
        #expect(ChildExit.signaled(9).description == "signal 9")
        #expect(ChildExit.exited(code: 0).description == "exit code 0")
    }

    @Test func spawnThreadRunsWorkOnOneLongLivedThread() async {
        let first = await SpawnThread.shared.run {
            ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
        }
        let again = await SpawnThread.shared.run { pthread_self() }
        let again2 = await SpawnThread.shared.run { pthread_self() }
        #expect(first == "peer-spawn")
        #expect(again == again2)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Output files stay bounded while their writer goes on (copy to `.1`, truncate): the writer's
/// next O_APPEND write lands at the start of the emptied file, and the copy holds what was there.
@Suite struct LogRotationTests {
    @Test func aFileOverTheBoundIsCopiedAndTruncatedAndItsWriterGoesOn() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("logrot-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/c.log"
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o640)
        #expect(fd >= 0)
        defer { close(fd) }
        let first = Array(repeating: UInt8(ascii: "a"), count: 3 << 20) + Array("end of first\n".utf8)  // > one copy buffer
        #expect(first.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == first.count)
        #expect(LogRotation.copyTruncateIfLarger(path: path, maxBytes: 10 << 20) == nil)
        #expect(!FileManager.default.fileExists(atPath: path + ".1"), "a file under the bound was rotated")
        #expect(LogRotation.copyTruncateIfLarger(path: path, maxBytes: 1 << 20) == nil)
        #expect(FileManager.default.contents(atPath: path + ".1").map(Array.init) == first)
        let next = Array("after the rotation\n".utf8)
        #expect(next.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == next.count)
        #expect(FileManager.default.contents(atPath: path).map(Array.init) == next, "the writer did not go on at the start")
        #expect(LogRotation.regularFile(ofDescriptor: fd) == path)
    }
}
