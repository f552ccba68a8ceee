/// Why a cluster configuration was refused. Every error names the file, the key path of the
/// value at fault (`peers[1].api`, `timing.tickMs`; empty for the document as a whole), the line
/// when it is known, and the reason in words an operator can act on without reading code.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file as it was named to `ClusterConfig.load(path:)` (or to `parse(file:)`); nil when
    /// the text came from elsewhere.
    public var file: String?
    /// Where in the document: keys joined with `.`, sequence positions as `[i]` (0-based).
    public var keyPath: String
    /// 1-based line of the value (or key) at fault, when the YAML parser reported one.
    public var line: Int?
    /// What is wrong, e.g. "port 70000 is out of range 1-65535".
    public var reason: String

    public init(file: String?, keyPath: String, line: Int?, reason: String) {
        self.file = file
        self.keyPath = keyPath
        self.line = line
        self.reason = reason
    }

    /// `FILE:LINE: KEY.PATH: reason`, leaving out the parts that are unknown.
    public var description: String {
        var location = file ?? "<config>"
        if let line { location += ":\(line)" }
        return keyPath.isEmpty ? "\(location): \(reason)" : "\(location): \(keyPath): \(reason)"
    }
}
