import ArgumentParser
import CProcessControl
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `peer exec-child --parent PID -- COMMAND ARGS...` (internal): how the agent and the router
/// start a child that must not outlive its peer. It asks the kernel to SIGKILL it when the
/// thread that started it (a long-lived thread of the peer) exits (Linux PR_SET_PDEATHSIG),
/// checks the peer is still its parent (it may have died before the request was made), then
/// execs the command in its place: same pid, same process group. docs/operations.md says what
/// happens when a peer is killed with SIGKILL.
struct ExecChild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec-child", abstract: "Internal: run COMMAND so that it dies with its peer.", shouldDisplay: false)

    @Option(help: "The pid of the peer that started this child.")
    var parent: Int32

    @Argument(parsing: .postTerminator, help: "The absolute path of the program, then its arguments.")
    var command: [String] = []

    func run() throws {
        guard let program = command.first, program.hasPrefix("/") else {
            throw ValidationError("exec-child needs an absolute program path after --, got \(command.first ?? "nothing")")
        }
        guard peer_set_parent_death_signal(SIGKILL) == 0 else {
            throw CLIError("exec-child: prctl(PR_SET_PDEATHSIG) failed: \(String(cString: strerror(errno)))")
        }
        // The parent died between our start and the prctl: nothing would kill us later.
        guard getppid() == parent else { throw CLIError("exec-child: peer \(parent) is gone; not starting \(program)") }
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) }
        argv.append(nil)
        execv(program, argv)
        throw CLIError("exec-child: cannot exec \(program): \(String(cString: strerror(errno)))")
    }
}
