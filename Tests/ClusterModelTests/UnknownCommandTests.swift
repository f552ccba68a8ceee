@testable import ClusterModel
import Testing

/// Commands from a newer version (ARCHITECTURE §5, §12).
struct UnknownCommandTests {
    /// An entry as a newer peer would write it: a known envelope and a body tag we do not know.
    static func newerCommandBytes(tag: UInt64, skippable: Bool, sequence: UInt64 = 1) -> [UInt8] {
        var envelope = Command(clientId: "newer", sequence: sequence, leaderTimeMs: 1_000, Make.settings(), skippableIfUnknown: skippable)
        envelope.body = nil
        var bytes = envelope.entryBytes()
        bytes += varint(tag << 3 | 2) + [3, 0x0A, 0x01, 0x78]  // a length-delimited message field
        return bytes
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        while value >= 0x80 {
            out.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        return out + [UInt8(value)]
    }

    @Test func unknownCommandHaltsApplyAndNamesItsTag() {
        var state = ClusterState()
        #expect(throws: ApplyHalt.unsupportedCommand(index: 1, fieldNumbers: [99])) {
            try state.apply(Self.newerCommandBytes(tag: 99, skippable: false), at: 1)
        }
        #expect(state.appliedIndex == 0, "a halted entry must not count as applied")
        #expect(state == ClusterState())
    }

    @Test func unknownCommandFlaggedSkippableIsSkippedAndRecorded() throws {
        var state = ClusterState()
        let bytes = Self.newerCommandBytes(tag: 1234, skippable: true)
        guard case .skipped(let reason) = try state.apply(bytes, at: 1) else { Issue.record("not skipped"); return }
        #expect(reason.contains("1234"))
        #expect(state.appliedIndex == 1)
        #expect(try state.apply(bytes, at: 2) == .duplicate(previous: .skipped(reason: reason)))
    }

    @Test func commandNewerThanTheMinVersionGateIsRefused() {
        #expect(throws: Rejection.self) { try ClusterState.checkGate(needed: 2, minProtocolVersion: 1) }
        do {
            try ClusterState.checkGate(needed: 2, minProtocolVersion: 1)
        } catch {
            #expect(error.code == .commandGated)
        }
        #expect(throws: Never.self) { try ClusterState.checkGate(needed: 2, minProtocolVersion: 2) }
        #expect(throws: Never.self) { try ClusterState.checkGate(needed: 1, minProtocolVersion: 0) }
    }
}
