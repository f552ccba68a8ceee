import ArgumentParser
import Foundation
import PeerCerts
import PeerConfig

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `peer init --config FILE`: everything a cluster needs on disk before its peers start: the
/// CA, a certificate for every peer and one for the CLI (`client-admin`), each peer's data
/// directory, and the broker's password with its salted hash.
///
/// Idempotent: it first inspects what exists and checks it against FILE (this cluster's CA,
/// signed by it, the right identity and addresses, not expired), refusing before it writes
/// anything if something does not fit; then it creates only what is missing. It never
/// overwrites a file.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the CA, peer and admin certificates and data directories for FILE (docs/configuration.md).",
        discussion: "Creates only what is missing and never overwrites; refuses (exit 1, nothing written) if an existing CA or certificate does not fit FILE.")

    @Option(help: ArgumentHelp("The cluster configuration file (YAML).", valueName: "file"))
    var config: String

    func run() throws {
        let cluster = try ClusterConfig.load(path: config)
        let plan = try InitPlan(inspecting: cluster)
        let rows = try plan.execute()
        printTable(header: ["ITEM", "PATH", "RESULT"], rows: rows.map { [$0.item, $0.path, $0.result.rawValue] })
        let created = rows.filter { $0.result == .created }.count
        print("cluster \(cluster.cluster): created \(created), already there \(rows.count - created) (\(cluster.file ?? config))")
    }
}

/// What `peer init` found or did for one item.
struct InitRow {
    enum Result: String { case created, exists }
    var item: String
    var path: String
    var result: Result
}

/// Why `peer init` stopped, beyond what `ConfigError` and `CertsError` already say.
enum InitError: Error, CustomStringConvertible {
    case notADirectory(String)
    case cannotCreateDirectory(String, reason: String)
    case caKeyElsewhere(needed: String, key: String)

    var description: String {
        switch self {
        case .notADirectory(let p): return "\(p) exists and is not a directory"
        case .cannotCreateDirectory(let p, let r): return "cannot create \(p): \(r)"
        case .caKeyElsewhere(let needed, let key):
            return "\(needed) is to be issued but \(key) is not here (only ca.pem is); put the CA key back to issue it, or issue it where the key is and copy the pair in"
        }
    }
}

/// The inspection half of `peer init`: reads what exists, checks every file against the
/// config, and notes what is missing. `execute()` then creates exactly that; nothing is written
/// before every existing file has passed its check, so a refusal leaves the disk as it was.
struct InitPlan {
    /// One certificate pair: a peer's or the admin client's.
    struct Pair {
        enum Holder {
            case peer(ClusterConfig.Peer)
            case client(String)
        }

        var holder: Holder
        var certificatePath: String
        var privateKeyPath: String
        var item: String {
            switch holder {
            case .peer(let p): return "peer \(p.id) certificate"
            case .client(let name): return "\(name) client certificate"
            }
        }
    }

    let config: ClusterConfig
    /// nil: there is no CA yet and `execute()` creates it.
    let existingCA: ExistingCA?
    /// Pairs to issue; the others exist and passed their check.
    let pairsToIssue: [Pair]
    let pairsFound: [Pair]
    let dataDirectories: [(id: UInt64, path: String, exists: Bool)]
    /// The broker's password and its hash (docs/broker.md §Credentials).
    let brokerCredentials: BrokerFiles.Plan

    init(inspecting config: ClusterConfig) throws {
        self.config = config
        let ca = try ExistingCA.find(directory: config.tlsDir)
        if let ca, ca.clusterID != config.cluster {
            throw CertsError.certificateMismatch(
                path: config.caCertificatePath,
                reason: "it is the CA of cluster '\(ca.clusterID)', but \(config.file ?? "the config") is for cluster '\(config.cluster)'")
        }
        existingCA = ca
        var toIssue: [Pair] = [], found: [Pair] = []
        for pair in Self.pairs(of: config) {
            if try Self.existsAndFits(pair, config: config, ca: ca) { found.append(pair) } else { toIssue.append(pair) }
        }
        pairsToIssue = toIssue
        pairsFound = found
        if let ca, ca.authority == nil, let first = toIssue.first {
            throw InitError.caKeyElsewhere(needed: first.certificatePath, key: config.caPrivateKeyPath)
        }
        dataDirectories = try config.peers.map { peer in
            let path = config.dataDirectory(for: peer.id)
            return (peer.id, path, try Self.directoryExists(path))
        }
        brokerCredentials = try BrokerFiles.Plan(inspecting: config.broker)
    }

