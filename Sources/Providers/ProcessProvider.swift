import ChildProcesses
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The embedded provider: each instance is a process on this host (a `peer run`, by default),
/// in its own session so it outlives the leader that started it. What it knows lives in files,
/// so any peer on this host (a new leader) sees what an earlier one created:
///
///     <directory>/<cluster>/<instance>/record.json   ports, pid and the pid's start time
///     <directory>/<cluster>/<instance>/bootstrap/    the bootstrap files (0600)
///     <directory>/<cluster>/<instance>/output.log    the instance's stdout and stderr
///
/// The instance's data belongs under `{dir}` too, so `destroy` leaves nothing behind. Calls
/// are serialised across processes by an exclusive lock on `<directory>/<cluster>.lock`.
/// A pid is trusted only with the start time it had when it was spawned (pid reuse).
public struct ProcessProvider: InstanceProvider {
    public struct Settings: Sendable, Hashable {
        public var directory: String
        public var ports: PortPlan
        /// The argv; placeholders as `CommandTemplate`, plus `{dir}` (the instance's directory).
        public var command: CommandTemplate
        /// SIGTERM, then this long for the process to end, then SIGKILL.
        public var stopTimeout: Duration = .seconds(10)
        /// Environment entries added to the peer's own (minus `PEER_FAILPOINT`, which belongs
        /// to the process that was started with it).
        public var environment: [String: String] = [:]

        public init(directory: String, ports: PortPlan, command: CommandTemplate) {
            self.directory = directory
            self.ports = ports
            self.command = command
        }
    }

    public let kind = "process"
    public let settings: Settings

    public init(_ settings: Settings) {
        self.settings = settings
    }

    struct Record: Codable, Hashable {
        var clusterID: String
        var instanceID: String
        var addresses: InstanceAddresses
        /// 0 until the process is spawned.
        var pid: Int32
        var startTimeTicks: UInt64
        /// The program the instance runs instead of its command's first word, once `restart`
        /// gave it one (nil: the command's); every later start uses it too.
        var executable: String?
    }

    public func create(_ request: ProvisionRequest) async throws(ProviderError) -> ProvidedInstance {
        try Bootstrap.validate(request, provider: kind)
        let lock = try await lockCluster(request.clusterID, operation: "create", instance: request.instanceID)
        defer { lock.release() }
        let dir = instanceDirectory(request.clusterID, request.instanceID)
        var record: Record
        if let existing = try readRecord(dir, operation: "create", instance: request.instanceID) {
            if Self.isRunning(existing) { return provided(existing, running: true) }
            record = existing
        } else {
            let taken = try allPortsTaken()
            let base = try settings.ports.allocate(taken: taken, provider: kind, instance: request.instanceID)
            record = Record(clusterID: request.clusterID, instanceID: request.instanceID, addresses: settings.ports.addresses(base: base), pid: 0, startTimeTicks: 0)
            // The ports are held from here on, even if the spawn below fails: a retry reuses them.
            try makeDirectory(dir, instance: request.instanceID)
            try writeRecord(record, dir: dir)
        }
        try writeBootstrap(request.bootstrap, dir: dir, instance: request.instanceID)
        try spawn(&record, dir: dir, operation: "create")
        return provided(record, running: true)
    }

