import ArgumentParser
import ClusterModel
import Crypto
import Foundation
import PeerAPI
import PeerConfig
import PeerStore
import Raft

/// `peer snapshot save|inspect|restore`: backups of the cluster state (docs/operations.md
/// §Backup and restore), as etcd's `snapshot save` and `snapshot restore`.
struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Save the cluster state to a file (from the leader, consistent), inspect a file, restore one into a new cluster's data directories.",
        subcommands: [SnapshotSave.self, SnapshotInspect.self, SnapshotRestore.self]
    )

    /// The largest snapshot file read or fetched.
    static let fileBytesMax = 1 << 30

    static func read(_ path: String) throws -> SnapshotFile {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let size = attributes?[.size] as? Int else { throw CLIError("\(path): no such file") }
        guard size <= fileBytesMax else { throw CLIError("\(path): \(size) bytes, more than the \(fileBytesMax) a snapshot file may have") }
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot be read") }
        do {
            let file = try SnapshotFile(decoding: Array(data))
            _ = try file.decodedState()
            return file
        } catch {
            throw CLIError("\(path): \(error)")
        }
    }

    static func describe(_ file: SnapshotFile, state: ClusterState) -> [(String, String)] {
        let saved = Date(timeIntervalSince1970: Double(file.savedAtMs) / 1000)
        return [
            ("cluster", file.clusterID), ("index", "\(file.index)"), ("term", "\(file.term)"),
            ("saved", ISO8601DateFormatter().string(from: saved) + " by peer \(file.savedBy) (\(file.version))"),
            ("voters", file.voters.map(String.init).joined(separator: ",")),
            ("learners", file.learners.isEmpty ? "-" : file.learners.map(String.init).joined(separator: ",")),
            ("tenants", "\(state.tenantCount)"), ("instances", "\(state.allInstances.count)"),
            ("state bytes", "\(file.state.count)"), ("state digest", state.stateDigestHex),
        ]
    }

    static func printFields(_ fields: [(String, String)]) {
        let width = fields.map(\.0.count).max() ?? 0
        for (k, v) in fields { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
    }
}

struct SnapshotSave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save", abstract: "Write the cluster state, as of a linearizable read on the leader, to FILE (atomically; refused if FILE exists).")

    @Argument(help: "Where to write the snapshot.")
    var file: String

    @OptionGroup var options: TenantOptions

    func run() async throws {
        guard !FileManager.default.fileExists(atPath: file) else { throw CLIError("\(file) exists; nothing was written (choose a new name)") }
        let ctx = try options.context()
        // A client of its own: the state may be larger than the admin client's 16 MiB default.
        let client: AdminClient
        do {
            client = try AdminClient(
                tls: APITLSFiles(caCertificatePath: ctx.config.caCertificatePath, certificatePath: ctx.config.adminCertificatePath, privateKeyPath: ctx.config.adminPrivateKeyPath),
                responseBytesMax: SnapshotCommand.fileBytesMax)
        } catch {
            throw CLIError("\(error)")
        }
        let began = ContinuousClock.now
        // One attempt may take the whole --timeout: a large state takes a while to encode and
        // send, and every retry would make the leader encode it again.
        let answer = try await WriteClient(ctx: ctx, timeoutSeconds: options.timeout, client: client, attemptTimeoutMillis: options.timeout * 1000)
            .send(method: .GET, path: "/v1/snapshot", body: nil)
        let decoded: SnapshotFile
        let state: ClusterState
        do {
            decoded = try SnapshotFile(decoding: answer.body)
            state = try decoded.decodedState()
        } catch {
            throw CLIError("the leader's answer is not a valid snapshot (\(error)); nothing was written")
        }
        do {
            try BrokerFiles.writeNewPrivate(file, bytes: answer.body)
        } catch {
            throw CLIError("\(error); nothing was written")
        }
        let t = (ContinuousClock.now - began).components
        let millis = Int(t.seconds) * 1000 + Int(t.attoseconds / 1_000_000_000_000_000)
        switch options.output {
        case .json:
            let fields = Dictionary(uniqueKeysWithValues: SnapshotCommand.describe(decoded, state: state)) .merging(["file": file, "bytes": "\(answer.body.count)", "millis": "\(millis)"]) { a, _ in a }
            print(String(decoding: try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self))
        case .table:
            print("saved \(file): \(answer.body.count) bytes in \(millis) ms")
            SnapshotCommand.printFields(SnapshotCommand.describe(decoded, state: state))
        }
    }
}

struct SnapshotInspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Check a snapshot file (its digest, header and state) and print what it holds.")

    @Argument(help: "The snapshot file.")
    var file: String

    @Option(help: "table or json.")
    var output: OutputFormat = .table

    func run() async throws {
        let f = try SnapshotCommand.read(file)
        let state = try f.decodedState()
        let fields = SnapshotCommand.describe(f, state: state)
        switch output {
        case .json: print(String(decoding: try JSONSerialization.data(withJSONObject: Dictionary(uniqueKeysWithValues: fields), options: [.sortedKeys]), as: UTF8.self))
        case .table: SnapshotCommand.printFields(fields)
        }
    }
}

