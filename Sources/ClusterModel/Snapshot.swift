import Crypto
import SwiftProtobuf

/// Why snapshot bytes were refused. Decode never traps on bad bytes.
public enum SnapshotError: Error, Equatable, Sendable {
    /// Shorter than the header (magic + digest).
    case truncated(byteCount: Int)
    /// The first bytes are not `snapshotMagic`: not a snapshot, or a future format.
    case badMagic
    /// The SHA-256 in the header does not match the state bytes: corrupted in storage or transit.
    case digestMismatch
    /// The state bytes are not a valid protobuf `State`.
    case undecodable(String)
    /// The state holds top-level fields this version does not know (written by a newer peer):
    /// upgrade this peer before it loads the snapshot, rather than drop state silently.
    case newerFormat(fieldNumbers: [UInt64])
    /// The state decodes but breaks a rule of the model (the reason names the object).
    case invalidState(String)
}

extension ClusterState {
    /// "PCS1": peer cluster state, format 1. A new format gets a new magic.
    public static let snapshotMagic: [UInt8] = [0x50, 0x43, 0x53, 0x31]
    static let digestBytes = 32

    /// The canonical protobuf encoding of the whole state: every collection sorted by key, no
    /// unknown fields, so equal states give equal bytes on every replica and every run.
    public func canonicalBytes() -> [UInt8] {
        do {
            return try wireState().serializedBytes()
        } catch {
            preconditionFailure("encoding the cluster state cannot fail: \(error)")
        }
    }

    /// SHA-256 of `canonicalBytes()`; equal on every replica that applied the same entries.
    public var stateDigest: [UInt8] { Array(SHA256.hash(data: canonicalBytes())) }

    /// `stateDigest` as lowercase hex, as `peer status` shows it.
    public var stateDigestHex: String { Hex.encode(stateDigest) }

    /// Snapshot bytes: magic, SHA-256 of the state bytes, state bytes.
    public func encodeSnapshot() -> [UInt8] {
        let body = canonicalBytes()
        return Self.snapshotMagic + Array(SHA256.hash(data: body)) + body
    }

    /// Decodes and validates snapshot bytes; the result re-encodes to the same digest.
    public init(snapshot bytes: [UInt8]) throws(SnapshotError) {
        let header = Self.snapshotMagic.count + Self.digestBytes
        guard bytes.count >= header else { throw .truncated(byteCount: bytes.count) }
        guard Array(bytes[0..<Self.snapshotMagic.count]) == Self.snapshotMagic else { throw .badMagic }
        let digest = Array(bytes[Self.snapshotMagic.count..<header])
        let body = Array(bytes[header...])
        guard Array(SHA256.hash(data: body)) == digest else { throw .digestMismatch }
        let wire: PBState
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 16
            wire = try PBState(serializedBytes: body, options: options)
        } catch {
            throw .undecodable("\(error)")
        }
        let unknown = UnknownFields.fieldNumbers(wire.unknownFields)
        guard unknown.isEmpty else { throw .newerFormat(fieldNumbers: unknown) }
        try self.init(validating: wire)
    }

    func wireState() -> PBState {
        var wire = PBState()
        wire.appliedIndex = appliedIndex
        wire.minProtocolVersion = minProtocolVersion
        wire.settings = settings
        wire.lastLeaderTimeMs = lastLeaderTimeMs
        wire.instances = instances.values.sorted { $0.id < $1.id }
        wire.tenants = tenants.values.sorted { $0.id < $1.id }
        wire.placements = placements.keys.sorted().flatMap { tenantId in
            placements[tenantId, default: [:]].values.sorted { $0.instanceID < $1.instanceID }
        }
        wire.bindings = bindings.values.sorted { $0.id < $1.id }
        wire.operations = operations.values.sorted { $0.id < $1.id }
        wire.intents = intents.values.sorted { $0.id < $1.id }
        wire.sessions = sessions.values.sorted { $0.clientID < $1.clientID }
        wire.events = events
        wire.balancerPaused = balancerPaused
        return wire
    }
}

/// Lowercase hex, for digests and token hashes.
public enum Hex {
    public static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }
}

/// How the broker turns a user token into what the state stores: only the hash is replicated.
public enum TokenHash {
    public static func sha256Hex(of token: [UInt8]) -> String { Hex.encode(Array(SHA256.hash(data: token))) }
}