    public func restart(clusterID: String, instanceID: String, executable: String) async throws(ProviderError) -> ProvidedInstance {
        try Bootstrap.validateIDs(clusterID: clusterID, instanceID: instanceID, provider: kind, operation: "restart")
        guard executable.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: executable) else {
            throw ProviderError(kind, "restart", instance: instanceID, .invalidRequest, "\(executable) is not an executable file named by its absolute path on this host")
        }
        let lock = try await lockCluster(clusterID, operation: "restart", instance: instanceID)
        defer { lock.release() }
        let dir = instanceDirectory(clusterID, instanceID)
        guard var record = try readRecord(dir, operation: "restart", instance: instanceID) else {
            throw ProviderError(kind, "restart", instance: instanceID, .refused, "this provider holds no instance \(instanceID) (no \(dir)/record.json)")
        }
        try await stop(record, operation: "restart")
        record.executable = executable
        record.pid = 0
        record.startTimeTicks = 0
        try writeRecord(record, dir: dir)
        try spawn(&record, dir: dir, operation: "restart")
        return provided(record, running: true)
    }

    /// Starts the record's command (with its executable, if it has one) and records the pid.
    private func spawn(_ record: inout Record, dir: String, operation: String) throws(ProviderError) {
        var argv = settings.command.argv(
            cluster: record.clusterID, id: record.instanceID, bootstrap: dir + "/bootstrap", dir: dir, host: settings.ports.host, addresses: record.addresses)
        if let executable = record.executable { argv[0] = executable }
        let pid: pid_t
        do {
            var options = ChildProcess.Options(outputPath: dir + "/output.log", outputMode: 0o600, environment: environment(), grouping: .newSession)
            options.searchPath = !argv[0].contains("/")
            pid = try ChildProcess.spawn(argv, options)
        } catch {
            throw ProviderError(kind, operation, instance: record.instanceID, .unavailable, "\(error)")
        }
        guard let stat = ProcFS.stat(pid: pid) else {
            // Ended before we could read its start time: record it as stopped (a retry restarts it).
            _ = ChildProcess.reapIfExited(pid)
            throw ProviderError(kind, operation, instance: record.instanceID, .refused,
                                "\(argv[0]) exited at once; its output is in \(dir)/output.log")
        }
        record.pid = pid
        record.startTimeTicks = stat.startTimeTicks
        try writeRecord(record, dir: dir)
    }

    /// SIGTERM to the instance's process group, SIGKILL after `stopTimeout`; returns once it is gone.
    private func stop(_ record: Record, operation: String) async throws(ProviderError) {
        guard Self.isRunning(record) else { return }
        ChildProcess.signalGroup(record.pid, SIGTERM)
        if await !Self.waitUntilGone(record, within: settings.stopTimeout) {
            ChildProcess.signalGroup(record.pid, SIGKILL)
            guard await Self.waitUntilGone(record, within: .seconds(5)) else {
                throw ProviderError(kind, operation, instance: record.instanceID, .refused, "pid \(record.pid) still runs 5 s after SIGKILL (uninterruptible sleep?)")
            }
        }
    }

    public func destroy(clusterID: String, instanceID: String) async throws(ProviderError) {
        try Bootstrap.validateIDs(clusterID: clusterID, instanceID: instanceID, provider: kind, operation: "destroy")
        let lock = try await lockCluster(clusterID, operation: "destroy", instance: instanceID)
        defer { lock.release() }
        let dir = instanceDirectory(clusterID, instanceID)
        guard let record = try readRecord(dir, operation: "destroy", instance: instanceID) else {
            try removeDirectory(dir, instance: instanceID)
            return
        }
        try await stop(record, operation: "destroy")
        try removeDirectory(dir, instance: instanceID)
    }

    public func list(clusterID: String) async throws(ProviderError) -> [ProvidedInstance] {
        try Bootstrap.validateIDs(clusterID: clusterID, instanceID: nil, provider: kind, operation: "list")
        return try records(clusterID).map { provided($0, running: Self.isRunning($0)) }.sorted { instanceIDOrder($0.instanceID, $1.instanceID) }
    }

    // MARK: - Processes

    static func isRunning(_ record: Record) -> Bool {
        guard record.pid > 1, let stat = ProcFS.stat(pid: record.pid), stat.startTimeTicks == record.startTimeTicks else { return false }
        if stat.state == "Z" {
            // Our own child that ended: reap it so its pid is freed.
            _ = ChildProcess.reapIfExited(record.pid)
            return false
        }
        return true
    }

    /// Polls (every 20 ms, bounded by `within`) until the process has ended.
    static func waitUntilGone(_ record: Record, within: Duration) async -> Bool {
        let deadline = ContinuousClock.now + within
        while isRunning(record) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    private func provided(_ record: Record, running: Bool) -> ProvidedInstance {
        ProvidedInstance(
            clusterID: record.clusterID, instanceID: record.instanceID, addresses: record.addresses,
            state: running ? .running : .stopped, handle: record.pid > 0 ? "pid \(record.pid)" : "not started")
    }

    private func environment() -> [String] {
        var env = ProcessInfo.processInfo.environment
        env["PEER_FAILPOINT"] = nil
        for (k, v) in settings.environment { env[k] = v }
        return env.map { "\($0.key)=\($0.value)" }.sorted()
    }

    // MARK: - Files

    private func clusterDirectory(_ clusterID: String) -> String { settings.directory + "/" + clusterID }

    private func instanceDirectory(_ clusterID: String, _ instanceID: String) -> String { clusterDirectory(clusterID) + "/" + instanceID }

    private func records(_ clusterID: String) throws(ProviderError) -> [Record] {
        let dir = clusterDirectory(clusterID)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var records: [Record] = []
        for name in names where Bootstrap.isID(name) {
            if let record = try readRecord(dir + "/" + name, operation: "list", instance: name) { records.append(record) }
        }
        return records
    }

    /// Ports held by every cluster's instances in the directory: clusters share the host.
    private func allPortsTaken() throws(ProviderError) -> Set<Int> {
        guard let clusters = try? FileManager.default.contentsOfDirectory(atPath: settings.directory) else { return [] }
        var taken = Set<Int>()
        for cluster in clusters where Bootstrap.isID(cluster) {
            for record in try records(cluster) { taken.formUnion(settings.ports.ports(of: record.addresses)) }
        }
        return taken
    }

    private func readRecord(_ dir: String, operation: String, instance: String) throws(ProviderError) -> Record? {
        let path = dir + "/record.json"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path), data.count <= 64 * 1024 else {
            throw ProviderError(kind, operation, instance: instance, .storage, "cannot read \(path) (missing permission, or over 64 KiB)")
        }
        do {
            return try JSONDecoder().decode(Record.self, from: data)
        } catch {
            throw ProviderError(kind, operation, instance: instance, .storage, "\(path) is not a record this provider wrote: \(error); remove the instance's directory by hand once its process is gone")
        }
    }

    private func writeRecord(_ record: Record, dir: String) throws(ProviderError) {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try encoder.encode(record).write(to: URL(fileURLWithPath: dir + "/record.json"), options: .atomic)
        } catch {
            throw ProviderError(kind, "create", instance: record.instanceID, .storage, "cannot write \(dir)/record.json: \(error)")
        }
    }

    private func makeDirectory(_ dir: String, instance: String) throws(ProviderError) {
        do {
            try FileManager.default.createDirectory(atPath: dir + "/bootstrap", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            _ = chmod(dir, 0o700)
        } catch {
            throw ProviderError(kind, "create", instance: instance, .storage, "cannot create \(dir): \(error)")
        }
    }

    private func writeBootstrap(_ files: [String: String], dir: String, instance: String) throws(ProviderError) {
        for (name, contents) in files {
            let path = dir + "/bootstrap/" + name
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw ProviderError(kind, "create", instance: instance, .storage, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            let bytes = Array(contents.utf8)
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == bytes.count else {
                throw ProviderError(kind, "create", instance: instance, .storage, "cannot write \(path): short write")
            }
        }
    }

    private func removeDirectory(_ dir: String, instance: String) throws(ProviderError) {
        guard FileManager.default.fileExists(atPath: dir) else { return }
        do {
            try FileManager.default.removeItem(atPath: dir)
        } catch {
            throw ProviderError(kind, "destroy", instance: instance, .storage, "cannot remove \(dir): \(error)")
        }
    }

    // MARK: - The lock

    struct Lock {
        let fd: Int32
        func release() {
            _ = flock(fd, LOCK_UN)
            close(fd)
        }
    }

    /// An exclusive flock on `<directory>/<cluster>.lock`, tried every 10 ms for up to 30 s.
    private func lockCluster(_ clusterID: String, operation: String, instance: String) async throws(ProviderError) -> Lock {
        do {
            try FileManager.default.createDirectory(atPath: clusterDirectory(clusterID), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ProviderError(kind, operation, instance: instance, .storage, "cannot create \(clusterDirectory(clusterID)): \(error)")
        }
        let path = clusterDirectory(clusterID) + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ProviderError(kind, operation, instance: instance, .storage, "cannot open \(path): \(String(cString: strerror(errno)))") }
        let deadline = ContinuousClock.now + .seconds(30)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, ContinuousClock.now < deadline else {
                close(fd)
                throw ProviderError(kind, operation, instance: instance, .storage, "\(path) stayed locked for 30 s (another peer's provider call hangs?)")
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return Lock(fd: fd)
    }
}
