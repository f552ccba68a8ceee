/// Names derived from other names, for ids that would be too long when spelled out.
public enum IdHash {
    /// 64-bit FNV-1a of the UTF-8 bytes, in lowercase hex (no padding): stable across runs and
    /// machines, unlike Swift's `Hasher`.
    public static func fnv1a64Hex(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}
