// Cluster-wide records: controller intents, settings, and the min-version gate.

extension ClusterState {
    /// The provisioner commits the intent before calling the provider (ARCHITECTURE §11), so a
    /// new leader finds it and finishes or undoes it after the deadline.
    mutating func applyRecordIntent(_ c: PBRecordIntent, now: Int64) throws(Rejection) {
        try Validate.id(c.id, "id")
        try Validate.id(c.instanceID, "instance id")
        guard c.deadlineMs > now else {
            throw Rejection(.invalidField, "deadline_ms \(c.deadlineMs) is not after the leader time \(now)")
        }
        if !c.provider.isEmpty { try Validate.id(c.provider, "provider") }
        switch c.kind {
        case .provision:
            guard instances[c.instanceID] == nil else {
                throw Rejection(.alreadyExists, "instance \(Validate.quoted(c.instanceID)) exists; provision needs a new id")
            }
        case .decommission:
            _ = try existingInstance(c.instanceID)
        default:
            throw Rejection(.invalidField, "kind must be provision or decommission, got \(c.kind)")
        }
        guard intents[c.id] == nil else { throw Rejection(.alreadyExists, "intent \(Validate.quoted(c.id)) exists") }
        if let other = intents.values.first(where: { $0.instanceID == c.instanceID }) {
            throw Rejection(.conflict, "instance \(Validate.quoted(c.instanceID)) already has intent \(Validate.quoted(other.id))")
        }
        guard intents.count < ClusterLimits.intentsMax else {
            throw Rejection(.limitReached, "intentsMax \(ClusterLimits.intentsMax) reached")
        }
        var intent = Intent()
        intent.id = c.id
        intent.kind = c.kind
        intent.instanceID = c.instanceID
        intent.deadlineMs = c.deadlineMs
        intent.recordedMs = now
        intent.provider = c.provider
        intents[c.id] = intent
    }

    mutating func applyResolveIntent(_ c: PBResolveIntent) throws(Rejection) {
        try Validate.id(c.id, "id")
        guard intents[c.id] != nil else { throw Rejection(.notFound, "intent \(Validate.quoted(c.id)) does not exist") }
        intents[c.id] = nil
    }

    mutating func applySetSettings(_ c: PBSetSettings) throws(Rejection) {
        guard c.hasSettings else { throw Rejection(.invalidField, "settings is required") }
        try Self.validateSettings(c.settings)
        settings = c.settings
    }

    /// The gate only moves up, and never above a live member's protocol version.
    mutating func applySetMinVersion(_ c: PBSetMinVersion) throws(Rejection) {
        if let refusal = setMinVersionRefusal(c) { throw refusal }
        minProtocolVersion = c.protocolVersion
    }

    /// Why `SetMinVersion` would be refused here, or nil if it would apply.
    func setMinVersionRefusal(_ c: PBSetMinVersion) -> Rejection? {
        guard c.protocolVersion >= minProtocolVersion else {
            return Rejection(.belowMinVersion, "min protocol version cannot go down from \(minProtocolVersion) to \(c.protocolVersion)")
        }
        if let behind = instances.values.sorted(by: { $0.id < $1.id }).first(where: { $0.state != .removed && $0.protocolVersion < c.protocolVersion }) {
            return Rejection(.belowMinVersion, "instance \(Validate.quoted(behind.id)) speaks protocol version \(behind.protocolVersion) < \(c.protocolVersion)")
        }
        return nil
    }

    /// `peer downgrade`: the cluster version goes down to one every replica of the lower release
    /// can run, and what only the versions above it keep is dropped (an instance's state reason,
    /// version 2), so the state holds nothing the lower release does not apply alike.
    mutating func applyLowerMinVersion(_ c: PBLowerMinVersion) throws(Rejection) {
        guard c.protocolVersion >= 1, c.protocolVersion < minProtocolVersion else {
            throw Rejection(.invalidField, "the cluster version can go down from \(minProtocolVersion) to 1...\(max(1, minProtocolVersion) - 1), not to \(c.protocolVersion)")
        }
        minProtocolVersion = c.protocolVersion
        if c.protocolVersion < 2 {
            for (id, var instance) in instances where !instance.stateReason.isEmpty {
                instance.stateReason = ""
                instances[id] = instance
            }
            // Version 2's event kind goes too.
            for e in events where e.kind == .autopilot { eventIds.remove(e.id) }
            events.removeAll { $0.kind == .autopilot }
        }
    }

    static func validateSettings(_ s: Settings) throws(Rejection) {
        guard s.cpuHighPermille <= 1000, s.cpuLowPermille < s.cpuHighPermille else {
            throw Rejection(.invalidField, "settings: need cpu_low_permille < cpu_high_permille <= 1000, got \(s.cpuLowPermille) and \(s.cpuHighPermille)")
        }
        guard ClusterLimits.votersTargetAllowed.contains(s.votersTarget) else {
            throw Rejection(.invalidField, "settings: voters_target must be 1, 3 or 5, got \(s.votersTarget)")
        }
    }
}
