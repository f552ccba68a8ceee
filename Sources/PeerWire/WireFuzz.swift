import NIOCore
import Raft

/// The decoders' fuzz entry points and a seeded mutational runner, shared by the libFuzzer target
/// (`peer-wire-fuzz` built with `-DFUZZING -sanitize=fuzzer`), its fallback runner, and a short
/// run inside `swift test`. Each entry point must never trap on any input; a trap is the bug.
public enum WireFuzz {
    /// Frame limit used while fuzzing: small, so length prefixes near it are explored.
    public static let frameBytesMax = 1 << 16

    /// Which decoder an input is for.
    public enum Target: String, Sendable, CaseIterable {
        case frame
        case message
    }

    public static func run(_ target: Target, _ bytes: [UInt8]) {
        switch target {
        case .frame: frameDecoder(bytes)
        case .message: messageDecoder(bytes)
        }
    }

    /// A byte stream split into frames, each decoded, as a connection would.
    public static func frameDecoder(_ bytes: [UInt8]) {
        var buffer = ByteBuffer(bytes: bytes)
        while true {
            let frame: ByteBuffer?
            do { frame = try Framing.nextFrame(from: &buffer, frameBytesMax: frameBytesMax) } catch { return }
            guard let frame else { return }
            precondition(frame.readableBytes <= frameBytesMax, "frame decoder yielded \(frame.readableBytes) bytes")
            messageDecoder(Array(frame.readableBytesView))
        }
    }

    /// One frame body decoded; whatever decodes must survive a round trip unchanged (the same
    /// property checked on both sides of the wire, STYLE.md habit 3).
    public static func messageDecoder(_ bytes: [UInt8]) {
        guard let frame = try? WireCodec.decode(bytes) else { return }
        let again: WireFrame
        do { again = try WireCodec.decode(WireCodec.encode(frame)) } catch {
            preconditionFailure("re-encoded frame no longer decodes: \(error)")
        }
        precondition(again == frame, "round trip changed the frame: \(frame) -> \(again)")
    }

    /// Valid encodings of every frame type: the starting corpus.
    public static var seeds: [[UInt8]] {
        let conf = ConfState(voters: [1, 2, 3], learners: [4])
        var frames: [WireFrame] = [
            .hello(Hello(clusterID: "c1", nodeID: 2, protocolVersionMin: 1, protocolVersionMax: 2)),
            .reject(reason: "unknown-peer", detail: "x"),
        ]
        for kind in MessageKind.allCases {
            var m = Message(kind: kind, from: 1, to: 2, term: 5, logTerm: 4, index: 9, commit: 8, reject: true, rejectHint: 3, context: 11)
            if kind == .append {
                m.entries = [Entry(term: 5, index: 10, data: [1, 2, 3]), Entry(term: 5, index: 11, kind: .confChange, data: [4])]
            }
            if kind == .snapshot {
                m.snapshot = SnapshotChunk(metadata: SnapshotMetadata(index: 9, term: 4, conf: conf), offset: 2, totalBytes: 8,
                                           data: [9, 9, 9], done: false)
            }
            frames.append(.message(m))
        }
        return frames.map(WireCodec.encode)
    }

    /// Seeds wrapped in length prefixes, several per stream, for the frame decoder.
    public static var streamSeeds: [[UInt8]] {
        let framed = seeds.map { body -> [UInt8] in
            var b = ByteBuffer()
            Framing.writeFrame(body, into: &b)
            return Array(b.readableBytesView)
        }
        return framed + [framed.prefix(4).flatMap { $0 }]
    }

    /// Runs `inputs` mutated inputs through `target`; returns how many ran. Deterministic per seed.
    /// Inputs that decode join the corpus, a cheap stand-in for coverage feedback.
    @discardableResult
    public static func mutationalRun(_ target: Target, inputs: Int, seed: UInt64) -> Int {
        var rng = SplitMix64(seed: seed)
        var corpus = target == .frame ? streamSeeds : seeds
        let corpusMax = 4096
        for _ in 0..<inputs {
            var input = corpus[Int(rng.next() % UInt64(corpus.count))]
            let mutations = 1 + Int(rng.next() % 8)
            for _ in 0..<mutations { mutate(&input, corpus: corpus, rng: &rng) }
            run(target, input)
            if corpus.count < corpusMax, (try? WireCodec.decode(input)) != nil { corpus.append(input) }
        }
        return inputs
    }

    static func mutate(_ b: inout [UInt8], corpus: [[UInt8]], rng: inout SplitMix64) {
        let interesting: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x08, 0x10, 0x12, 0x1A, 0x22]
        func pos(_ count: Int) -> Int { count == 0 ? 0 : Int(rng.next() % UInt64(count)) }
        switch rng.next() % 9 {
        case 0 where !b.isEmpty: b[pos(b.count)] ^= UInt8(1 << (rng.next() % 8))
        case 1 where !b.isEmpty: b[pos(b.count)] = UInt8(truncatingIfNeeded: rng.next())
        case 2 where !b.isEmpty: b[pos(b.count)] = interesting[pos(interesting.count)]
        case 3: b.insert(UInt8(truncatingIfNeeded: rng.next()), at: pos(b.count + 1))
        case 4 where !b.isEmpty:
            let start = pos(b.count)
            b.removeSubrange(start..<min(b.count, start + 1 + pos(8)))
        case 5 where !b.isEmpty:
            let start = pos(b.count)
            let slice = b[start..<min(b.count, start + 1 + pos(16))]
            b.insert(contentsOf: slice, at: pos(b.count + 1))
        case 6:
            let other = corpus[pos(corpus.count)]
            let cut = pos(b.count + 1)
            b = Array(b[..<cut]) + other[pos(other.count + 1)...]
        case 7 where !b.isEmpty: b.removeLast(1 + pos(b.count))
        default:
            // A varint of a large value: stresses length fields.
            let v = rng.next() >> (rng.next() % 64)
            var bytes: [UInt8] = []
            var x = v
            repeat { bytes.append(UInt8(x & 0x7F) | (x > 0x7F ? 0x80 : 0)); x >>= 7 } while x != 0
            b.insert(contentsOf: bytes, at: pos(b.count + 1))
        }
    }
}

/// SplitMix64: small, fast, seedable; enough to make fuzz runs reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
