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
        .testTarget(name: "RaftTests", dependencies: ["Raft"], swiftSettings: swiftSettings),
        .testTarget(name: "RaftSimTests", dependencies: ["RaftSim", "Raft"], swiftSettings: swiftSettings),
    ]
)
