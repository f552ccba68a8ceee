// The component catalog and the router's settings (docs/configuration.md §components, §router;
// issue 8). Both sections are optional: absent, a cluster runs the demo component `tenant-app`
// for every DreamFace component type, and routes with the defaults below.

extension ClusterConfig {
    /// How the agent runs one component type (seed: `dfx-dev`, `dfx-dep`, `dfc`) on an instance.
    /// Arguments and environment values may hold placeholders the agent fills per instance:
    /// `{instance}`, `{component}`, `{host}`, `{port}`, `{tenantFile}`.
    public struct Component: Sendable, Hashable {
        /// 1-64 of `a-z0-9-._` (the names plans list; they name processes and nginx upstreams).
        public let name: String
        /// An absolute path, or a bare name looked up beside the `peer` binary, then on PATH.
        public let command: String
        public let args: [String]
        /// Extra environment, sorted by name when applied.
        public let env: [String: String]
        /// The component listens on its instance's `components` host at base port + this.
        public let portOffset: Int
        /// Answers 2xx when the component is up; with `X-Tenant-ID: T`, 2xx only once it
        /// serves tenant T (the agent's readiness probe before a tenant moves here).
        public let healthPath: String
        /// The signal that makes the component re-read its tenant file: HUP, USR1 or USR2.
        public let reloadSignal: String
        /// After SIGTERM, the agent waits this long for in-flight work before SIGKILL.
        public let stopTimeoutMs: Int

        public static let argsMax = 64
        public static let argBytesMax = 4096
        public static let envMax = 64
        public static let portOffsetRange = 0...999
        public static let stopTimeoutMsRange = 100...600_000
        public static let reloadSignals = ["HUP", "USR1", "USR2"]
        public static let placeholders = ["{instance}", "{component}", "{host}", "{port}", "{tenantFile}"]
    }

    /// The local NGINX every peer with a `router` address runs (ARCHITECTURE §10).
    public struct RouterSettings: Sendable, Hashable {
        /// When set, `Host: <tenant>.<domain>` selects the tenant too (`X-Tenant-ID` wins).
        public let domain: String?
        /// Absolute path of the nginx binary (Debian's `nginx`).
        public let nginx: String
        /// nginx `worker_processes`.
        public let workerProcesses: Int
        /// How long NGINX caches a token check's answer: a revoked tenant user token keeps
        /// working for at most this long.
        public let authCacheSeconds: Int
        /// The longest a reload may take to show its generation on the control address, and a
        /// route table update to be answered.
        public let confirmTimeoutMs: Int
        /// A tenant move whose target has not reported the tenant served after this long fails
        /// and is rolled back (the tenant stays where it was).
        public let moveTimeoutMs: Int
        /// Seconds an idle client connection to NGINX stays open (0: `Connection: close` after
        /// every response). Tenant changes never reload NGINX (ADR 0008); a config change
        /// (a peer's component addresses, a new plan's rate) does, and makes the old workers
        /// close their idle keepalive connections: a client that had just sent its next request
        /// on one sees the connection drop and must retry (RFC 9112 §9.3.1).
        public var clientKeepaliveSeconds: Int = 65
        /// MiB of shared memory for NGINX's route table (one entry per tenant plus one per
        /// tenant component, about 128 bytes each: the default 128 MiB hold about 260,000 tenants
        /// of three components, more than `tenantsMax`). An update that does not fit fails and is
        /// reported; no route is evicted.
        public var routeTableMiB: Int = 128

        public static let clientKeepaliveSecondsRange = 0...3_600
        public static let routeTableMiBRange = 1...1_024
        public static let workerProcessesRange = 1...64
        public static let authCacheSecondsRange = 1...3_600
        public static let confirmTimeoutMsRange = 100...120_000
        public static let moveTimeoutMsRange = 1_000...3_600_000
        public static let defaults = RouterSettings(
            domain: nil, nginx: "/usr/sbin/nginx", workerProcesses: 1, authCacheSeconds: 5,
            confirmTimeoutMs: 5_000, moveTimeoutMs: 60_000)
    }

    /// `routerControl` defaults to 127.0.0.1 at the router's port + this.
    public static let routerControlPortOffset = 1000

    /// The component with this name, or nil.
    public func component(named name: String) -> Component? { components.first { $0.name == name } }

    /// The demo catalog: `tenant-app` plays every DreamFace component type.
    public static let demoComponents: [Component] = ["dfx-dev", "dfx-dep", "dfc"].enumerated().map { i, name in
        Component(
            name: name, command: "tenant-app",
            args: ["--instance", "{instance}", "--component", "{component}", "--host", "{host}", "--port", "{port}", "--tenant-file", "{tenantFile}"],
            env: [:], portOffset: i, healthPath: "/healthz", reloadSignal: "HUP", stopTimeoutMs: 10_000)
    }
}
