import Foundation
import Testing
@testable import PeerStore
import Raft

#if canImport(Glibc)
import Glibc
#endif

/// Kills a writing child process with SIGKILL at seeded random moments and checks, after each
/// kill, that the reopened store holds every acknowledged write, in a gap-free log, with an
/// untorn hard state, and that SQLite finds the file sound. The child also receives snapshots
/// (staged in chunks over several writes, then installed): a kill while staging leaves the old
/// snapshot and log intact, a kill during the install leaves the old or the new, never a mix.
///
/// `PEER_CRASH_KILLS` sets the number of kills (default 20), `PEER_CRASH_SEED` the seed. The seed
/// fixes the kill schedule (after which report line, with which delay) and the child's writes;
/// where exactly a kill lands inside a write still depends on the machine's timing.
@Suite struct CrashTests {
    @Test func everyAcknowledgedWriteSurvivesSIGKILL() async throws {
        try await offCooperativePool { try self.everyAcknowledgedWriteSurvivesSIGKILLBody() }
    }

    func everyAcknowledgedWriteSurvivesSIGKILLBody() throws {
        let env = ProcessInfo.processInfo.environment
        // A set but unusable value is an error, never a silent fallback to the default.
        let kills = try #require(env["PEER_CRASH_KILLS"].map { Int($0) } ?? 20,
                                 "PEER_CRASH_KILLS must be a whole number, got '\(env["PEER_CRASH_KILLS"] ?? "")'")
        try #require(kills >= 1, "PEER_CRASH_KILLS must be at least 1, got \(kills)")
        let seed = try #require(env["PEER_CRASH_SEED"].map { UInt64($0) } ?? 20_261_125,
                                "PEER_CRASH_SEED must be a whole number, got '\(env["PEER_CRASH_SEED"] ?? "")'")
        let child = try childBinary()
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        var rng = SplitMix64(seed: seed)
        var model = CrashModel()
        var acknowledgedTotal = 0
        var inFlightLanded = 0, inFlightLost = 0, killedBeforeOpen = 0, killedDuringStaging = 0, killedDuringInstall = 0
        for round in 0..<kills {
            // Kill after the k-th report line: right after an "I" (inside the write) or an "A"
            // (between writes); sometimes before the store is even open ("R").
            let linesBeforeKill = rng.next() % 8 == 0 ? Int(rng.next() % 2) : Int(rng.next() % 120) + 1
            // Half the kills land a seeded 0-1000 µs after that line, anywhere in the next write
            // (its SQL, its WAL write, its fdatasync); this randomizes the moment, it does not
            // wait for anything.
            let delayMicros = rng.next() % 2 == 0 ? 0 : UInt32(rng.next() % 1000)
            let run = try runAndKill(child, args: [path, testCluster, "1", String(seed &+ UInt64(round))],
                                     afterLines: linesBeforeKill, delayMicros: delayMicros)
            var pending: CrashOp?
            for line in run.lines {
                if line.hasPrefix("E ") {
                    Issue.record("seed \(seed) round \(round): child failed: \(line)")
                    return
                } else if line.hasPrefix("I ") {
                    pending = CrashOp(line)
                } else if line == "A" {
                    model.apply(pending!)
                    pending = nil
                    acknowledgedTotal += 1
                }
            }
            let store = try openStore(path)
            let found = try CrashModel(store)
            if !run.lines.contains("R") { killedBeforeOpen += 1 }
            var withPending = model
            if let pending { withPending.apply(pending) }
            let consistent = found == model || found == withPending
            #expect(consistent,
                    "seed \(seed) round \(round): after SIGKILL the store differs from every acknowledged state\n found \(found.summary)\n acked \(model.summary)\n +pending \(withPending.summary)")
            #expect(found.hardState.vote == crashVote(term: found.hardState.term, commit: found.hardState.commit) || found.hardState == .empty,
                    "seed \(seed) round \(round): torn hard state \(found.hardState)")
            #expect(try store.integrityProblems().isEmpty, "seed \(seed) round \(round): integrity_check failed")
            try store.close()
            if pending != nil && withPending != model { if found == withPending { inFlightLanded += 1 } else { inFlightLost += 1 } }
            if case .install? = pending { killedDuringInstall += 1 }
            if case .stage? = pending { killedDuringStaging += 1 }
            model = found  // the in-flight write may have landed: continue from what is durable
            if !consistent { return }  // the seed is printed above; later rounds would only repeat it
        }
        print("crash test: seed \(seed), \(kills) SIGKILLs, \(acknowledgedTotal) acknowledged writes all found; "
              + "killed mid-write \(inFlightLanded + inFlightLost) times (write landed \(inFlightLanded), lost \(inFlightLost)), "
              + "before open \(killedBeforeOpen), staging a snapshot \(killedDuringStaging), installing one \(killedDuringInstall); final log \(model.summary)")
        #expect(acknowledgedTotal > kills, "seed \(seed): too few acknowledged writes (\(acknowledgedTotal)) to prove anything")
    }

    /// A real I/O error: the child runs under a file size limit, so the kernel fails SQLite's
    /// write with EFBIG. The write is refused with a typed error, the next one with `.halted`,
    /// and the file still holds exactly the acknowledged writes.
    @Test func ioErrorIsTypedHaltsTheStoreAndLosesNothingAcknowledged() async throws {
        try await offCooperativePool { try self.ioErrorBody() }
    }

    func ioErrorBody() throws {
        let child = try childBinary()
        let dir = TempDir(); defer { dir.remove() }
        let path = dir.file("peer.sqlite")
        let limitBytes = 1 << 20  // the child then uses a 64-page WAL: reached after ~1 MiB of log
        let run = try runAndKill(child, args: [path, testCluster, "1", "7", String(limitBytes)], afterLines: 400_000, delayMicros: 0)
        var model = CrashModel()
        var pending: CrashOp?
        var acknowledged = 0
        for line in run.lines {
            if line.hasPrefix("I ") { pending = CrashOp(line) }
            if line == "A" { model.apply(pending!); pending = nil; acknowledged += 1 }
        }
        let errors = run.lines.filter { $0.hasPrefix("E ") }
        #expect(errors.count == 1 && errors[0].contains("I/O error") && errors[0].contains(path), "\(errors)")
        #expect(run.lines.last?.hasPrefix("H ") == true && run.lines.last?.contains("halted") == true, "\(run.lines.suffix(2))")
        #expect(acknowledged > 100)
        let store = try openStore(path)
        let found = try CrashModel(store)
        var withPending = model
        if let pending { withPending.apply(pending) }
        #expect(found == model || found == withPending, "found \(found.summary)\n acked \(model.summary)")
        #expect(try store.integrityProblems().isEmpty)
        try store.close()
    }

    func childBinary() throws -> String {
        if let p = ProcessInfo.processInfo.environment["PEER_STORE_CRASH_BIN"] { return p }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // The test bundle lives next to the products: .build/<triple>/debug/.
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("peer-store-crash").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw CrashTestError.noChild("peer-store-crash not found next to \(dir.path); run `swift build --product peer-store-crash`")
    }

    /// Starts the child, reads its report lines, sends SIGKILL to that PID after `afterLines`
    /// lines, drains what it wrote before dying, and reaps it.
    func runAndKill(_ binary: String, args: [String], afterLines: Int, delayMicros: UInt32) throws -> (lines: [String], status: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw CrashTestError.spawn("pipe: \(errno)") }
        // Neither end leaks into other children; dup2 onto the child's stdout clears the flag.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        let argv: [UnsafeMutablePointer<CChar>?] = ([binary] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, binary, &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else { close(fds[0]); throw CrashTestError.spawn("posix_spawn \(binary): \(rc)") }

        var lines: [String] = []
        var buffer: [UInt8] = []
        var killed = false
        var chunk = [UInt8](repeating: 0, count: 4096)
        if afterLines == 0 { kill(pid, SIGKILL); killed = true }
        while true {
            // A hung child must not hang the test: 60 s without a line is a failure.
            var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 60_000) == 0 {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
                close(fds[0])
                throw CrashTestError.hung("child \(pid) wrote nothing for 60 s")
            }
            let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }  // EOF: the child is dead
            buffer.append(contentsOf: chunk[0..<n])
            while let nl = buffer.firstIndex(of: 10) {
                lines.append(String(decoding: buffer[..<nl], as: UTF8.self))
                buffer.removeSubrange(...nl)
                if !killed && lines.count >= afterLines {
                    if delayMicros > 0 { usleep(delayMicros) }
                    kill(pid, SIGKILL)
                    killed = true
                }
            }
        }
        close(fds[0])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return (lines, status)
    }
}

