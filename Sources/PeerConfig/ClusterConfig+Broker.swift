// The broker's settings and the service catalog (docs/configuration.md §broker, §catalog;
// docs/broker.md). Both sections are optional: absent, a cluster gets the defaults below, so
// every cluster can serve the Open Service Broker API.

extension ClusterConfig {
    /// The Open Service Broker API (`/v2`) on every peer: its basic-auth credentials, the tenant
    /// URL handed out in bindings, and the placement numbers of the operation driver.
    public struct Broker: Sendable, Hashable {
        /// The basic-auth user name a platform presents. 1-64 printable ASCII characters, no `:`.
        public let username: String
        /// Absolute. The verifier every peer reads: `sha256:<salt hex>:<SHA-256(salt || password) hex>`
        /// (0600). `peer init` writes it beside the password file.
        public let passwordHashFile: String
        /// Absolute. The password itself (0600), for the operator and `peer broker credentials`
        /// only; peers never read it, and it may be moved off the machines that run peers.
        public let passwordFile: String
        /// The URL a binding gives for a tenant, with `{tenant}` where the tenant id goes.
        public let tenantURL: String
        /// Capacity units one active instance offers to tenants (plans take `weight` units).
        public let instanceCapacity: Int
        /// A provision that finds no instance with headroom for this long fails.
        public let provisionTimeoutMs: Int
        /// The `Retry-After` (seconds) `last_operation` suggests while an operation runs.
        public let retryAfterSeconds: Int
        /// The leader's operation driver waits at least this long after a round that committed
        /// steps (0: the next round follows at once). Paces churn; tests raise it to catch an
        /// operation half-way.
        public let driverIntervalMs: Int

        public static let usernameCharactersMax = 64
        public static let tenantURLBytesMax = 512
        public static let tenantPlaceholder = "{tenant}"
        public static let instanceCapacityRange = 1...1_000_000_000
        public static let provisionTimeoutMsRange = 1_000...86_400_000
        public static let retryAfterSecondsRange = 1...3_600
        public static let driverIntervalMsRange = 0...60_000
        public static let defaultUsername = "broker"
        public static let defaultInstanceCapacity = 100
        public static let defaultProvisionTimeoutMs = 60_000
        public static let defaultRetryAfterSeconds = 1
        /// File names in `tlsDir` when the paths are not given.
        public static let defaultPasswordFileName = "broker-password"
        public static let defaultPasswordHashFileName = "broker-password.sha256"

        /// The tenant URL for one tenant id.
        public func url(ofTenant tenant: String) -> String {
            tenantURL.replacingOccurrences(of: Self.tenantPlaceholder, with: tenant)
        }
    }

    /// The services and plans `/v2/catalog` offers (OSB "Service Offering" and "Service Plan").
    public struct Catalog: Sendable, Hashable {
        /// In the order of the file. At least one; ids and names unique.
        public let services: [Service]

        public static let servicesMax = 64
        public static let plansPerServiceMax = 64
        public static let tagsMax = 32
        public static let idCharactersMax = 64
        public static let nameCharactersMax = 64
        public static let descriptionBytesMax = 1024
        public static let componentsMax = 16
        public static let weightRange = 1...1_000_000
        public static let quotaRange = 0...1_000_000_000

        public struct Service: Sendable, Hashable {
            /// Globally unique and never changed (platforms key on it). 1-64 of `A-Za-z0-9._-`.
            public let id: String
            /// CLI-friendly: 1-64 of `A-Za-z0-9.-`, unique in the catalog.
            public let name: String
            public let description: String
            public let tags: [String]
            /// At least one; plan names unique within the service.
            public let plans: [Plan]
        }

        public struct Plan: Sendable, Hashable {
            /// Globally unique (across all services) and never changed. A tenant records it.
            public let id: String
            /// CLI-friendly, unique within its service.
            public let name: String
            public let description: String
            /// The component types a tenant of this plan needs (sorted, unique), e.g. `dfx-dev`, `dfc`.
            public let components: [String]
            /// Capacity units a tenant of this plan takes on its instance.
            public let weight: Int
            /// Per-tenant request rate limit (0 = none), enforced by the router.
            public let requestsPerSecond: Int
            /// Per-tenant concurrent connection limit (0 = none).
            public let connectionsMax: Int
            /// OSB `free`.
            public let free: Bool
            /// OSB `maintenance_info.version`, if the plan declares one.
            public let maintenanceVersion: String?
            /// Tenants of this plan require a user token (a binding's credentials) on every
            /// request; the router checks it with the local peer (`auth_request`).
            public var userTokens: Bool = false
        }

        /// The plan with this id and the service it belongs to.
        public func plan(id: String) -> (service: Service, plan: Plan)? {
            for service in services {
                if let plan = service.plans.first(where: { $0.id == id }) { return (service, plan) }
            }
            return nil
        }

        public func service(id: String) -> Service? { services.first { $0.id == id } }

        /// The DreamFace editions (seed: per-tenant development studios, deployed apps and a
        /// compiler): what a cluster offers when its file has no `catalog:`.
        public static let dreamFace = Catalog(services: [
            Service(
                id: "dreamface", name: "dreamface",
                description: "DreamFace application platform: a per-tenant development studio or deployed apps.",
                tags: ["dreamface", "application-platform"],
                plans: [
                    Plan(
                        id: "dreamface-development", name: "development",
                        description: "A development studio (DFX dev) with the compiler (DFC).",
                        components: ["dfc", "dfx-dev"], weight: 4, requestsPerSecond: 50, connectionsMax: 100,
                        free: true, maintenanceVersion: nil),
                    Plan(
                        id: "dreamface-deployment", name: "deployment",
                        description: "Deployed applications (DFX dep).",
                        components: ["dfx-dep"], weight: 2, requestsPerSecond: 200, connectionsMax: 400,
                        free: true, maintenanceVersion: nil),
                ]),
        ])
    }
}
