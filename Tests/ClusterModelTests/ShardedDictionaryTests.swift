@testable import ClusterModel
import Testing

/// `ShardedDictionary` against `Dictionary` as the reference: random inserts, overwrites and
/// removals; copies stay independent (value semantics), and equality ignores insertion order.
struct ShardedDictionaryTests {
    @Test(arguments: [1, 99] as [UInt64])
    func behavesLikeADictionary(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        var sharded = ShardedDictionary<String, Int>()
        var reference: [String: Int] = [:]
        var snapshots: [(ShardedDictionary<String, Int>, [String: Int])] = []
        for step in 0..<20_000 {
            let key = "k\(Int.random(in: 0..<3_000, using: &rng))"
            switch Int.random(in: 0..<8, using: &rng) {
            case 0, 1:
                sharded[key] = nil
                reference[key] = nil
            case 2:  // in place, through the default subscript (may insert)
                sharded[key, default: 0] += 3
                reference[key, default: 0] += 3
            case 3:  // in place through optional chaining (only if present)
                sharded[key]? *= 2
                reference[key]? *= 2
            case 4:  // in place, removing through the modify accessor
                Self.clear(&sharded[key])
                Self.clear(&reference[key])
            default:
                sharded[key] = step
                reference[key] = step
            }
            if step % 5_000 == 0 { snapshots.append((sharded, reference)) }
        }
        #expect(sharded.count == reference.count)
        #expect(sharded.isEmpty == reference.isEmpty)
        #expect(Dictionary(uniqueKeysWithValues: zip(sharded.keys, sharded.keys.map { sharded[$0]! })) == reference)
        #expect(sharded.values.sorted() == reference.values.sorted())
        // Copies taken along the way kept their contents while the original changed.
        for (copy, expected) in snapshots {
            #expect(copy.count == expected.count)
            for (k, v) in expected { #expect(copy[k] == v) }
        }
    }

    static func clear(_ value: inout Int?) { value = nil }

    @Test func shardedSetInsertsRemovesAndCounts() {
        var set = ShardedSet<String>()
        for i in 0..<300 { set.insert("t\(i)") }
        set.insert("t7")
        let copy = set
        for i in 0..<100 { set.remove("t\(i)") }
        set.remove("absent")
        #expect(set.count == 200 && copy.count == 300)
        #expect(set.elements.sorted() == (100..<300).map { "t\($0)" }.sorted())
        #expect(!set.contains("t5") && set.contains("t150") && copy.contains("t5"))
        #expect(!set.isEmpty && ShardedSet<String>().isEmpty)
    }

    @Test func equalityIgnoresInsertionOrder() {
        var a = ShardedDictionary<String, Int>()
        var b = ShardedDictionary<String, Int>()
        for i in 0..<500 { a["k\(i)"] = i }
        for i in (0..<500).reversed() { b["k\(i)"] = i }
        #expect(a == b)
        b["k7"] = 8
        #expect(a != b)
        b["k7"] = 7
        b["extra"] = 1
        #expect(a != b)
        b["extra"] = nil
        #expect(a == b)
    }
}
