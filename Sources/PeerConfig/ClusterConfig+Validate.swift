/// Rules that relate several values: unique peer ids, no address used twice, sane timings.
/// Each failure points at the later of the two values involved, the one an operator just added.
struct ConfigValidator {
    let config: ClusterConfig
    let reader: YAMLReader
    let lines: [String: Int]

    func validate() throws(ConfigError) {
        try uniquePeerIDs()
        try uniqueAddresses()
        try timingRatio()
        try deadVoterThreshold()
        try planComponentsExist()
    }

    /// A plan that names a component no entry of `components` describes could never be served.
    private func planComponentsExist() throws(ConfigError) {
        let known = Set(config.components.map(\.name))
        for (i, service) in config.catalog.services.enumerated() {
            for (j, plan) in service.plans.enumerated() {
                for c in plan.components where !known.contains(c) {
                    let keyPath = "catalog.services[\(i)].plans[\(j)].components"
                    throw error(keyPath, "plan '\(plan.id)' needs component '\(c)', which `components` does not describe (known: \(known.sorted().joined(separator: ", ")))")
                }
            }
        }
    }

    private func error(_ keyPath: String, _ reason: String) -> ConfigError {
        reader.error(keyPath, line: lines[keyPath], reason)
    }

    private func uniquePeerIDs() throws(ConfigError) {
        var seen: [UInt64: Int] = [:]
        for (i, peer) in config.peers.enumerated() {
            if let first = seen[peer.id] {
                throw error("peers[\(i)].id", "duplicate peer id \(peer.id) (also peers[\(first)])")
            }
            seen[peer.id] = i
        }
    }

    /// Two listeners on one port of one host cannot both bind. Hosts are compared in canonical
    /// form; an unspecified host (`0.0.0.0`, `[::]`, allowed for `router`) takes the port on
    /// every address of its machine, which is the machine of its peer's `peer` address.
    /// Different names for one machine (`localhost`, `127.0.0.1`) cannot be told apart here.
    private func uniqueAddresses() throws(ConfigError) {
        struct Listener {
            var address: HostPort
            var keyPath: String
            var machine: String
        }
        var seen: [Listener] = []
        for (i, peer) in config.peers.enumerated() {
            var mine: [(String, HostPort?)] = [
                ("peer", peer.peerAddress), ("api", peer.apiAddress), ("router", peer.routerAddress),
                ("routerControl", peer.routerControlAddress),
            ]
            if let base = peer.componentAddress, base.kind == .dnsName {
                throw error("peers[\(i)].components", "must be an IP address and base port, got \(base): every router connects to the components per request and resolves no names")
            }
            for c in config.components {
                if let base = peer.componentAddress, peer.address(of: c) == nil {
                    throw error("peers[\(i)].components", "component \(c.name) would listen on port \(Int(base.port) + c.portOffset), past 65535")
                }
                mine.append(("components (\(c.name), port offset \(c.portOffset))", peer.address(of: c)))
            }
            for case let (key, address?) in mine {
                let listener = Listener(address: address, keyPath: "peers[\(i)].\(key)", machine: peer.peerAddress.host)
                for other in seen where other.address.port == address.port {
                    let wildcard = other.address.isUnspecified || address.isUnspecified
                    // Two `0.0.0.0:80` routers on two machines are fine; on one machine they
                    // clash. Loopback addresses, too, belong to their own machine.
                    let local = other.address.isLoopback && address.isLoopback
                    if local && other.machine != listener.machine { continue }
                    guard wildcard ? other.machine == listener.machine : other.address.host == address.host else { continue }
                    if other.address.host == address.host {
                        throw error(listener.keyPath, "address \(address) is already used by \(other.keyPath)")
                    }
                    throw error(listener.keyPath, "address \(address) overlaps \(other.address) (\(other.keyPath)) on the same host \(listener.machine): both take port \(address.port)")
                }
                seen.append(listener)
            }
        }
    }

    /// A follower campaigns after `electionTicks` without a heartbeat; with fewer than three
    /// heartbeats in that window, one or two lost packets start an election.
    private func timingRatio() throws(ConfigError) {
        let t = config.timing
        let ratio = ClusterConfig.Timing.electionToHeartbeatRatioMin
        guard t.electionTicks < ratio * t.heartbeatTicks else { return }
        let keyPath = lines["timing.electionTicks"] != nil ? "timing.electionTicks" : "timing.heartbeatTicks"
        throw error(keyPath, "electionTicks (\(t.electionTicks)) must be at least \(ratio) x heartbeatTicks (\(t.heartbeatTicks)), that is \(ratio * t.heartbeatTicks)")
    }

    /// Autopilot's threshold is the longer one: a voter is lost before it is dead.
    private func deadVoterThreshold() throws(ConfigError) {
        let t = config.timing
        guard t.deadVoterRemoveAfterMs != 0, t.deadVoterRemoveAfterMs < t.instanceLostAfterMs else { return }
        throw error("timing.deadVoterRemoveAfterMs", "deadVoterRemoveAfterMs (\(t.deadVoterRemoveAfterMs)) must be 0 (never) or at least instanceLostAfterMs (\(t.instanceLostAfterMs))")
    }
}