enum CrashTestError: Error { case noChild(String), spawn(String), hung(String) }

/// Same as the child's functions in Sources/Tools/peer-store-crash/main.swift (keep them in step).
func crashPayload(index: LogIndex, term: Term) -> [UInt8] {
    var rng = SplitMix64(seed: index &* 0x9E37_79B9 &+ term)
    let size = Int(rng.next() % 300)
    return (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}

func crashVote(term: Term, commit: LogIndex) -> NodeID { (term &* 2_654_435_761 &+ commit) % 5 + 1 }

/// One write the child announced.
enum CrashOp {
    case persist(first: LogIndex, count: Int, term: Term, hardState: HardState)
    case compact(LogIndex)
    /// Snapshot chunks staged: nothing observable changes.
    case stage
    /// The staged snapshot installed: it replaces the snapshot and the whole log.
    case install(index: LogIndex, term: Term, hardState: HardState)

    init?(_ line: String) {
        let f = line.split(separator: " ").dropFirst().map(String.init)
        switch f.first {
        case "P":
            let n = f.dropFirst().compactMap { UInt64($0) }
            guard n.count == 6 else { return nil }
            self = .persist(first: n[0], count: Int(n[1]), term: n[2], hardState: HardState(term: n[3], vote: n[4], commit: n[5]))
        case "C":
            guard f.count == 2, let i = UInt64(f[1]) else { return nil }
            self = .compact(i)
        case "T":
            self = .stage
        case "N":
            let n = f.dropFirst().compactMap { UInt64($0) }
            guard n.count == 5 else { return nil }
            self = .install(index: n[0], term: n[1], hardState: HardState(term: n[2], vote: n[3], commit: n[4]))
        default:
            return nil
        }
    }
}

/// Everything observable in a store, compared whole: the snapshot, the log (term of each
/// index; payloads are checked when read from the store), and the hard state.
struct CrashModel: Equatable {
    var snapshotIndex: LogIndex = 0
    var snapshotTerm: Term = 0
    var snapshotDataOK = true
    /// `terms[i]` is the term of entry `snapshotIndex + 1 + i`.
    var terms: [Term] = []
    var hardState = HardState.empty

    init() {}

    /// Reads a store and checks what the model cannot express: payloads and gap-freedom.
    init(_ store: PeerStore) throws {
        let meta = try store.snapshotMetadata()
        let data = try store.snapshotData()
        snapshotIndex = meta.index
        snapshotTerm = meta.term
        snapshotDataOK = snapshotIndex == 0 ? data.isEmpty : data == crashPayload(index: snapshotIndex, term: 0)
        hardState = try store.initialState().0
        let log = try allEntries(store)
        for (i, e) in log.enumerated() {
            // Gap-free and in place: a hole or a wrong payload marks the model as broken.
            let expectedIndex = snapshotIndex + 1 + LogIndex(i)
            terms.append(e.index == expectedIndex && e.data == crashPayload(index: e.index, term: e.term) ? e.term : Term.max)
        }
        #expect(try store.lastIndex() == snapshotIndex + LogIndex(log.count))
    }

    mutating func apply(_ op: CrashOp) {
        switch op {
        case let .persist(first, count, term, hs):
            precondition(first > snapshotIndex && first <= snapshotIndex + LogIndex(terms.count) + 1, "op at \(first) does not fit the model")
            terms.removeSubrange(Int(first - snapshotIndex - 1)...)
            terms.append(contentsOf: repeatElement(term, count: count))
            hardState = hs
        case let .compact(index):
            guard index > snapshotIndex else { return }
            let k = Int(index - snapshotIndex)
            snapshotTerm = terms[k - 1]
            terms.removeFirst(k)
            snapshotIndex = index
        case .stage:
            break
        case let .install(index, term, hs):
            precondition(index > snapshotIndex, "install at \(index) not after the snapshot \(snapshotIndex)")
            snapshotIndex = index
            snapshotTerm = term
            terms = []
            hardState = hs
        }
    }

    var summary: String {
        "snapshot \(snapshotIndex)@\(snapshotTerm) log (\(snapshotIndex + 1)...\(snapshotIndex + LogIndex(terms.count))) last term \(terms.last.map(String.init) ?? "-") \(hardState)"
    }
}

/// Runs blocking work (pipes, waitpid, sleeps between kills) on a thread of its own, so it does
/// not hold one of the few threads of Swift's cooperative pool that other suites' servers and
/// waits need while it runs.
func offCooperativePool(_ body: @escaping @Sendable () throws -> Void) async throws {
    try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
        let thread = Thread {
            do {
                try body()
                cont.resume()
            } catch {
                cont.resume(throwing: error)
            }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
