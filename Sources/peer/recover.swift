import ArgumentParser
import ClusterModel
import Foundation
import PeerAPI
import PeerConfig
import PeerStore
import Raft

/// `peer recover --config FILE --id ID`: the way out when a majority of the voters is lost for
/// good (docs/operations.md §Recovery), as etcd's `--force-new-cluster` and Consul's peers.json.
/// On a stopped survivor, it rewrites the store as a one-voter cluster: every entry of its log
/// applied (those it never learnt were committed too, as etcd does: they may have been), the
/// state saved as a snapshot at the last index with this peer the only voter, the log dropped.
/// The old store is kept beside it. Refused while this peer runs or any other member answers:
/// two "recovered" clusters would be a split brain.
struct RecoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Make a stopped survivor the only voter of a new configuration, from its own log, after a majority was lost for good. Refused while any other member answers.")

    @Option(help: "The cluster configuration file.")
    var config: String

    @Option(help: "The surviving peer's id (it must be stopped).")
    var id: UInt64

    @Option(help: "How long each other member is given to answer before it counts as gone, in milliseconds.")
    var probeTimeoutMs: Int = 2_000

    func run() async throws {
        guard (100...30_000).contains(probeTimeoutMs) else { throw ValidationError("--probe-timeout-ms must be 100...30000") }
        let ctx = try ClusterContext(configPath: config)
        let cfg = ctx.config
        guard cfg.peer(id: id) != nil else { throw ValidationError("peer \(id) is not in \(config)") }
        if let pid = PeerProcesses.runningPID(pidFile: cfg.pidFilePath(for: id), id: id) {
            throw CLIError("peer \(id) runs (pid \(pid)): stop it first (`peer down`); nothing was changed")
        }
        let dir = cfg.dataDirectory(for: id)
        let path = dir + "/raft.sqlite"
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("peer \(id) has no store at \(path): nothing to recover from") }

        let old = try Self.replay(path: path, cluster: cfg.cluster, id: id)
        // A learner's or a removed member's log may lack committed entries: only a voter's
        // holds every one (it took part in committing them, or learnt them from who did).
        guard old.conf.voters.contains(id) else {
            throw CLIError("peer \(id) is not a voter of the configuration in its data (voters \(old.conf.voters.sorted().map(String.init).joined(separator: ", "))): its log may lack committed entries; recover from a voter; nothing was changed")
        }

        // Every other member the config file or the state names must be silent.
        var others: [(UInt64, String, Int)] = cfg.peers.filter { $0.id != id }.map { ($0.id, $0.apiAddress.host, Int($0.apiAddress.port)) }
        for i in old.state.allInstances where i.state != .removed {
            guard let n = UInt64(i.id), n != id, !others.contains(where: { $0.0 == n }), let api = HostPort(i.apiAddress) else { continue }
            others.append((n, api.host, Int(api.port)))
        }
        let answering = await MemberProbe.answering(others, client: ctx.client, timeoutMillis: probeTimeoutMs)
        guard answering.isEmpty else {
            throw CLIError("""
                member(s) \(answering.map { "\($0.id) at \($0.description)" }.joined(separator: ", ")) answer: peer recover is only for a majority \
                lost for good, and every other member must be stopped (`peer down`) first; nothing was changed
                """)
        }

        let recovered = path + ".recovered"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: recovered + suffix) }
        let metadata = SnapshotMetadata(index: old.lastIndex, term: old.lastTerm, conf: ConfState(voters: [id]))
        do {
            try PeerStore.create(
                path: recovered, clusterID: cfg.cluster, peerID: id,
                seed: PeerStore.Seed(metadata: metadata, data: old.state.encodeSnapshot(), hardState: HardState(term: old.hardState.term, commit: old.lastIndex)))
        } catch {
            throw CLIError("cannot write the recovered store \(recovered): \(error); nothing was changed")
        }
        let backup = path + ".before-recover-\(Int64(Date().timeIntervalSince1970 * 1000))"
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            guard rename(path + suffix, backup + suffix) == 0 else {
                throw CLIError("cannot move \(path + suffix) to \(backup + suffix): \(String(cString: strerror(errno))); the recovered store is at \(recovered)")
            }
        }
        guard rename(recovered, path) == 0 else {
            throw CLIError("cannot move \(recovered) to \(path): \(String(cString: strerror(errno))); the old store is at \(backup)")
        }
        let dfd = open(dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
        print("""
            peer \(id): recovered as the only voter at index \(old.lastIndex), term \(old.lastTerm) \
            (\(old.applied) entries replayed, \(old.lastIndex - min(old.hardState.commit, old.lastIndex)) of them not known committed before; \
            was a member of \(old.conf.voters.sorted().map(String.init).joined(separator: ","))), \(old.state.tenantCount) tenant(s), digest \(old.state.stateDigestHex)
            the old store is kept at \(backup)
            next: `peer up --config \(config) --id \(id)`; then for every other member: move its data directory away, \
            `peer up --config \(config) --id N --existing`, `peer members add N --config \(config)`
            """)
    }

    struct Replayed {
        var state: ClusterState
        var hardState: HardState
        var conf: ConfState
        var lastIndex: LogIndex
        var lastTerm: Term
        var applied: Int
    }

    /// The survivor's state with every entry of its log applied, read without changing the store.
    static func replay(path: String, cluster: String, id: UInt64) throws -> Replayed {
        do {
            let store = try PeerStore.open(path: path, clusterID: cluster, peerID: id, initialConf: ConfState(voters: []))
            defer { try? store.close() }
            let (hs, conf) = try store.initialState()
            let data = try store.snapshotData()
            var state = data.isEmpty ? ClusterState() : try ClusterState(snapshot: data)
            let last = try store.lastIndex()
            var next = try store.firstIndex()
            var applied = 0
            while next <= last {
                let batch = try store.entries(next, last + 1, maxBytes: 4 << 20)
                guard !batch.isEmpty else { throw CLIError("the log of \(path) returned no entry at \(next) (last \(last))") }
                for e in batch {
                    if e.kind == .normal && !e.data.isEmpty {
                        do { _ = try state.apply(e.data, at: e.index) } catch {
                            throw CLIError("entry \(e.index) of \(path) cannot be applied by this build: \(error); nothing was changed")
                        }
                    }
                    applied += 1
                }
                next = batch.last!.index + 1
            }
            return Replayed(state: state, hardState: hs, conf: conf, lastIndex: last, lastTerm: try store.term(last), applied: applied)
        } catch let e as CLIError {
            throw e
        } catch {
            throw CLIError("cannot read the store \(path): \(error); nothing was changed")
        }
    }
}
