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
        print("set PEER_FUZZ_TARGET to frame or message")
        exit(2)
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    WireFuzz.run(fuzzTarget, size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

// SwiftPM links an executable with its entry point renamed to `<module>_main`, so libFuzzer's own
// `main` is not used; this entry point hands control to libFuzzer's driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("peer_wire_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzTestOneInput)
}
#else
@main
struct MutationalRunner {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        if args.first == "seeds", let dir = args.dropFirst().first {
            writeSeeds(to: dir)
            return
        }
        guard let first = args.first, let target = WireFuzz.Target(rawValue: first) else {
            print("usage: peer-wire-fuzz frame|message [inputs=1000000] [seed=1]\n       peer-wire-fuzz seeds DIR  (writes DIR/frame and DIR/message starting corpora for libFuzzer)")
            exit(2)
        }
        let inputs = args.dropFirst().first.flatMap { Int($0) } ?? 1_000_000
        let seed = args.dropFirst(2).first.flatMap { UInt64($0) } ?? 1
        let ran = WireFuzz.mutationalRun(target, inputs: inputs, seed: seed)
        print("peer-wire-fuzz \(target.rawValue): \(ran) inputs, seed \(seed), no crash")
    }

    /// Valid encodings as starting corpora, so libFuzzer begins from real frames.
    static func writeSeeds(to dir: String) {
        for (target, seeds) in [("frame", WireFuzz.streamSeeds), ("message", WireFuzz.seeds)] {
            let sub = dir + "/" + target
            mkdir(dir, 0o755)
            mkdir(sub, 0o755)
            for (i, bytes) in seeds.enumerated() {
                let path = sub + "/seed-\(i)"
                guard let f = fopen(path, "wb") else { continue }
                _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
                fclose(f)
            }
            print("wrote \(seeds.count) seeds to \(sub)")
        }
    }
}
#endif