/// Seeds a new cluster: every peer of the config file (or those given with --id) gets a store
/// whose snapshot is the file's state at its index, with the file's peers as the voters. The
/// cluster id is the config file's, which must differ from the saved cluster's unless
/// --keep-cluster-id (a restored cluster then never exchanges a message with the old one: the
/// transport's handshake compares cluster ids).
struct SnapshotRestore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Create the data of a new cluster from a snapshot file: one store per peer of --config; refused onto a data directory that holds a store.")

    @Argument(help: "The snapshot file.")
    var file: String

    @Option(help: "The new cluster's configuration file (run `peer init` for it first: certificates).")
    var config: String

    @Option(name: .customLong("id"), help: "Restore only this peer's data (repeat for several); default: every peer of the file.")
    var ids: [UInt64] = []

    @Flag(help: "Restore into a cluster with the snapshot's own cluster id (after losing every member's data), instead of a new one.")
    var keepClusterId = false

    func run() async throws {
        let f = try SnapshotCommand.read(file)
        let state = try f.decodedState()
        let cfg: ClusterConfig
        do { cfg = try ClusterConfig.load(path: config) } catch { throw CLIError("\(error)") }
        if keepClusterId {
            guard f.clusterID == cfg.cluster else {
                throw CLIError("\(file) is a snapshot of cluster '\(f.clusterID)', but \(config) is for cluster '\(cfg.cluster)': with --keep-cluster-id they must be the same; nothing was changed")
            }
        } else if f.clusterID == cfg.cluster {
            throw CLIError("\(config) is for cluster '\(cfg.cluster)', the cluster the snapshot was saved from: give the new cluster a new `cluster:` id, or pass --keep-cluster-id to restore the same cluster after losing all its data; nothing was changed")
        }
        for id in ids where cfg.peer(id: id) == nil { throw ValidationError("--id \(id): no such peer in \(config)") }
        let peers = cfg.peers.filter { ids.isEmpty || ids.contains($0.id) }
        // Ids are never reused: a peer whose id the saved state holds as removed could never be
        // dialled (the members follow the state), so the new cluster would elect no leader.
        let removed = cfg.peers.filter { state.instance("\($0.id)")?.state == .removed }.map(\.id)
        guard removed.isEmpty else {
            throw CLIError("\(config) has peer(s) \(removed.map(String.init).joined(separator: ", ")) whose id the saved state holds as a removed instance (ids are never reused): give the new cluster's peers other ids; nothing was changed")
        }
        if keepClusterId {
            // The same cluster: refused while any of its members runs (a restored voter with an
            // old log and no vote beside running ones could vote twice and lose acknowledged writes).
            let ctx = try ClusterContext(configPath: config)
            let targets = cfg.peers.map { ($0.id, $0.apiAddress.host, Int($0.apiAddress.port)) }
            let answering = await MemberProbe.answering(targets, client: ctx.client, timeoutMillis: 2_000)
            guard answering.isEmpty else {
                throw CLIError("member(s) \(answering.map { "\($0.id) at \($0.description)" }.joined(separator: ", ")) of cluster '\(cfg.cluster)' answer: a restore with --keep-cluster-id is for a cluster whose every member is stopped (`peer down`); nothing was changed")
            }
        }
        // Every target checked before anything is written: all or nothing.
        for p in peers {
            let dir = cfg.dataDirectory(for: p.id)
            for name in ["raft.sqlite", "raft.sqlite-wal", "raft.sqlite.creating"] where FileManager.default.fileExists(atPath: dir + "/" + name) {
                throw CLIError("peer \(p.id)'s data directory \(dir) holds \(name): a restore never overwrites a store; move it away first (nothing was changed)")
            }
        }
        let conf = ConfState(voters: Set(cfg.peers.map(\.id)))
        let metadata = SnapshotMetadata(index: f.index, term: f.term, conf: conf)
        for p in peers {
            let dir = cfg.dataDirectory(for: p.id)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let path = dir + "/raft.sqlite"
            do {
                try PeerStore.create(path: path, clusterID: cfg.cluster, peerID: p.id,
                                     seed: PeerStore.Seed(metadata: metadata, data: f.state, hardState: HardState(term: f.term, commit: f.index)))
                // Read back what was written: the store's snapshot must be the file's state.
                let store = try PeerStore.open(path: path, clusterID: cfg.cluster, peerID: p.id, initialConf: conf)
                let back = try ClusterState(snapshot: try store.snapshotData())
                try store.close()
                guard back.stateDigestHex == state.stateDigestHex else {
                    throw CLIError("peer \(p.id): the restored store's state digest \(back.stateDigestHex) is not the file's \(state.stateDigestHex)")
                }
            } catch let e as CLIError {
                throw e
            } catch {
                throw CLIError("peer \(p.id): \(error)")
            }
            print("peer \(p.id): restored \(path) at index \(f.index), term \(f.term), digest \(state.stateDigestHex)")
        }
        print("cluster '\(cfg.cluster)': \(peers.count) store(s) restored from a snapshot of '\(f.clusterID)' (\(state.tenantCount) tenant(s)); start it with `peer up --config \(config)`")
    }
}
