import ClusterModel

/// The cluster version (docs/operations.md §Upgrades; ARCHITECTURE §12): the state's
/// `minProtocolVersion`, as etcd's cluster version. Members report the build and the protocol
/// versions they run; the leader records them (`ReportInstanceVersion`), the operator raises the
/// cluster version once every member runs the target (`peer upgrade finish`) and lowers it before
/// going back to an older release (`peer downgrade`). Pure: the loops and the API feed it.
public enum ClusterVersion {
    /// What one member says it runs.
    public struct Reported: Sendable, Hashable {
        public var build: String
        public var protocolMax: UInt32

        public init(build: String, protocolMax: UInt32) {
            self.build = build
            self.protocolMax = protocolMax
        }
    }

    /// The records to commit: every live instance whose recorded build or protocol version is not
    /// what it reports now (after an upgrade or a downgrade of its binary). A member that reports
    /// less than the cluster version is left alone: it halts rather than joins (it is too old).
    public static func reports(state: ClusterState, reported: [String: Reported]) -> [PBReportInstanceVersion] {
        var out: [PBReportInstanceVersion] = []
        for (id, r) in reported.sorted(by: { $0.key < $1.key }) {
            guard let instance = state.instance(id), instance.state != .removed else { continue }
            guard instance.version != r.build || instance.protocolVersion != r.protocolMax else { continue }
            guard r.protocolMax >= max(1, state.minProtocolVersion), !r.build.isEmpty else { continue }
            var c = PBReportInstanceVersion()
            c.id = id
            c.version = r.build
            c.protocolVersion = r.protocolMax
            out.append(c)
        }
        return out
    }

    /// The version `peer upgrade finish` raises the cluster to: the lowest protocol version the
    /// live instances run. Refused (with why) when that is no raise, or when a member of the Raft
    /// configuration has not reported what it runs.
    public static func raiseTarget(state: ClusterState, members: Set<String>) -> Result<UInt32, Refusal> {
        let current = max(1, state.minProtocolVersion)
        let live = state.allInstances.filter { $0.state != .removed }
        if let unknown = members.sorted().first(where: { id in !live.contains { $0.id == id } }) {
            return .failure(Refusal("member \(unknown) is not an instance of the state yet; wait until it is registered"))
        }
        guard let lowest = live.min(by: { ($0.protocolVersion, $0.id) < ($1.protocolVersion, $1.id) }) else {
            return .failure(Refusal("no instance is registered"))
        }
        guard lowest.protocolVersion > current else {
            let behind = live.filter { $0.protocolVersion <= current }.map { "\($0.id) (\($0.version))" }.sorted().joined(separator: ", ")
            return .failure(Refusal("the cluster version is \(current) and instance(s) \(behind) run no higher protocol version: upgrade them first"))
        }
        return .success(lowest.protocolVersion)
    }

    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
        public init(_ d: String) { description = d }
    }
}
