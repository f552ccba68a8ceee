import ClusterModel
import Logging
import PeerAPI
import PeerConfig
import PeerTransport
import Raft
import Synchronization

/// Where one member listens: what the transport dials, what forwarded writes and the leader's
/// polls reach, and what every router sends the member's tenants to.
struct MemberEntry: Sendable, Hashable {
    var peer: HostPort
    var api: HostPort
    var router: HostPort?
    /// The components' host and base port (a component listens at base + its `portOffset`).
    var components: HostPort?

    init(peer: HostPort, api: HostPort, router: HostPort? = nil, components: HostPort? = nil) {
        self.peer = peer
        self.api = api
        self.router = router
        self.components = components
    }

    init(_ p: ClusterConfig.Peer) {
        self.init(peer: p.peerAddress, api: p.apiAddress, router: p.routerAddress, components: p.componentAddress)
    }

    /// An instance of the replicated state, if its addresses are whole (an instance registered
    /// by an older build has none but its peer address: nil, and the seeds answer for it).
    init?(_ instance: Instance) {
        guard let peer = HostPort(instance.address), let api = HostPort(instance.apiAddress) else { return nil }
        self.init(peer: peer, api: api, router: HostPort(instance.routerAddress), components: HostPort(instance.componentsAddress))
    }
}

/// The cluster's members and their addresses (docs/adr/0013-instances-join-and-leave.md). It
/// starts from the seeds (the config file's peers, or the members a joining instance was told
/// of) and then follows the replicated state: every instance not removed, with the addresses it
/// was added with. The transport, the API's forwarding, the leader's data-plane watch and the
/// router's upstreams all read it, so an instance added at run time is dialled, polled and routed
/// to without a config file change.
final class MemberDirectory: Sendable {
    private let seeds: [NodeID: MemberEntry]
    private let current: Mutex<[NodeID: MemberEntry]>

    init(seeds: [NodeID: MemberEntry]) {
        self.seeds = seeds
        current = Mutex(seeds)
    }

    /// Takes the members from the applied state: instances not removed (their addresses), and
    /// the seeds the state does not know yet (before the registrar added them, or on a joiner
    /// still catching up). A removed instance is gone even if it was a seed. For a seed the
    /// seed's addresses win over the state's: the config file is the truth of where its own
    /// peers listen (a cluster restored from a snapshot of another keeps the old cluster's
    /// instances, at the old addresses, in its state).
    func follow(_ state: ClusterState) {
        var next: [NodeID: MemberEntry] = [:]
        var removed: Set<NodeID> = []
        for instance in state.allInstances {
            guard let id = NodeID(instance.id) else { continue }
            if instance.state == .removed {
                removed.insert(id)
            } else if let entry = seeds[id] ?? MemberEntry(instance) {
                next[id] = entry
            }
        }
        for (id, entry) in seeds where next[id] == nil && !removed.contains(id) && state.instance("\(id)") == nil {
            next[id] = entry
        }
        current.withLock { $0 = next }
    }

    func entry(_ id: NodeID) -> MemberEntry? { current.withLock { $0[id] } }

    var all: [NodeID: MemberEntry] { current.withLock { $0 } }
}

extension MemberEntry {
    /// What the admin API forwards to and counts apart.
    var addresses: MemberAddresses { MemberAddresses(peer: peer.description, apiHost: api.host, apiPort: Int(api.port)) }
}

/// The transport's peers, following the Raft configuration: every node of it but this one, at
/// the directory's address. A peer that knows no configuration yet (a joining instance before
/// its first change or snapshot applied) dials its seeds, so its answers reach the leader.
final class TransportPeers: Sendable {
    let transport: PeerTransport
    let selfID: NodeID
    let directory: MemberDirectory
    let logger: Logger
    private let dialled = Mutex<[NodeID: HostPort]>([:])

    init(transport: PeerTransport, selfID: NodeID, directory: MemberDirectory, logger: Logger) {
        self.transport = transport
        self.selfID = selfID
        self.directory = directory
        self.logger = logger
    }

    func follow(_ conf: ConfState) {
        let known = directory.all
        let wanted = (conf.all.isEmpty ? Set(known.keys) : conf.all).subtracting([selfID])
        var set: [(NodeID, HostPort)] = []
        var removed: [NodeID] = []
        var missing: [NodeID] = []
        dialled.withLock { d in
            for id in wanted {
                guard let address = known[id]?.peer else {
                    missing.append(id)
                    continue
                }
                if d[id] != address {
                    d[id] = address
                    set.append((id, address))
                }
            }
            for id in d.keys where !wanted.contains(id) {
                d[id] = nil
                removed.append(id)
            }
        }
        for (id, address) in set { transport.setPeer(id, address: PeerAddress(host: address.host, port: Int(address.port))) }
        for id in removed { transport.removePeer(id) }
        for id in missing.sorted() {
            logger.error("node \(id) is in the Raft configuration but no instance of the state or the config file gives its address: not dialled")
        }
    }
}
