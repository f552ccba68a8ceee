/// A dictionary split into `shardCount` ordinary dictionaries by key hash. A value type like
/// `Dictionary`, with one difference that matters to the node: after a copy (the snapshot takes
/// one of the whole state), a write copies only the shard it touches, 1/1024 of the entries, not
/// the whole collection. The node thread then pays for the snapshot's copy a shard at a time over
/// the next writes instead of all at once (one write to 50,000 tenants right after a copy took
/// 236-253 ms unsharded). 1024 shards because one turn of the loop applies up to ~64 entries at
/// 64 connections, each touching a shard of five collections: with 64 shards the first turn
/// after the copy would copy most of the state at once (measured, with both counts, in
/// docs/benchmarks.md).
///
/// Iteration order is unspecified, as for `Dictionary` (and differs between processes): the state
/// machine never depends on it; encoders sort.
struct ShardedDictionary<Key: Hashable, Value> {
    static var shardCount: Int { 1024 }
    private var shards: [[Key: Value]]
    private(set) var count = 0

    init() { shards = Array(repeating: [:], count: Self.shardCount) }

    private static func shard(of key: Key) -> Int {
        Int(UInt(bitPattern: key.hashValue) % UInt(shardCount))
    }

    subscript(key: Key) -> Value? {
        get { shards[Self.shard(of: key)][key] }
        set {
            let i = Self.shard(of: key)
            if let newValue {
                if shards[i].updateValue(newValue, forKey: key) == nil { count += 1 }
            } else if shards[i].removeValue(forKey: key) != nil {
                count -= 1
            }
        }
        // In place, like Dictionary's: `d[k]?.field = x` copies neither the value nor the shard
        // (unless the shard is shared with a snapshot's copy, once).
        _modify {
            let i = Self.shard(of: key)
            let had = shards[i].index(forKey: key) != nil
            defer {
                let has = shards[i].index(forKey: key) != nil
                if had != has { count += has ? 1 : -1 }
            }
            yield &shards[i][key]
        }
    }

    /// Dictionary's `d[k, default: v]`: a modification stores the value, created if missing.
    subscript(key: Key, default defaultValue: @autoclosure () -> Value) -> Value {
        get { self[key] ?? defaultValue() }
        _modify {
            let i = Self.shard(of: key)
            if shards[i].index(forKey: key) == nil { count += 1 }
            yield &shards[i][key, default: defaultValue()]
        }
    }

    var isEmpty: Bool { count == 0 }

    /// Every value, in no particular order.
    var values: [Value] {
        var out: [Value] = []
        out.reserveCapacity(count)
        for s in shards { out.append(contentsOf: s.values) }
        return out
    }

    /// Every key, in no particular order.
    var keys: [Key] {
        var out: [Key] = []
        out.reserveCapacity(count)
        for s in shards { out.append(contentsOf: s.keys) }
        return out
    }
}

extension ShardedDictionary: Sendable where Key: Sendable, Value: Sendable {}

/// Equal when they hold the same pairs: equal keys land in the same shard within a process.
extension ShardedDictionary: Equatable where Value: Equatable {
    static func == (a: Self, b: Self) -> Bool { a.count == b.count && a.shards == b.shards }
}

extension ShardedDictionary: ExpressibleByDictionaryLiteral {
    init(dictionaryLiteral elements: (Key, Value)...) {
        self.init()
        for (k, v) in elements { self[k] = v }
    }
}

/// A set split into shards by hash, for the same reason as `ShardedDictionary`: a set of every
/// tenant on an instance must not be copied whole by the first insert after a snapshot's copy.
struct ShardedSet<Element: Hashable>: Equatable {
    private var members = ShardedDictionary<Element, Bool>()

    var count: Int { members.count }
    var isEmpty: Bool { members.isEmpty }
    func contains(_ element: Element) -> Bool { members[element] != nil }
    mutating func insert(_ element: Element) { members[element] = true }
    mutating func remove(_ element: Element) { members[element] = nil }
    /// Every element, in no particular order.
    var elements: [Element] { members.keys }
}

extension ShardedSet: Sendable where Element: Sendable {}
