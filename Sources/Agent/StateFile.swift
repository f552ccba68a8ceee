import ChildProcesses
import Foundation

/// The crash-recovery record `<directory>/components.json`: for each component process the
/// agent started and has not reaped, its pid, process group and start time. If the peer is
/// SIGKILLed and a component outlives it (no launcher, or the launcher failed), the next
/// `start()` finds the group here and stops it before starting anew. The start time
/// (field 22 of `/proc/<pid>/stat`) guards against pid reuse: a pid whose start time differs is
/// another process and is never signalled.
struct StateFile: Codable, Hashable {
    static let formatVersion = 1
    static let fileBytesMax = 1024 * 1024

    struct Entry: Codable, Hashable {
        var name: String
        var pid: Int32
        var pgid: Int32
        var startTimeTicks: UInt64
        /// The component's stop timeout when it was started: recovery waits this long after
        /// SIGTERM before SIGKILL.
        var stopTimeoutMs: Int64
    }

    var version: Int
    var components: [Entry]

    init(components: [Entry]) {
        version = Self.formatVersion
        self.components = components
    }

    struct Invalid: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// Decodes and checks the file; nil when there is no file.
    static func read(_ path: String) throws(Invalid) -> StateFile? {
        guard access(path, F_OK) == 0 else { return nil }
        guard let bytes = ProcFS.readBytes(path, bytesMax: fileBytesMax) else {
            throw Invalid(message: "\(path): unreadable or larger than \(fileBytesMax) bytes")
        }
        let file: StateFile
        do {
            file = try JSONDecoder().decode(StateFile.self, from: Data(bytes))
        } catch {
            throw Invalid(message: "\(path): not a state file: \(error)")
        }
        try file.validate(path)
        return file
    }

    func validate(_ path: String) throws(Invalid) {
        guard version == Self.formatVersion else { throw Invalid(message: "\(path): version \(version), expected \(Self.formatVersion)") }
        guard components.count <= AgentLimits.componentsMax else {
            throw Invalid(message: "\(path): \(components.count) entries, max \(AgentLimits.componentsMax)")
        }
        for entry in components {
            do throws(ComponentSpecError) { try DesiredComponent.validateName(entry.name) } catch {
                throw Invalid(message: "\(path): \(error)")
            }
            // pid 0 and 1 and negative ids would make kill() hit whole groups or init.
            guard entry.pid > 1 else { throw Invalid(message: "\(path): \(entry.name): pid \(entry.pid) must be > 1") }
            // The agent's components lead their own group; a live leader pins its group id,
            // which is what makes signalling the group after a start-time check safe.
            guard entry.pgid == entry.pid else { throw Invalid(message: "\(path): \(entry.name): pgid \(entry.pgid) differs from pid \(entry.pid)") }
            let maxMs = Int64(AgentLimits.stopTimeoutMax.components.seconds) * 1000
            guard entry.stopTimeoutMs > 0, entry.stopTimeoutMs <= maxMs else {
                throw Invalid(message: "\(path): \(entry.name): stopTimeoutMs \(entry.stopTimeoutMs) not in 1...\(maxMs)")
            }
        }
    }

    func write(_ path: String) throws(FileError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Encoding plain integers and strings cannot fail.
        let data = try! encoder.encode(self)
        try AtomicFile.write([UInt8](data), to: path)
    }
}
