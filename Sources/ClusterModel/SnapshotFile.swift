import Crypto

/// A backup of the cluster state (`peer snapshot save FILE`, docs/operations.md §Backup): the
/// state as the leader applied it at one index, with what a restore needs to seed a new cluster
/// and what an operator needs to tell two backups apart. Pure: bytes in, bytes out.
///
/// Layout: `PEERSNAP` · format (u32, big-endian) · header length (u32) · header (UTF-8
/// `key=value` lines, sorted) · the state's snapshot bytes (`ClusterState.encodeSnapshot()`:
/// magic, SHA-256 of the state, state) · SHA-256 of everything before it. Any byte changed,
/// added or cut is caught by the trailing digest; a state that decodes but does not match the
/// header's digest or index is refused too.
public struct SnapshotFile: Sendable, Hashable {
    public static let magic: [UInt8] = Array("PEERSNAP".utf8)
    public static let format: UInt32 = 1
    /// Larger headers are refused before they are read.
    public static let headerBytesMax = 64 << 10

    /// The cluster (the config file's `cluster:`) the state was saved from.
    public var clusterID: String
    /// The Raft index and term the state is as of (the leader's applied index; its term then).
    public var index: UInt64
    public var term: UInt64
    public var savedAtMs: Int64
    /// The peer that answered (the leader), and its build.
    public var savedBy: UInt64
    public var version: String
    /// The Raft configuration at the time, for the record (a restore founds its own).
    public var voters: [UInt64]
    public var learners: [UInt64]
    /// `ClusterState.encodeSnapshot()`.
    public var state: [UInt8]

    public init(clusterID: String, index: UInt64, term: UInt64, savedAtMs: Int64, savedBy: UInt64, version: String,
                voters: [UInt64], learners: [UInt64], state: [UInt8]) {
        self.clusterID = clusterID
        self.index = index
        self.term = term
        self.savedAtMs = savedAtMs
        self.savedBy = savedBy
        self.version = version
        self.voters = voters
        self.learners = learners
        self.state = state
    }

    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        case truncated(byteCount: Int, needed: Int)
        case notASnapshotFile
        case unsupportedFormat(UInt32)
        case badHeader(String)
        /// The trailing SHA-256 does not match: the file was changed or damaged.
        case digestMismatch
        case badState(SnapshotError)
        /// The state decodes but is not the one the header describes.
        case inconsistent(String)

        public var description: String {
            switch self {
            case .truncated(let n, let needed): "the file is truncated: \(n) bytes, at least \(needed) needed"
            case .notASnapshotFile: "not a peer snapshot file (it does not start with PEERSNAP)"
            case .unsupportedFormat(let f): "snapshot file format \(f) is not one this build reads (it reads format \(SnapshotFile.format)): use a newer peer"
            case .badHeader(let why): "the header is invalid: \(why)"
            case .digestMismatch: "the file's SHA-256 does not match its contents: it was changed or damaged"
            case .badState(let e): "the state inside is invalid: \(e)"
            case .inconsistent(let why): "the state does not match the header: \(why)"
            }
        }
    }

    public func encoded() -> [UInt8] {
        var header: [(String, String)] = [
            ("cluster", clusterID), ("index", "\(index)"), ("term", "\(term)"), ("savedAtMs", "\(savedAtMs)"), ("savedBy", "\(savedBy)"),
            ("version", version), ("voters", voters.map(String.init).joined(separator: ",")),
            ("learners", learners.map(String.init).joined(separator: ",")), ("stateBytes", "\(state.count)"),
        ]
        header.sort { $0.0 < $1.0 }
        let text = Array(header.map { "\($0.0)=\($0.1)\n" }.joined().utf8)
        var out = Self.magic
        out += Self.bigEndian(Self.format) + Self.bigEndian(UInt32(text.count)) + text + state
        out += Array(SHA256.hash(data: out))
        return out
    }

    /// Decodes and checks every byte: the digest, the header, the state (which must decode and
    /// validate as the model's own snapshots do). Never traps on bad bytes.
    public init(decoding bytes: [UInt8]) throws(Problem) {
        let fixed = Self.magic.count + 8
        guard bytes.count >= fixed + 32 else {
            if bytes.count >= Self.magic.count && Array(bytes[0..<Self.magic.count]) != Self.magic { throw .notASnapshotFile }
            throw .truncated(byteCount: bytes.count, needed: fixed + 32)
        }
        guard Array(bytes[0..<Self.magic.count]) == Self.magic else { throw .notASnapshotFile }
        let format = Self.u32(bytes, at: Self.magic.count)
        guard format == Self.format else { throw .unsupportedFormat(format) }
        let headerBytes = Int(Self.u32(bytes, at: Self.magic.count + 4))
        guard headerBytes <= Self.headerBytesMax else { throw .badHeader("\(headerBytes) bytes, more than \(Self.headerBytesMax)") }
        guard bytes.count >= fixed + headerBytes + 32 else { throw .truncated(byteCount: bytes.count, needed: fixed + headerBytes + 32) }
        let body = bytes[0..<(bytes.count - 32)]
        guard Array(SHA256.hash(data: body)) == Array(bytes[(bytes.count - 32)...]) else {
            throw .digestMismatch
        }
        guard let headerText = String(validating: bytes[fixed..<(fixed + headerBytes)], as: UTF8.self) else { throw .badHeader("not UTF-8") }
        var fields: [String: String] = [:]
        for line in headerText.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let eq = line.firstIndex(of: "=") else { throw .badHeader("line '\(line.prefix(80))' is not key=value") }
            fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        func field(_ key: String) throws(Problem) -> String {
            guard let v = fields[key] else { throw .badHeader("no \(key)") }
            return v
        }
        func number<T: FixedWidthInteger>(_ key: String) throws(Problem) -> T {
            guard let n = T(try field(key)) else { throw .badHeader("\(key) is not a number: \(fields[key] ?? "")") }
            return n
        }
        func ids(_ key: String) throws(Problem) -> [UInt64] {
            let v = try field(key)
            if v.isEmpty { return [] }
            var out: [UInt64] = []
            for part in v.split(separator: ",") {
                guard let n = UInt64(part) else { throw .badHeader("\(key) is not a list of ids: \(v.prefix(80))") }
                out.append(n)
            }
            return out
        }
        clusterID = try field("cluster")
        guard !clusterID.isEmpty else { throw .badHeader("the cluster id is empty") }
        index = try number("index")
        term = try number("term")
        savedAtMs = try number("savedAtMs")
        savedBy = try number("savedBy")
        version = try field("version")
        voters = try ids("voters")
        learners = try ids("learners")
        let stateBytes: Int = try number("stateBytes")
        guard stateBytes == body.count - fixed - headerBytes else {
            throw .badHeader("stateBytes \(stateBytes), but the file holds \(body.count - fixed - headerBytes)")
        }
        state = Array(body[(fixed + headerBytes)...])
    }

    /// The state, decoded and validated; it must be as of the header's index.
    public func decodedState() throws(Problem) -> ClusterState {
        let s: ClusterState
        do { s = try ClusterState(snapshot: state) } catch { throw .badState(error) }
        guard s.appliedIndex <= index else { throw .inconsistent("the state applied entry \(s.appliedIndex), after the header's index \(index)") }
        return s
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func u32(_ b: [UInt8], at i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
}
