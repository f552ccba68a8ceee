import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `peer bench ...`: the cluster benchmark (peer vs etcd side by side). The measuring code
/// lives in its own executable, `peer-cluster-bench`, so the peer binary that runs in
/// production carries none of it; this command replaces itself with that executable, found
/// beside `peer`, passing every argument on (`peer bench --help` shows them).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark a 3-member peer cluster against etcd 3.4, on loopback or in network namespaces (docs/benchmarks.md).",
        discussion: "Runs `peer-cluster-bench` from the directory of this `peer` binary with the same arguments: build both in release mode (`make bench-cluster` does, and installs etcd and wrk).")

    @Argument(parsing: .captureForPassthrough, help: "Arguments for peer-cluster-bench (try --help).")
    var arguments: [String] = []

    func run() throws {
        let exe = PeerProcesses.selfExecutable()
        let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let bench = (dir.isEmpty ? "." : dir) + "/peer-cluster-bench"
        guard access(bench, X_OK) == 0 else {
            throw ValidationError("\(bench) is missing or not executable: build it with \(BuildHint.command(building: "peer-cluster-bench", besideBinaryIn: dir)) (`make bench-cluster` builds both and runs it)")
        }
        let argv = [bench] + arguments
        var cargs = argv.map { strdup($0) } + [nil]
        execv(bench, &cargs)
        let why = String(cString: strerror(errno))
        for p in cargs { free(p) }
        throw ValidationError("cannot run \(bench): \(why)")
    }
}
