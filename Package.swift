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
        // --- transport (issue 5) ---
        .executable(name: "peer", targets: ["peer"]),
        .executable(name: "peer-transport-bench", targets: ["peer-transport-bench"]),
        .executable(name: "peer-wire-fuzz", targets: ["peer-wire-fuzz"]),
        .executable(name: "tenant-app", targets: ["tenant-app"]),
        // --- end transport ---
        .executable(name: "peer-cluster-bench", targets: ["peer-cluster-bench"]),
        .executable(name: "peer-broker-bench", targets: ["peer-broker-bench"]),
        .executable(name: "peer-exec", targets: ["peer-exec"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Storage (issue 4): SQLite through GRDB, linking the system libsqlite3 (libsqlite3-dev).
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // --- transport (issue 5) ---
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // --- end transport ---
        // Cluster model (issue 6) uses swift-protobuf and swift-crypto, declared above.
        // Admin HTTPS API (issue 6).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // --- config (issue 6) ---
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        // --- end config ---
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
        // How a peer starts children that must die with it (PR_SET_PDEATHSIG, a guard for
        // NGINX's process group). C and single-threaded on purpose: signal state is per thread.
        .executableTarget(name: "peer-exec"),
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
        // --- transport (issue 5) ---
        // The cluster's own certificate authority: create the CA, issue peer and client
        // certificates, list expiry. Files only; no networking.
        .target(
            name: "PeerCerts",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        // The peer wire format: length-prefixed protobuf frames <-> Raft.Message, validated on
        // decode. No sockets, so the fuzzer builds it alone.
        .target(
            name: "PeerWire",
            dependencies: [
                "Raft",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Proto/peer.proto", "Proto/generate.sh"],
            swiftSettings: swiftSettings
        ),
        // libFuzzer target for the frame and message decoders (docs/transport.md §Fuzzing).
        // A normal build makes a seeded mutational runner; `-DFUZZING -sanitize=fuzzer` makes the fuzzer.
        .executableTarget(name: "peer-wire-fuzz", dependencies: ["PeerWire", "Raft"], swiftSettings: swiftSettings),
        // Mutual-TLS peer transport carrying Raft messages (ARCHITECTURE.md §8).
        .target(
            name: "PeerTransport",
            dependencies: [
                "Raft", "PeerCerts", "PeerWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The operator CLI and the peer process itself: the only target that sees every module.
        .executableTarget(
            name: "peer",
            dependencies: [
                "PeerCerts", "PeerConfig", "PeerStore", "PeerTransport", "PeerNode", "PeerAPI", "ClusterModel", "Raft",
                "Agent", "Router",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Two-process loopback benchmark of PeerTransport, mutual TLS against plain TCP.
        .executableTarget(
            name: "peer-transport-bench",
            dependencies: [
                "PeerTransport", "PeerCerts", "Raft",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeerTransportTests",
            dependencies: [
                "PeerTransport", "PeerWire", "PeerCerts", "Raft",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // --- end transport ---
        // Cluster model (issue 6): the replicated state machine. Pure: SwiftProtobuf and Crypto only.
        .target(
            name: "ClusterModel",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Proto"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "ClusterModelTests", dependencies: ["ClusterModel", .product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "Crypto", package: "swift-crypto")], swiftSettings: swiftSettings),
        // --- broker (issue 7) ---
        // Pure leader decisions over the cluster state (ARCHITECTURE §4): imports ClusterModel only.
        .target(name: "Controller", dependencies: ["ClusterModel"], swiftSettings: swiftSettings),
        .testTarget(name: "ControllerTests", dependencies: ["Controller", "ClusterModel"], swiftSettings: swiftSettings),
        // Provision-to-succeeded latency and provisions/s against a running cluster (docs/benchmarks.md).
        .executableTarget(
            name: "peer-broker-bench",
            dependencies: [
                "PeerConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // --- end broker ---
        // The driver (issue 6): the Ready loop, proposals and reads over the ports it declares
        // (LogStore, MessageSender). Knows neither SQLite nor NIO (`.ci/check-imports`).
        .target(name: "PeerNode", dependencies: ["Raft", "ClusterModel"], swiftSettings: swiftSettings),
        // The HTTPS APIs (admin /v1; the broker's /v2 later) over PeerNode, and the client the
        // CLI and forwarding followers use. An adapter: never imports another adapter.
        .target(
            name: "PeerAPI",
            dependencies: [
                "PeerNode", "ClusterModel", "Controller", "Raft",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeerAPITests",
            dependencies: [
                "PeerAPI", "PeerNode", "PeerCerts", "ClusterModel", "Raft",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // The demo tenant component (issue 8): an HTTP server for the tenants of its tenant file.
        .executableTarget(
            name: "tenant-app",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "TenantAppTests", dependencies: ["tenant-app"], swiftSettings: swiftSettings),
        // Real `peer` processes on loopback, driven through the CLI (issue 6).
        .testTarget(name: "PeerProcessTests", dependencies: ["peer"], swiftSettings: swiftSettings),
        .testTarget(name: "PeerNodeTests", dependencies: ["PeerNode", "Raft", "ClusterModel"], swiftSettings: swiftSettings),
        // --- config (issue 6) ---
        // The cluster configuration file (YAML) as plain values, validated with key paths.
        // Reads one file; imports only Yams and Foundation (`.ci/check-imports`).
        .target(name: "PeerConfig", dependencies: [.product(name: "Yams", package: "Yams")], swiftSettings: swiftSettings),
        // Depends on `peer` so the built binary is there for the `peer init` process tests.
        .testTarget(
            name: "PeerConfigTests",
            dependencies: ["PeerConfig", "PeerCerts", "peer"],
            swiftSettings: swiftSettings
        ),
        // --- end config ---
        // Issue 6's cluster benchmark: peer and etcd side by side (wrk load, memory, failover).
        // Drives the `peer`, `etcd` and `wrk` binaries; PeerAPI's client for status and probes.
        .executableTarget(
            name: "peer-cluster-bench",
            dependencies: [
                "PeerAPI", "ClusterModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // --- agent and router (issue 8) ---
        // The agent (seed: DFM): supervises this instance's components (process groups, tenant
        // files, health checks, restarts with backoff, CPU and memory samples). An adapter.
        .target(name: "Agent", dependencies: [.product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(name: "AgentTests", dependencies: ["Agent"], swiftSettings: swiftSettings),
        // The router: the NGINX config as a pure function of its input (golden files), the
        // applier (nginx -t, atomic swap, reload, confirmed generation) and the statistics intake
        // (JSON access log over syslog/UDP). An adapter.
        .target(name: "Router", dependencies: [.product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(
            name: "RouterTests", dependencies: ["Router", .product(name: "Logging", package: "swift-log")],
            resources: [.copy("Golden")], swiftSettings: swiftSettings),
        // --- end agent and router ---
        .testTarget(name: "RaftTests", dependencies: ["Raft"], swiftSettings: swiftSettings),
        .testTarget(name: "RaftSimTests", dependencies: ["RaftSim", "Raft"], swiftSettings: swiftSettings),
    ]
)