    /// Every pair the config calls for: one per peer, then the CLI's admin client.
    static func pairs(of config: ClusterConfig) -> [Pair] {
        config.peers.map { peer in
            Pair(holder: .peer(peer), certificatePath: config.peerCertificatePath(for: peer.id),
                 privateKeyPath: config.peerPrivateKeyPath(for: peer.id))
        } + [Pair(holder: .client(ClusterConfig.adminClientName), certificatePath: config.adminCertificatePath,
                  privateKeyPath: config.adminPrivateKeyPath)]
    }

    /// True when both files exist and fit the config; false when neither exists; throws otherwise.
    private static func existsAndFits(_ pair: Pair, config: ClusterConfig, ca: ExistingCA?) throws -> Bool {
        switch PairOnDisk(certificatePath: pair.certificatePath, privateKeyPath: pair.privateKeyPath) {
        case .absent:
            return false
        case .incomplete(let present, let missing):
            throw CertsError.incompletePair(present: present, missing: missing)
        case .present:
            guard let ca else {
                throw CertsError.certificateMismatch(
                    path: pair.certificatePath, reason: "there is no CA in \(config.tlsDir) to check it against")
            }
            switch pair.holder {
            case .peer(let peer):
                try checkPeerPair(
                    certificatePath: pair.certificatePath, privateKeyPath: pair.privateKeyPath, trustedCAs: ca.trusted,
                    clusterID: config.cluster, nodeID: peer.id,
                    ipAddresses: peer.certificateIPAddresses, dnsNames: peer.certificateDNSNames)
            case .client(let name):
                try checkClientPair(
                    certificatePath: pair.certificatePath, privateKeyPath: pair.privateKeyPath, trustedCAs: ca.trusted,
                    clusterID: config.cluster, name: name)
            }
            return true
        }
    }

    private static func directoryExists(_ path: String) throws -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return false }
        guard isDirectory.boolValue else { throw InitError.notADirectory(path) }
        return true
    }

    /// Creates what is missing, in dependency order: CA, certificates, data directories.
    func execute() throws -> [InitRow] {
        var rows: [InitRow] = []
        let authority: CertificateAuthority?
        if let existingCA {
            authority = existingCA.authority
            rows.append(InitRow(item: "cluster CA", path: config.caCertificatePath, result: .exists))
        } else {
            authority = try CertificateAuthority.create(directory: config.tlsDir, clusterID: config.cluster)
            rows.append(InitRow(item: "cluster CA", path: config.caCertificatePath, result: .created))
        }
        for pair in pairsFound {
            rows.append(InitRow(item: pair.item, path: pair.certificatePath, result: .exists))
        }
        for pair in pairsToIssue {
            guard let authority else { preconditionFailure("init planned to issue \(pair.certificatePath) without the CA key") }
            let issued: IssuedCertificate
            switch pair.holder {
            case .peer(let peer):
                issued = try authority.issuePeer(
                    nodeID: peer.id, ipAddresses: peer.certificateIPAddresses, dnsNames: peer.certificateDNSNames)
            case .client(let name):
                issued = try authority.issueClient(name: name)
            }
            // PeerConfig spells the file names again (it imports no certificate code).
            precondition(issued.certificatePath == pair.certificatePath && issued.privateKeyPath == pair.privateKeyPath,
                         "PeerCerts wrote \(issued.certificatePath), the config names \(pair.certificatePath)")
            rows.append(InitRow(item: pair.item, path: pair.certificatePath, result: .created))
        }
        for directory in dataDirectories {
            if !directory.exists { try makePrivateDirectory(directory.path) }
            rows.append(InitRow(item: "peer \(directory.id) data", path: directory.path, result: directory.exists ? .exists : .created))
        }
        for file in [config.broker.passwordFile, config.broker.passwordHashFile] {
            try makePrivateDirectory((file as NSString).deletingLastPathComponent)
        }
        let created = try brokerCredentials.execute(config.broker)
        rows.append(InitRow(item: "broker credentials", path: config.broker.passwordHashFile, result: created ? .created : .exists))
        return rows
    }
}

/// `mkdir -p` where every directory it creates is 0700 (a peer's data is its own); chmod after
/// mkdir so the umask cannot narrow or widen it. Existing directories are left as they are.
func makePrivateDirectory(_ path: String) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
        guard isDirectory.boolValue else { throw InitError.notADirectory(path) }
        return
    }
    let parent = (path as NSString).deletingLastPathComponent
    if !parent.isEmpty && parent != path { try makePrivateDirectory(parent) }
    let privateDirectoryMode: mode_t = 0o700
    guard mkdir(path, privateDirectoryMode) == 0 else {
        throw InitError.cannotCreateDirectory(path, reason: String(cString: strerror(errno)))
    }
    guard chmod(path, privateDirectoryMode) == 0 else {
        throw InitError.cannotCreateDirectory(path, reason: String(cString: strerror(errno)))
    }
}
