@testable import PeerWire
import Testing

/// A short seeded mutational run of each decoder; the 1,000,000-input runs are documented
/// commands (docs/transport.md §Fuzzing), too slow for every `swift test`.
@Suite struct FuzzSmokeTests {
    @Test(arguments: WireFuzz.Target.allCases)
    func decoderSurvivesTwentyThousandMutatedInputs(target: WireFuzz.Target) {
        #expect(WireFuzz.mutationalRun(target, inputs: 20_000, seed: 7) == 20_000)
    }

    @Test func everySeedDecodesAndRoundTrips() throws {
        for seed in WireFuzz.seeds { _ = try WireCodec.decode(seed); WireFuzz.messageDecoder(seed) }
    }
}
