// Fuzzes the peer wire decoders (docs/transport.md §Fuzzing).
//
// libFuzzer build (coverage-guided), PEER_FUZZ_TARGET=frame|message picks the decoder:
//   swift build -c release --scratch-path .build-fuzz --product peer-wire-fuzz \
//     -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING -Xswiftc -parse-as-library
//   PEER_FUZZ_TARGET=frame .build-fuzz/release/peer-wire-fuzz -runs=1000000
// A normal build makes the seeded mutational runner instead:
//   peer-wire-fuzz frame|message [inputs] [seed]
import PeerWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if FUZZING
let fuzzTarget: WireFuzz.Target = {
    guard let raw = getenv("PEER_FUZZ_TARGET"), let t = WireFuzz.Target(rawValue: String(cString: raw)) else {
        fputs("set PEER_FUZZ_TARGET to frame or message\n", stderr)
        exit(2)
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    WireFuzz.run(fuzzTarget, Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main
struct MutationalRunner {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let first = args.first, let target = WireFuzz.Target(rawValue: first) else {
            print("usage: peer-wire-fuzz frame|message [inputs=1000000] [seed=1]")
            exit(2)
        }
        let inputs = args.dropFirst().first.flatMap { Int($0) } ?? 1_000_000
        let seed = args.dropFirst(2).first.flatMap { UInt64($0) } ?? 1
        let ran = WireFuzz.mutationalRun(target, inputs: inputs, seed: seed)
        print("peer-wire-fuzz \(target.rawValue): \(ran) inputs, seed \(seed), no crash")
    }
}
#endif
