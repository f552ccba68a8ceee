// swift-tools-version:6.1
// The module graph is the architecture: see docs/architecture.md §Modules.
// Pure targets (Raft, ClusterModel, Controller) depend on nothing that does I/O;
// `.ci/check-imports` enforces it. The product's modules live in Sources/<Module>; the
// benchmarks, the allocation counter, the fuzzer and the crash-test child in Sources/Tools/.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
]
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")

let package = Package(
    name: "peer",
    platforms: [.macOS(.v15)],
    products: [
        // The product: the peer (server and CLI), its child launcher, the demo component.
        .executable(name: "peer", targets: ["peer"]),
        .executable(name: "peer-exec", targets: ["peer-exec"]),
        .executable(name: "tenant-app", targets: ["tenant-app"]),
        // The deterministic simulator.
        .executable(name: "peer-sim", targets: ["peer-sim"]),
        // Tools (Sources/Tools): benchmarks and the fuzzer.
        .executable(name: "peer-bench", targets: ["peer-bench"]),
        .executable(name: "peer-transport-bench", targets: ["peer-transport-bench"]),
        .executable(name: "peer-cluster-bench", targets: ["peer-cluster-bench"]),
        .executable(name: "peer-broker-bench", targets: ["peer-broker-bench"]),
        .executable(name: "peer-wire-fuzz", targets: ["peer-wire-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // SQLite through GRDB, linking the system libsqlite3 (libsqlite3-dev).
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        // The one HTTP client (the admin client: mutual TLS, pooled keep-alive connections).
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // MARK: Pure cores: no I/O, no clock (`.ci/check-imports`).

        // The consensus core: tick/step/propose in, Ready out. The Swift standard library only.
        .target(name: "Raft", swiftSettings: swiftSettings),
        // Histories of concurrent clients and their linearizability check. The standard library only.
        .target(name: "History", swiftSettings: swiftSettings),
        // The replicated state machine: protobuf commands, deterministic apply, snapshots.
        .target(
            name: "ClusterModel",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Proto"],
            swiftSettings: swiftSettings
        ),
        // The leader's decisions over the cluster state (ARCHITECTURE §4): imports ClusterModel only.
        .target(name: "Controller", dependencies: ["ClusterModel"], swiftSettings: swiftSettings),

        // MARK: The driver and the leader.

        // The Ready loop, proposals and reads over the ports it declares (LogStore, MessageSender).
        // Knows neither SQLite nor NIO.
        .target(name: "PeerNode", dependencies: ["Raft", "ClusterModel"], swiftSettings: swiftSettings),
        // The leader's loops (ADR 0010): feed Controller the state, the data plane's reports and
        // the clock; propose what it decides. Never imports PeerAPI (`.ci/check-imports`).
        .target(name: "Leader", dependencies: ["Controller", "ClusterModel", "PeerNode", "Raft", "Failpoints", "Providers", logging], swiftSettings: swiftSettings),

        // MARK: Support libraries (no network I/O of their own).

        // The cluster's own certificate authority: create the CA, issue certificates. Files only.
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
            dependencies: ["Raft", .product(name: "NIOCore", package: "swift-nio"), .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Proto/peer.proto", "Proto/generate.sh"],
            swiftSettings: swiftSettings
        ),
        // The cluster configuration file (YAML) as plain values, validated with key paths.
        // Reads one file; imports only Yams and Foundation.
        .target(name: "PeerConfig", dependencies: [.product(name: "Yams", package: "Yams")], swiftSettings: swiftSettings),

        // MARK: Support libraries: one way to do a thing, for every module that needs it (ADR 0011).

        // Named points where a test makes the process die (PEER_FAILPOINT); off unless set.
        .target(name: "Failpoints", swiftSettings: swiftSettings),
        // The one way to start, wait for and signal a child process (posix_spawn, one pid at a time).
        .target(name: "ChildProcesses", swiftSettings: swiftSettings),
        // The one plain-HTTP client for this machine's own endpoints (AsyncHTTPClient).
        .target(
            name: "LoopbackHTTP",
            dependencies: nio + [.product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: swiftSettings),

        // MARK: Adapters: each speaks to one outside thing; none imports another.

        // The Raft log, hard state and snapshots in SQLite.
        .target(
            name: "PeerStore",
            dependencies: ["Raft", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
        // Mutual-TLS peer transport carrying Raft messages (ARCHITECTURE §8).
        .target(
            name: "PeerTransport",
            dependencies: nio + [
                "Raft", "PeerCerts", "PeerWire", logging,
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        // The provider (seed: DFP): instances as processes, Docker containers or operator scripts.
        .target(
            name: "Providers",
            dependencies: ["ChildProcesses", "LoopbackHTTP", .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: swiftSettings),
        // The agent (seed: DFM): supervises this instance's components.
        .target(
            name: "Agent", dependencies: ["ChildProcesses", "LoopbackHTTP", logging, .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings),
        // The router: NGINX config as a pure function of its input, the applier, the statistics intake.
        .target(name: "Router", dependencies: ["ChildProcesses", "LoopbackHTTP", logging], swiftSettings: swiftSettings),
        // The HTTPS APIs (admin /v1, the Open Service Broker's /v2) over PeerNode, and the client
        // the CLI and forwarding followers use. Tells the leader to wake through a closure.
        .target(
            name: "PeerAPI",
            dependencies: nio + [
                "PeerNode", "ClusterModel", "Controller", "Raft", "Failpoints", "PeerCerts", logging,
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Executables of the product.

        // The operator CLI and the peer process itself: the only target that sees every module.
        .executableTarget(
            name: "peer",
            dependencies: [
                "PeerCerts", "PeerConfig", "PeerStore", "PeerTransport", "PeerNode", "PeerAPI", "ClusterModel", "Raft",
                "Agent", "Router", "Leader", "ChildProcesses", "Failpoints", "Providers", "History", argumentParser, logging,
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // How a peer starts children that must die with it (PR_SET_PDEATHSIG, a guard for
        // NGINX's process group). C and single-threaded on purpose: signal state is per thread.
        .executableTarget(name: "peer-exec"),
        // The demo tenant component: an HTTP server for the tenants of its tenant file.
        .executableTarget(
            name: "tenant-app",
            dependencies: [
                argumentParser, logging,
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: The simulator.

        // Deterministic whole-cluster simulator over the pure core (no I/O, seeded PRNG).
        .target(name: "RaftSim", dependencies: ["Raft"], swiftSettings: swiftSettings),
        // The cluster world (issue 22 part 4): simulated Raft + ClusterModel apply + the leader's
        // real loops over simulated ports (node, clock, provider, routers), on one thread.
        .target(
            name: "ClusterSim", dependencies: ["RaftSim", "Raft", "ClusterModel", "Controller", "Leader", "PeerNode", "Providers", logging],
            swiftSettings: swiftSettings),
        .executableTarget(name: "peer-sim", dependencies: ["RaftSim", "ClusterSim", "Controller", argumentParser], swiftSettings: swiftSettings),

        // MARK: Tools (Sources/Tools): benchmarks, the fuzzer, the crash-test child. Never shipped.

        // Counts malloc calls for the benchmarks (interposes malloc in the benchmark binary only).
        .target(name: "CAllocCounter", path: "Sources/Tools/CAllocCounter"),
        .executableTarget(
            name: "peer-bench", dependencies: ["Raft", "CAllocCounter", argumentParser], path: "Sources/Tools/peer-bench",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "peer-store-bench", dependencies: ["PeerStore", "Raft"], path: "Sources/Tools/peer-store-bench", swiftSettings: swiftSettings),
        // Child process of the storage crash test: appends as fast as it can, reports each acknowledged write.
        .executableTarget(
            name: "peer-store-crash", dependencies: ["PeerStore", "Raft"], path: "Sources/Tools/peer-store-crash", swiftSettings: swiftSettings),
        // Two-process loopback benchmark of PeerTransport, mutual TLS against plain TCP.
        .executableTarget(
            name: "peer-transport-bench",
            dependencies: nio + ["PeerTransport", "PeerCerts", "Raft", "ChildProcesses", logging, argumentParser],
            path: "Sources/Tools/peer-transport-bench",
            swiftSettings: swiftSettings
        ),
        // libFuzzer target for the frame and message decoders (docs/transport.md §Fuzzing).
        // A normal build makes a seeded mutational runner; `-DFUZZING -sanitize=fuzzer` makes the fuzzer.
        .executableTarget(
            name: "peer-wire-fuzz", dependencies: ["PeerWire", "Raft"], path: "Sources/Tools/peer-wire-fuzz", swiftSettings: swiftSettings),
        // Peer and etcd side by side (`peer bench`, `make bench-cluster`): wrk load, memory, failover.
        .executableTarget(
            name: "peer-cluster-bench",
            dependencies: ["PeerAPI", "ClusterModel", "ChildProcesses", argumentParser, .product(name: "NIOHTTP1", package: "swift-nio")],
            path: "Sources/Tools/peer-cluster-bench",
            swiftSettings: swiftSettings
        ),
        // Provision-to-succeeded latency and provisions/s against a running cluster.
        .executableTarget(
            name: "peer-broker-bench",
            dependencies: ["PeerAPI", "PeerConfig", argumentParser, .product(name: "NIOHTTP1", package: "swift-nio")],
            path: "Sources/Tools/peer-broker-bench",
            swiftSettings: swiftSettings
        ),

        // MARK: Tests (Tests/<Module>Tests).

        .testTarget(name: "RaftTests", dependencies: ["Raft"], swiftSettings: swiftSettings),
        .testTarget(name: "HistoryTests", dependencies: ["History"], swiftSettings: swiftSettings),
        .testTarget(name: "RaftSimTests", dependencies: ["RaftSim", "ClusterSim", "Controller", "Raft"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ClusterModelTests",
            dependencies: ["ClusterModel", .product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings),
        .testTarget(name: "ControllerTests", dependencies: ["Controller", "ClusterModel"], swiftSettings: swiftSettings),
        .testTarget(name: "LeaderTests", dependencies: ["Leader", "Controller", "Raft", logging], swiftSettings: swiftSettings),
        .testTarget(name: "PeerNodeTests", dependencies: ["PeerNode", "Raft", "ClusterModel"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PeerStoreTests", dependencies: ["PeerStore", "Raft", "peer-store-crash", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PeerTransportTests",
            dependencies: nio + [
                "PeerTransport", "PeerWire", "PeerCerts", "Raft", logging,
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeerAPITests",
            dependencies: [
                "PeerAPI", "Leader", "PeerNode", "PeerCerts", "ClusterModel", "Raft", logging,
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Depends on `peer` so the built binary is there for the `peer init` process tests.
        .testTarget(name: "PeerConfigTests", dependencies: ["PeerConfig", "PeerCerts", "peer"], swiftSettings: swiftSettings),
        .testTarget(name: "ProvidersTests", dependencies: ["Providers", "ChildProcesses", "LoopbackHTTP"], swiftSettings: swiftSettings),
        .testTarget(name: "ChildProcessesTests", dependencies: ["ChildProcesses"], swiftSettings: swiftSettings),
        .testTarget(
            name: "LoopbackHTTPTests", dependencies: ["LoopbackHTTP", .product(name: "NIOCore", package: "swift-nio")], swiftSettings: swiftSettings),
        .testTarget(name: "AgentTests", dependencies: ["Agent", "ChildProcesses"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RouterTests", dependencies: ["Router", "ChildProcesses", "LoopbackHTTP", logging, .product(name: "NIOHTTP1", package: "swift-nio")], resources: [.copy("Golden")], swiftSettings: swiftSettings),
        .testTarget(name: "TenantAppTests", dependencies: ["tenant-app"], swiftSettings: swiftSettings),
        // Real `peer` processes on loopback, driven through the CLI.
        .testTarget(name: "PeerProcessTests", dependencies: ["peer", "ChildProcesses"], swiftSettings: swiftSettings),
    ]
)
