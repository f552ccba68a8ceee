extension ClusterConfig {
    /// Every mapping of the configuration file and the keys it accepts, in the order
    /// docs/configuration.md lists them. These are the very lists the decoder refuses unknown
    /// keys with, so `peer config keys` and the docs check (`.ci/check-docs`) cannot drift from it.
    /// A path names list items `[i]` (services), `[j]` (plans) the way the docs' tables do.
    public static let schema: [(mapping: String, keys: [String])] = [
        ("", ConfigDecoder.topKeys),
        ("timing", ConfigDecoder.timingKeys),
        ("peers[i]", ConfigDecoder.peerKeys),
        ("admin", ConfigDecoder.adminKeys),
        ("broker", ConfigDecoder.brokerKeys),
        ("catalog", ConfigDecoder.catalogKeys),
        ("catalog.services[i]", ConfigDecoder.serviceKeys),
        ("catalog.services[i].plans[j]", ConfigDecoder.planKeys),
        ("catalog.services[i].plans[j].quotas", ConfigDecoder.quotaKeys),
        ("components[i]", ConfigDecoder.componentKeys),
        ("router", ConfigDecoder.routerKeys),
        ("limits", ConfigDecoder.limitsKeys),
        ("limits.api", ConfigDecoder.apiLimitsKeys),
        ("limits.transport", ConfigDecoder.transportLimitsKeys),
        ("limits.routerControl", ConfigDecoder.routerControlLimitsKeys),
        ("providers[i]", ConfigDecoder.providerKeys),
        ("balancer", ConfigDecoder.balancerKeys),
        ("events", ConfigDecoder.eventsKeys),
    ]

    /// Every key path the file accepts (`timing.tickMs`, `peers[i].api`, ...).
    public static var keyPaths: [String] {
        schema.flatMap { mapping, keys in keys.map { mapping.isEmpty ? $0 : mapping + "." + $0 } }
    }
}
