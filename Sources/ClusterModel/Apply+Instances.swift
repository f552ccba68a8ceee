// Instances: join, lifecycle (joining → active ⇄ draining → drained → active | removed), role,
// reported version. Removed instances stay as tombstones so an id is never reused.

extension ClusterState {
    mutating func applyAddInstance(_ c: PBAddInstance, now: Int64) throws(Rejection) {
        try Validate.id(c.id, "id")
        try Validate.address(c.address)
        for (value, field) in [(c.apiAddress, "api_address"), (c.routerAddress, "router_address"), (c.componentsAddress, "components_address")] where !value.isEmpty {
            do { try Validate.address(value) } catch { throw Rejection(.invalidField, "\(field): \(error.detail)") }
        }
        if !c.provider.isEmpty { try Validate.id(c.provider, "provider") }
        // Routers connect to the components per request by address: no names.
        if !c.componentsAddress.isEmpty && !Validate.hasIPHost(c.componentsAddress) {
            throw Rejection(.invalidField, "components_address must be an IP address and port, got \(Validate.quoted(c.componentsAddress))")
        }
        try Validate.text(c.version, "version", max: ClusterLimits.versionBytesMax, required: true)
        try Self.validateRole(c.role)
        try checkProtocolVersion(c.protocolVersion)
        if let existing = instances[c.id] {
            let reason = existing.state == .removed ? "was removed; instance ids are never reused" : "exists"
            throw Rejection(.alreadyExists, "instance \(Validate.quoted(c.id)) \(reason)")
        }
        guard instances.count < ClusterLimits.instancesMax else {
            throw Rejection(.limitReached, "instancesMax \(ClusterLimits.instancesMax) reached")
        }
        if let clash = instances.values.first(where: { $0.address == c.address && $0.state != .removed }) {
            throw Rejection(.conflict, "address \(Validate.quoted(c.address)) is used by instance \(Validate.quoted(clash.id))")
        }
        var instance = Instance()
        instance.id = c.id
        instance.address = c.address
        instance.apiAddress = c.apiAddress
        instance.routerAddress = c.routerAddress
        instance.componentsAddress = c.componentsAddress
        instance.provider = c.provider
        instance.role = c.role
        instance.version = c.version
        instance.protocolVersion = c.protocolVersion
        instance.state = .joining
        instance.stateSinceMs = now
        instances[c.id] = instance
    }

    mutating func applySetInstanceState(_ c: PBSetInstanceState, now: Int64) throws(Rejection) {
        var instance = try existingInstance(c.id)
        let from = instance.state
        guard Self.instanceTransitionAllowed(from: from, to: c.state) else {
            throw Rejection(.invalidTransition, "instance \(Validate.quoted(c.id)): \(from) → \(c.state) is not allowed")
        }
        if c.state == .draining {
            // A drain that can never finish is refused: its tenants need another instance.
            let remaining = placements(onInstance: c.id).count
            let others = instances.values.contains { $0.id != c.id && $0.state == .active }
            guard remaining == 0 || others else {
                throw Rejection(.conflict, "instance \(Validate.quoted(c.id)) is the only active instance and holds \(remaining) placement(s); activate or add another instance first")
            }
        }
        if c.state == .drained || c.state == .removed {
            let remaining = placements(onInstance: c.id)
            guard remaining.isEmpty else {
                throw Rejection(.notEmpty, "instance \(Validate.quoted(c.id)) still has \(remaining.count) placement(s); drain moves them first")
            }
        }
        // Version 2: the reason. Before the cluster runs version 2, a replica of version 1
        // ignores the field, so every replica ignores it.
        if minProtocolVersion >= 2 {
            try Validate.text(c.reason, "reason", max: ClusterLimits.descriptionBytesMax, required: false)
        }
        instance.state = c.state
        instance.stateSinceMs = now
        // The reason says why the instance left service: kept through the drain's own steps
        // (draining, then drained), replaced by a new one, ended when it is active or removed.
        if minProtocolVersion >= 2 {
            if !c.reason.isEmpty {
                instance.stateReason = c.reason
            } else if c.state == .active || c.state == .removed {
                instance.stateReason = ""
            }
        }
        instances[c.id] = instance
    }

    mutating func applySetInstanceRole(_ c: PBSetInstanceRole) throws(Rejection) {
        var instance = try existingInstance(c.id)
        try Self.validateRole(c.role)
        guard instance.state != .removed else {
            throw Rejection(.invalidTransition, "instance \(Validate.quoted(c.id)) is removed")
        }
        instance.role = c.role
        instances[c.id] = instance
    }

    mutating func applyReportInstanceVersion(_ c: PBReportInstanceVersion) throws(Rejection) {
        var instance = try existingInstance(c.id)
        try Validate.text(c.version, "version", max: ClusterLimits.versionBytesMax, required: true)
        try checkProtocolVersion(c.protocolVersion)
        guard instance.state != .removed else {
            throw Rejection(.invalidTransition, "instance \(Validate.quoted(c.id)) is removed")
        }
        instance.version = c.version
        instance.protocolVersion = c.protocolVersion
        instances[c.id] = instance
    }

    func existingInstance(_ id: String) throws(Rejection) -> Instance {
        try Validate.id(id, "instance id")
        guard let instance = instances[id] else { throw Rejection(.notFound, "instance \(Validate.quoted(id)) does not exist") }
        return instance
    }

    func checkProtocolVersion(_ version: UInt32) throws(Rejection) {
        guard version >= 1 else { throw Rejection(.invalidField, "protocol_version must be at least 1") }
        guard version >= minProtocolVersion else {
            throw Rejection(.belowMinVersion, "protocol version \(version) is below the cluster's min protocol version \(minProtocolVersion)")
        }
    }

    static func validateRole(_ role: PBInstanceRole) throws(Rejection) {
        guard role == .voter || role == .learner else { throw Rejection(.invalidField, "role must be voter or learner, got \(role)") }
    }

    /// ARCHITECTURE §12: drain, then drained, then (after the upgrade) active again or removed.
    static func instanceTransitionAllowed(from: PBInstanceState, to: PBInstanceState) -> Bool {
        switch (from, to) {
        case (.joining, .active), (.active, .draining), (.draining, .active), (.draining, .drained),
             (.drained, .active), (.joining, .removed), (.drained, .removed):
            return true
        default:
            return false
        }
    }
}
