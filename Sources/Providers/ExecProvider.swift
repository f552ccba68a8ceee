import ChildProcesses
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The provider for any cloud: three operator scripts, `create`, `destroy` and `list`, each
/// given one JSON object on stdin and answering one on stdout (docs/providers.md §exec has the
/// schema). A script that runs past its timeout has its process group killed; one that exits
/// non-zero has the end of its stderr in the error; one that prints anything but the documented
/// JSON is refused. Scripts must be idempotent by instance id, as every provider is.
public struct ExecProvider: InstanceProvider {
    public struct Settings: Sendable, Hashable {
        public var create: [String]
        public var destroy: [String]
        public var list: [String]
        public var createTimeout: Duration = .seconds(300)
        public var destroyTimeout: Duration = .seconds(120)
        public var listTimeout: Duration = .seconds(30)
        /// Where each call's stdin, stdout and stderr files live while it runs (created 0700;
        /// stdin holds the bootstrap files, so it is 0600 and removed after the call).
        public var workDirectory: String

        public init(create: [String], destroy: [String], list: [String], workDirectory: String) {
            self.create = create
            self.destroy = destroy
            self.list = list
            self.workDirectory = workDirectory
        }
    }

    /// The JSON schema's version, sent in every request.
    public static let schemaVersion = 1
    /// A script's stdout beyond this is refused; its stderr is quoted up to `stderrQuoteBytes`.
    public static let stdoutBytesMax = 1 << 20
    static let stderrQuoteBytes = 512

    public let kind = "exec"
    public let settings: Settings

    public init(_ settings: Settings) {
        self.settings = settings
    }

    struct Request: Encodable {
        var version = ExecProvider.schemaVersion
        var operation: String
        var cluster: String
        var instance: String?
        var bootstrap: [String: String]?
    }

    struct Answer: Decodable {
        var instance: String
        var addresses: InstanceAddresses
        var state: ProvidedInstance.State?
        var handle: String?
    }

    struct ListAnswer: Decodable {
        var instances: [Answer]
    }

    public func create(_ request: ProvisionRequest) async throws(ProviderError) -> ProvidedInstance {
        try Bootstrap.validate(request, provider: kind)
        let out = try await run(
            "create", settings.create, Request(operation: "create", cluster: request.clusterID, instance: request.instanceID, bootstrap: request.bootstrap),
            timeout: settings.createTimeout, instance: request.instanceID)
        let answer: Answer = try decode(out, operation: "create", instance: request.instanceID)
        guard answer.instance == request.instanceID else {
            throw ProviderError(kind, "create", instance: request.instanceID, .badAnswer, "the script answered for instance \"\(answer.instance)\"")
        }
        return try instance(answer, clusterID: request.clusterID, operation: "create")
    }

    public func destroy(clusterID: String, instanceID: String) async throws(ProviderError) {
        try Bootstrap.validateIDs(clusterID: clusterID, instanceID: instanceID, provider: kind, operation: "destroy")
        _ = try await run("destroy", settings.destroy, Request(operation: "destroy", cluster: clusterID, instance: instanceID), timeout: settings.destroyTimeout, instance: instanceID)
    }

    public func list(clusterID: String) async throws(ProviderError) -> [ProvidedInstance] {
        try Bootstrap.validateIDs(clusterID: clusterID, instanceID: nil, provider: kind, operation: "list")
        let out = try await run("list", settings.list, Request(operation: "list", cluster: clusterID), timeout: settings.listTimeout, instance: nil)
        let answer: ListAnswer = try decode(out, operation: "list", instance: nil)
        var seen = Set<String>()
        var instances: [ProvidedInstance] = []
        for item in answer.instances {
            guard seen.insert(item.instance).inserted else {
                throw ProviderError(kind, "list", instance: nil, .badAnswer, "the script listed instance \"\(item.instance)\" twice")
            }
            instances.append(try instance(item, clusterID: clusterID, operation: "list"))
        }
        return instances.sorted { instanceIDOrder($0.instanceID, $1.instanceID) }
    }

