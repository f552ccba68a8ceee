import ClusterModel
import Crypto
import Foundation

/// How OSB ids become ids of the replicated state. OSB ids are any non-empty strings (platforms
/// send GUIDs); a tenant id must be a DNS label (it becomes a host name) and a binding id 1-64 of
/// `a-z0-9-_.`. An OSB id that already fits is used as it is (a lower-case GUID stays readable in
/// `peer tenants list`); any other is hashed to `i-<48 hex>` / `b-<48 hex>` (192 bits of SHA-256,
/// so two ids meet only by a hash collision). An id that merely looks hashed is hashed again, so
/// a platform cannot pick an id that collides with another id's hash.
enum BrokerIds {
    static let hashHexCharacters = 48

    static func tenant(forInstance instanceId: String) -> String {
        if isTenantId(instanceId), !looksHashed(instanceId, prefix: "i-") { return instanceId }
        return "i-" + digestHex("osb-instance\u{0}" + instanceId)
    }

    static func binding(forBinding bindingId: String) -> String {
        if isBindingId(bindingId), !looksHashed(bindingId, prefix: "b-") { return bindingId }
        return "b-" + digestHex("osb-binding\u{0}" + bindingId)
    }

    /// A fresh operation token: 128 random bits. OSB: "MUST NOT contain more than 10,000 characters".
    static func freshOperationId() -> String {
        var g = SystemRandomNumberGenerator()
        return "op-" + String(format: "%016llx%016llx", g.next() as UInt64, g.next() as UInt64)
    }

    /// A fresh client id for one broker request's commands (each retried request re-evaluates
    /// the state instead, so no session needs to survive the request).
    static func freshClientId() -> String {
        var g = SystemRandomNumberGenerator()
        return "osb-" + String(format: "%016llx%016llx", g.next() as UInt64, g.next() as UInt64)
    }

    /// A user token: 256 random bits as 64 hex digits. Only its SHA-256 is replicated.
    static func freshUserToken() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%016llx", g.next() as UInt64) }.joined()
    }

    private static func digestHex(_ text: String) -> String {
        String(ClusterModel.Hex.encode(Array(SHA256.hash(data: Array(text.utf8)))).prefix(hashHexCharacters))
    }

    private static func looksHashed(_ id: String, prefix: String) -> Bool {
        id.utf8.count == prefix.utf8.count + hashHexCharacters && id.hasPrefix(prefix)
            && id.utf8.dropFirst(prefix.utf8.count).allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// The rule of `ClusterModel.Validate.tenantId`: 1-63 of a-z, 0-9, '-', not at either end.
    private static func isTenantId(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        return !bytes.isEmpty && bytes.count <= ClusterLimits.tenantIdBytesMax && bytes.first != 0x2D && bytes.last != 0x2D
            && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
    }

    /// The rule of `ClusterModel.Validate.id`: 1-64 of a-z, 0-9, '-', '_', '.'.
    private static func isBindingId(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        return !bytes.isEmpty && bytes.count <= ClusterLimits.idBytesMax
            && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
    }
}
