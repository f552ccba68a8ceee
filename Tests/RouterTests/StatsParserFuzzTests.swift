import Testing

@testable import Router

/// The parser must never trap, whatever the bytes: random datagrams and mutations of a good line,
/// from fixed seeds so a failure reproduces.
@Suite("StatsParser fuzz")
struct StatsParserFuzzTests {
    static let datagramsPerRun = 5_000

    @Test(arguments: [1, 2, 3] as [UInt64])
    func randomBytesNeverParseAndNeverTrap(seed: UInt64) {
        var random = StatsSeededGenerator(seed: seed)
        var parsed = 0
        var kinds: Set<StatsParseError.Kind> = []
        for _ in 0..<Self.datagramsPerRun {
            // Mostly short, some over the 8 KiB bound; some start like syslog to get further in.
            let length = Int.random(in: 0...10, using: &random) == 0 ? Int.random(in: 8_000...8_300, using: &random) : Int.random(in: 0...300, using: &random)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            if Bool.random(using: &random) { bytes = Array(StatsTestLine.header.utf8) + bytes }
            do throws(StatsParseError) {
                _ = try StatsParser.parse(datagram: bytes)
                parsed += 1
            } catch {
                kinds.insert(error.kind)
            }
        }
        #expect(parsed == 0, "seed \(seed): random bytes parsed as a record")
        #expect(kinds.isSuperset(of: [.tooLarge, .notSyslog, .noJSON]), "seed \(seed): kinds reached \(kinds)")
    }

    @Test(arguments: [11, 12, 13] as [UInt64])
    func mutatedLinesEitherParseValidOrFailSpecifically(seed: UInt64) {
        var random = StatsSeededGenerator(seed: seed)
        let good = StatsTestLine.datagram(StatsTestLine.json(upstreamTime: "0.001, 0.002"))
        var parsed = 0
        var kinds: Set<StatsParseError.Kind> = []
        for _ in 0..<Self.datagramsPerRun {
            var bytes = good
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                guard !bytes.isEmpty else { break }
                let at = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[at] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes.remove(at: at)
                case 2: bytes.insert(Array("{}[]\",:\\-0.9eu ".utf8).randomElement(using: &random)!, at: at)
                default: bytes.removeLast(Int.random(in: 0...(bytes.count - at), using: &random))
                }
            }
            do throws(StatsParseError) {
                let record = try StatsParser.parse(datagram: bytes)
                parsed += 1
                // Whatever parses obeys the record's rules (checked again, independently).
                #expect(record.tenant.map { StatsIds.isTenantId($0) } ?? true)
                #expect(record.status == 0 || (100...599).contains(record.status))
                #expect(record.requestTimeSeconds >= 0 && record.bytes >= 0)
            } catch {
                kinds.insert(error.kind)
            }
        }
        #expect(parsed > 0, "seed \(seed): no mutation kept a valid line (the harness is broken)")
        #expect(kinds.count >= 6, "seed \(seed): mutations reached only \(kinds)")
    }
}