    private func instance(_ a: Answer, clusterID: String, operation: String) throws(ProviderError) -> ProvidedInstance {
        guard Bootstrap.isID(a.instance) else {
            throw ProviderError(kind, operation, instance: nil, .badAnswer, "the script named instance \"\(a.instance)\", not 1-\(Bootstrap.idCharactersMax) of [a-z0-9-]")
        }
        let fields = [("peer", a.addresses.peer), ("api", a.addresses.api), ("router", a.addresses.router), ("routerControl", a.addresses.routerControl), ("components", a.addresses.components)]
        for case let (name, value?) in fields where PortPlan.port(of: value) == nil || value.hasPrefix(":") {
            throw ProviderError(kind, operation, instance: a.instance, .badAnswer, "addresses.\(name) \"\(value)\" is not host:port")
        }
        return ProvidedInstance(clusterID: clusterID, instanceID: a.instance, addresses: a.addresses, state: a.state ?? .running, handle: a.handle ?? "")
    }

    private func decode<T: Decodable>(_ out: [UInt8], operation: String, instance: String?) throws(ProviderError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(out))
        } catch {
            let head = String(decoding: out.prefix(200), as: UTF8.self)
            throw ProviderError(kind, operation, instance: instance, .badAnswer, "the \(operation) script printed what is not the documented JSON (\(Self.describe(error))); it began: \(head.debugDescription)")
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "no \"\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))\""
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "\"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
        case DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON" : "\"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" is invalid"
        default:
            return "\(error)"
        }
    }

    /// Runs one script with `request` on stdin; its stdout when it exits 0 within `timeout`.
    private func run(_ operation: String, _ argv: [String], _ request: Request, timeout: Duration, instance: String?) async throws(ProviderError) -> [UInt8] {
        guard let program = argv.first, !program.isEmpty else {
            throw ProviderError(kind, operation, instance: instance, .invalidRequest, "no \(operation) script is configured")
        }
        let work = settings.workDirectory + "/\(operation)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        do {
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ProviderError(kind, operation, instance: instance, .storage, "cannot create \(work): \(error)")
        }
        defer { try? FileManager.default.removeItem(atPath: work) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        guard let input = try? encoder.encode(request), FileManager.default.createFile(atPath: work + "/stdin.json", contents: input, attributes: [.posixPermissions: 0o600]) else {
            throw ProviderError(kind, operation, instance: instance, .storage, "cannot write \(work)/stdin.json")
        }
        var env = ProcessInfo.processInfo.environment
        env["PEER_FAILPOINT"] = nil
        var options = ChildProcess.Options(outputPath: work + "/stdout", outputMode: 0o600, environment: env.map { "\($0.key)=\($0.value)" }, grouping: .newSession)
        options.inputPath = work + "/stdin.json"
        options.errorPath = work + "/stderr"
        options.searchPath = !program.contains("/")
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(argv, options)
        } catch {
            throw ProviderError(kind, operation, instance: instance, .unavailable, "\(error)")
        }
        let deadline = ContinuousClock.now + timeout
        var exit: ChildExit?
        var pause = Duration.milliseconds(5)
        while exit == nil {
            exit = ChildProcess.reapIfExited(pid)
            if exit != nil { break }
            guard ContinuousClock.now < deadline else {
                ChildProcess.signalGroup(pid, SIGKILL)
                _ = ChildProcess.reapBlocking(pid)
                throw ProviderError(kind, operation, instance: instance, .timedOut,
                                    "\(program) did not finish within \(timeout); its process group was killed\(Self.stderrTail(work))")
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(100))
        }
        guard case .exited(code: 0) = exit else {
            throw ProviderError(kind, operation, instance: instance, .refused, "\(program) \(exit.map { "\($0)" } ?? "ended")\(Self.stderrTail(work))")
        }
        guard let out = ProcFS.readBytes(work + "/stdout", bytesMax: Self.stdoutBytesMax) else {
            throw ProviderError(kind, operation, instance: instance, .badAnswer, "\(program) printed more than \(Self.stdoutBytesMax) bytes (or its stdout file is gone)")
        }
        return out
    }

    /// `; stderr: "..."` with the last bytes the script wrote to stderr, or nothing.
    static func stderrTail(_ work: String) -> String {
        guard let bytes = ProcFS.readBytes(work + "/stderr", bytesMax: 16 << 20), !bytes.isEmpty else { return "" }
        let tail = String(decoding: bytes.suffix(stderrQuoteBytes), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return "; stderr: \(tail.debugDescription)"
    }
}
