// swift-tools-version:6.1
// The module graph is the architecture: see docs/architecture.md §Modules.
// Pure targets (Raft, ClusterModel, Controller) depend on nothing that does I/O;
// `.ci/check-imports` enforces it.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "peer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "peer-sim", targets: ["peer-sim"]),
        .executable(name: "peer-bench", targets: ["peer-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Storage (issue 4): SQLite through GRDB, linking the system libsqlite3 (libsqlite3-dev).
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // Cluster model (issue 6): protobuf commands and snapshots, SHA-256 state digest.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // Pure consensus core: imports only the Swift standard library.
        .target(name: "Raft", swiftSettings: swiftSettings),
        // Deterministic whole-cluster simulator over the pure core (no I/O, seeded PRNG).
        .target(name: "RaftSim", dependencies: ["Raft"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "peer-sim",
            dependencies: ["RaftSim", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        // Counts malloc calls for the benchmarks (interposes malloc in the benchmark binary only).
        .target(name: "CAllocCounter"),
        .executableTarget(
            name: "peer-bench",
            dependencies: ["Raft", "CAllocCounter", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        // Storage (issue 4): durable Raft log on SQLite. Imports Raft and GRDB, no other adapter.
        .target(name: "PeerStore", dependencies: ["Raft", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift")], swiftSettings: swiftSettings),
        // Child process of the crash test: appends as fast as it can, reports each acknowledged write.
        .executableTarget(name: "peer-store-crash", dependencies: ["PeerStore", "Raft"], swiftSettings: swiftSettings),
        .executableTarget(name: "peer-store-bench", dependencies: ["PeerStore", "Raft"], swiftSettings: swiftSettings),
        .testTarget(name: "PeerStoreTests", dependencies: ["PeerStore", "Raft", "peer-store-crash", .product(name: "GRDB", package: "GRDB.swift")], swiftSettings: swiftSettings),
        // Cluster model (issue 6): the replicated state machine. Pure: SwiftProtobuf and Crypto only.
        .target(
            name: "ClusterModel",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Proto"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "ClusterModelTests", dependencies: ["ClusterModel", .product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "Crypto", package: "swift-crypto")], swiftSettings: swiftSettings),
        .testTarget(name: "RaftTests", dependencies: ["Raft"], swiftSettings: swiftSettings),
        .testTarget(name: "RaftSimTests", dependencies: ["RaftSim", "Raft"], swiftSettings: swiftSettings),
    ]
)
