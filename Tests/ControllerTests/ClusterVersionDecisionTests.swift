import ClusterModel
import Controller
import Testing

/// What the leader records of the versions members report, and what `peer upgrade finish`
/// raises the cluster version to.
struct ClusterVersionDecisionTests {
    func state(_ versions: [String: UInt32], minVersion: UInt32? = nil) -> ClusterState {
        var w = World()
        w.addActiveInstances(versions.keys.sorted())
        for (id, v) in versions.sorted(by: { $0.key < $1.key }) {
            var c = PBReportInstanceVersion()
            c.id = id
            c.version = "0.\(v).0-dev"
            c.protocolVersion = v
            #expect(w.run(.reportInstanceVersion(c)) == .applied)
        }
        if let minVersion {
            var c = PBSetMinVersion()
            c.protocolVersion = minVersion
            #expect(w.run(.setMinVersion(c)) == .applied)
        }
        return w.state
    }

    @Test func onlyChangedVersionsAreRecordedAndNeverOneBelowTheClusterVersion() {
        let s = state(["1": 2, "2": 2, "3": 2], minVersion: 2)
        let reported: [String: ClusterVersion.Reported] = [
            "1": .init(build: "0.2.0-dev", protocolMax: 2),  // unchanged
            "2": .init(build: "0.3.0-dev", protocolMax: 3),  // upgraded
            "3": .init(build: "0.1.0-dev", protocolMax: 1),  // too old: it halts, nothing recorded
            "9": .init(build: "0.2.0-dev", protocolMax: 2),  // not an instance
        ]
        let records = ClusterVersion.reports(state: s, reported: reported)
        #expect(records.map(\.id) == ["2"])
        #expect(records.first?.version == "0.3.0-dev" && records.first?.protocolVersion == 3)
    }

    @Test func theRaiseGoesToWhatEveryInstanceRunsOrSaysWhoLags() {
        switch ClusterVersion.raiseTarget(state: state(["1": 2, "2": 2, "3": 2]), members: ["1", "2", "3"]) {
        case .success(let v): #expect(v == 2)
        case .failure(let e): Issue.record("refused: \(e)")
        }
        switch ClusterVersion.raiseTarget(state: state(["1": 2, "2": 1, "3": 2]), members: ["1", "2", "3"]) {
        case .success(let v): Issue.record("raised to \(v) with instance 2 on version 1")
        case .failure(let e): #expect(e.description.contains("2 (0.1.0-dev)"), "\(e)")
        }
        switch ClusterVersion.raiseTarget(state: state(["1": 2, "2": 2]), members: ["1", "2", "4"]) {
        case .success(let v): Issue.record("raised to \(v) with member 4 unknown")
        case .failure(let e): #expect(e.description.contains("member 4 is not an instance"), "\(e)")
        }
    }
}
