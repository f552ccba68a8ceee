import ChildProcesses
import Foundation
import Logging
import Testing

@testable import Agent

#if canImport(Glibc)
import Glibc
#endif

/// A directory under /tmp for one test, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/agent-test.XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let result else { throw TestFailure("mkdtemp failed: \(String(cString: strerror(errno)))") }
        path = String(cString: result)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes (then records an issue
/// naming `what` and throws). Never a fixed sleep.
/// `what` is evaluated only on a timeout, so it can describe the state at that moment.
func waitUntil(_ what: @autoclosure () -> String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    // One last look: with every test of the suite sharing the two-thread cooperative pool, this
    // task can wake only after the deadline although the condition came true in time (the
    // probe test saw "ready" in the server's log at its timeout).
    if try await condition() { return }
    let description = what()
    Issue.record("timed out after \(timeout) waiting until \(description)")
    throw TestFailure("timed out: \(description)")
}

/// True if `condition` becomes true within `window` (polled every 20 ms): for asserting that
/// something does NOT happen within an observation window.
func happensWithin(_ window: Duration, _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + window
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}

/// The python3 the components run with (an absolute path, as ComponentSpec requires).
let python3: String = {
    for candidate in ["/usr/bin/python3", "/usr/local/bin/python3"] where access(candidate, X_OK) == 0 { return candidate }
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let candidate = "\(directory)/python3"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return "/usr/bin/python3"
}()

/// The test component: an HTTP server on 127.0.0.1:<argv[1]> whose tenant file is argv[2],
/// which must equal $PEER_TENANT_FILE (so both the substitution and the variable are checked),
/// and which needs $REQUIRED_VAR=yes from the spec and $PATH from the peer's environment.
/// `GET /healthz` answers 200; with `X-Tenant-ID` 200 only for a tenant in the file (re-read on
/// SIGHUP), else 404. ON_TERM: "exit" (default: writes `sigterm-<pid>` in $MARKER_DIR, exits 0),
/// "ignore" (SIG_IGN), "default" (no handler: the default action kills it).
let componentScript = #"""
import http.server, os, signal, sys

port = int(sys.argv[1])
tenant_file = os.environ["PEER_TENANT_FILE"]
if sys.argv[2] != tenant_file:
    print("argv[2] %r is not PEER_TENANT_FILE %r" % (sys.argv[2], tenant_file), flush=True)
    sys.exit(2)
if os.environ.get("REQUIRED_VAR") != "yes" or "PATH" not in os.environ:
    print("environment lacks REQUIRED_VAR=yes or PATH", flush=True)
    sys.exit(3)
tenants = set()

def load():
    global tenants
    with open(tenant_file) as f:
        tenants = {line.strip() for line in f if line.strip()}

load()
signal.signal(signal.SIGHUP, lambda signum, frame: load())
mode = os.environ.get("ON_TERM", "exit")
if mode == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif mode == "exit":
    def on_term(signum, frame):
        open(os.path.join(os.environ["MARKER_DIR"], "sigterm-%d" % os.getpid()), "w").close()
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        tenant = self.headers.get("X-Tenant-ID")
        ok = self.path == "/healthz" and (tenant is None or tenant in tenants)
        body = b"ok\n" if ok else b"not served\n"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 64

print("component %d listening on %d with %d tenant(s)" % (os.getpid(), port, len(tenants)), flush=True)
Server(("127.0.0.1", port), Handler).serve_forever(poll_interval=0.05)
"""#

/// A loopback port that was free a moment ago, chosen at random below the kernel's ephemeral
/// range (32768-60999) so that no other test's outgoing connection or port-0 bind takes it
/// between now and the component's own bind (the suites run in parallel).
func freePort() throws -> Int {
    for _ in 0..<1_000 {
        let port = Int.random(in: 20_000..<32_000)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        address.sin_port = UInt16(port).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        close(fd)
        if bound == 0 { return port }
    }
    throw TestFailure("no free port in 20000-32000")
}

/// One test's world: a temporary directory holding the component script and the agent's files.
struct Fixture {
    let directory: TemporaryDirectory
    let script: String
    var agentDirectory: String { directory.path + "/agent" }
    var markerDirectory: String { directory.path }

    init() throws {
        directory = try TemporaryDirectory()
        script = try directory.write("component.py", componentScript)
    }

    func configuration(crashLoopLimit: Int = 5, backoffInitial: Duration = .milliseconds(100)) -> AgentConfiguration {
        var logger = Logger(label: "agent-test")
        logger.logLevel = .debug
        return AgentConfiguration(
            directory: agentDirectory, launcher: [], backoffInitial: backoffInitial, backoffMax: .seconds(5),
            crashLoopLimit: crashLoopLimit, crashWindow: .seconds(60), healthInterval: .milliseconds(100),
            healthTimeout: .seconds(1), startupGrace: .seconds(20), unhealthyAfterFailures: 3,
            reapInterval: .milliseconds(20), logger: logger)
    }

    /// A python component serving `tenants` on a fresh port.
    func component(_ name: String, tenants: Set<String>, onTerm: String = "exit", stopTimeout: Duration = .seconds(10)) throws -> DesiredComponent {
        let port = try freePort()
        let spec = ComponentSpec(
            name: name, command: python3, arguments: [script, String(port), "{tenantFile}"],
            environment: ["REQUIRED_VAR": "yes", "ON_TERM": onTerm, "MARKER_DIR": markerDirectory],
            port: port, healthPath: "/healthz", reloadSignal: SIGHUP, stopTimeout: stopTimeout)
        return DesiredComponent(spec: spec, tenants: tenants)
    }

    func remove() { directory.remove() }
}

/// Runs `body` with a started agent, and always stops the agent and removes the directory.
func withAgent(_ fixture: Fixture, _ configuration: AgentConfiguration? = nil, _ body: (Agent) async throws -> Void) async throws {
    let agent = Agent(configuration: configuration ?? fixture.configuration())
    await agent.start()
    do {
        try await body(agent)
    } catch {
        await agent.stop()
        fixture.remove()
        throw error
    }
    await agent.stop()
    fixture.remove()
}

extension Agent {
    func status(of name: String) -> ComponentStatus? { status().first { $0.name == name } }
}

/// The process exists and is not a zombie.
func isAlive(_ pid: Int32) -> Bool {
    guard let stat = ProcFS.stat(pid: pid) else { return false }
    return stat.state != "Z" && stat.state != "X"
}

/// Pids of every live process whose process group is `pgid` (a /proc scan).
func processesInGroup(_ pgid: Int32) -> [Int32] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let stat = ProcFS.stat(pid: pid) else { return false }
        return stat.processGroup == pgid && stat.state != "Z" && stat.state != "X"
    }
}

func fileText(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
