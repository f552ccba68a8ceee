import Agent
import ClusterModel
import Crypto
import Foundation
import Logging
import PeerAPI
import PeerConfig
import PeerNode
import Router
import Synchronization

/// This peer's data plane (ARCHITECTURE §9-§10): its agent runs the components the tenants
/// placed here need, and its NGINX routes every tenant to the instance serving it, both derived
/// from the applied state. A loop reads `routingChangeIndex` (O(1)) every `pollMillis` and only
/// when it moved reads the routing inputs, reconciles the agent and applies the router config
/// (generation = that index). It reports what the leader's move driver needs: the tenants the
/// components here serve, and the highest applied index whose routing NGINX is confirmed to run.
final class DataPlane: Sendable {
    struct Settings: Sendable {
        var selfID: UInt64
        /// This peer's addresses (from the config file, or from a joining instance's join file).
        var me: ClusterConfig.Peer
        var config: ClusterConfig
        /// The cluster CA certificate NGINX checks the token check's TLS with.
        var caCertificatePath: String
        var directory: String
        var peerBinary: String
        var pollMillis = 50
        /// After a failed router apply, the next attempt waits this long (the same spec).
        var retryMillis = 1_000
    }

    struct State: Sendable {
        /// The routing index the agent and the router last acted on.
        var handledRoutingIndex: UInt64 = 0
        /// The routing index of the config NGINX is confirmed to run, and the newest applied
        /// index seen with that same routing index (both 0 before the first confirmation).
        var liveRoutingIndex: UInt64 = 0
        var confirmedAppliedIndex: UInt64 = 0
        var routerError: String?
        var lastSpec: RouterSpec?
        var lastDesired: DesiredComponents?
        /// tenant → components it needs on this instance (for `servingTenants`).
        var neededHere: [String: [String]] = [:]
        var retryAt: ContinuousClock.Instant?
        /// The SHA-256 of `caCertificatePath` as last read (at start, at each TLS reload): the
        /// router spec carries it, so NGINX reloads and reads the bundle again when it changes.
        var trustSHA256: String?
    }

    let settings: Settings
    let me: ClusterConfig.Peer
    let agent: Agent?
    let router: NginxRouter?
    let stats: StatsListener?
    let state = Mutex(State())
    let logger: Logger

    init(_ settings: Settings, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        let me = settings.me
        self.me = me
        // Children die with this peer: `peer-exec` (beside the peer binary) sets PR_SET_PDEATHSIG.
        let binaryDirectory = URL(fileURLWithPath: settings.peerBinary).deletingLastPathComponent().path
        let exec = binaryDirectory + "/peer-exec"
        let needsChildren = me.componentAddress != nil || me.routerAddress != nil
        // Checked before anything starts: a taken router port is fatal, not a router that
        // silently never runs. The NGINX of this peer's previous run (killed with it) may still
        // be going away, so a taken port is looked at again for a while first.
        if me.routerAddress != nil {
            for (address, key) in [(me.routerAddress, "router"), (me.routerControlAddress, "routerControl")] {
                guard let address, let problem = ListenCheck.problem(binding: address, waitingUpToMillis: ListenCheck.waitMillis) else { continue }
                throw CLIError("the router cannot listen on \(address) (the config's \(key) address): \(problem)")
            }
        }
        guard !needsChildren || FileManager.default.isExecutableFile(atPath: exec) else {
            throw CLIError("\(exec) not found: peer starts NGINX and the components through it, from its own directory; build it with \(BuildHint.command(building: "peer-exec", besideBinaryIn: binaryDirectory))")
        }
        let launcher = [exec, "--parent", "\(getpid())", "--"]
        if me.componentAddress != nil {
            // A component that cannot start is refused now, with the cause, rather than found
            // when the first tenant lands here.
            for component in settings.config.components where Self.executable(component.command, besideBinaryIn: binaryDirectory) == nil {
                let hint = BuildHint.siblingProducts.contains(component.command)
                    ? "build it with \(BuildHint.command(building: component.command, besideBinaryIn: binaryDirectory))"
                    : "install it or name its absolute path in the config's components"
                throw CLIError("component \(component.name): command '\(component.command)' is not an executable file beside peer (\(binaryDirectory)) or on PATH: \(hint)")
            }
            var agentLogger = logger
            agentLogger[metadataKey: "part"] = "agent"
            agent = Agent(configuration: AgentConfiguration(directory: settings.directory + "/agent", launcher: launcher, logger: agentLogger))
        } else {
            agent = nil
        }
        if me.routerAddress != nil {
            var routerLogger = logger
            routerLogger[metadataKey: "part"] = "router"
            // NGINX forks workers, which PR_SET_PDEATHSIG on the master would not reach: a guard
            // process stays its parent and takes the whole group down with the peer.
            let guarded = [exec, "--parent", "\(getpid())", "--guard", "--"]
            router = NginxRouter(
                nginxBinary: settings.config.router.nginx, prefix: settings.directory + "/router", launcher: guarded, logger: routerLogger,
                confirmTimeout: .milliseconds(settings.config.router.confirmTimeoutMs))
            do {
                stats = try StatsListener(logger: routerLogger)
            } catch {
                throw CLIError("router statistics: cannot listen on 127.0.0.1 UDP: \(error)")
            }
        } else {
            router = nil
            stats = nil
        }
        state.withLock { $0.trustSHA256 = Self.sha256Hex(ofFile: settings.caCertificatePath) }
    }

    var isEmpty: Bool { agent == nil && router == nil }

    /// The CA bundle's digest in the config NGINX runs (nil: no router, or no token checks).
    var routerTrustSHA256: String? { state.withLock { $0.lastSpec?.authCAVersion } }

    static func sha256Hex(ofFile path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// After a TLS reload: the router's token checks verify this peer's API certificate with the
    /// CA bundle, which NGINX reads only when it starts or reloads. Reads the bundle's digest
    /// again and, when it changed, makes the loop apply a config naming it (NGINX reloads), and
    /// waits up to `timeout` for that config to run. Returns the digest NGINX runs with (nil:
    /// no router, or no token checks), or why it does not run the new one.
    func reloadTrust(timeout: Duration = .seconds(15)) async -> Result<String?, CLIError> {
        guard router != nil else { return .success(nil) }
        let digest = Self.sha256Hex(ofFile: settings.caCertificatePath)
        let changed = state.withLock { s -> Bool in
            // Unchanged, and running (or nothing to run): done. A failed apply is tried again.
            let running = s.lastSpec.map { $0.authCAFile == nil || $0.authCAVersion == digest } ?? true
            guard s.trustSHA256 != digest || !running else { return false }
            s.trustSHA256 = digest
            s.handledRoutingIndex = .max  // the next turn builds and applies a spec
            s.retryAt = nil
            return true
        }
        if !changed { return .success(state.withLock { $0.lastSpec?.authCAVersion }) }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (spec, handled, error) = state.withLock { ($0.lastSpec, $0.handledRoutingIndex, $0.routerError) }
            if handled != .max {
                if let error { return .failure(CLIError("NGINX did not take the new CA bundle: \(error)")) }
                if spec?.authCAFile == nil || spec?.authCAVersion == digest { return .success(spec?.authCAVersion) }
            }
            try? await Task.sleep(for: .milliseconds(settings.pollMillis))
        }
        return .failure(CLIError("NGINX did not run a config with the new CA bundle within \(timeout)"))
    }

    func start() async throws {
        if let stats {
            do { try stats.start() } catch { throw CLIError("router statistics: \(error)") }
        }
        await agent?.start()
        if router != nil, geteuid() == 0 { try openPathForNginxWorkers() }
    }

    /// NGINX started by root runs its workers as `nobody`, and they write the token-check cache
    /// and temporary files under the router's prefix, inside this peer's data directory (0700).
    /// So this peer's directory and the closed ones above it become passable (0711: others may
    /// pass through, not list), and what sits in it that others must not read is made
    /// owner-only: the Raft database, the agent's directory (tenant files, component logs) and a
    /// provided instance's join files.
    func openPathForNginxWorkers() throws {
        let fm = FileManager.default
        // This peer's directory and the ones above it that are this user's and closed to others
        // (the data directory; a provider's instance directories), up to the first others may
        // pass already: never a directory of someone else's, never the root.
        var dir = settings.directory
        while dir != "/" && !dir.isEmpty {
            var st = stat()
            guard stat(dir, &st) == 0 else {
                throw CLIError("router: cannot look at \(dir) to make it passable for NGINX's workers: \(String(cString: strerror(errno)))")
            }
            if dir != settings.directory && (st.st_uid != geteuid() || st.st_mode & 0o001 != 0) { break }
            guard chmod(dir, (st.st_mode & 0o777) | 0o711) == 0 else {
                throw CLIError("router: cannot make \(dir) passable for NGINX's workers (chmod 0711): \(String(cString: strerror(errno)))")
            }
            dir = URL(fileURLWithPath: dir).deletingLastPathComponent().path
        }
        let entries = (try? fm.contentsOfDirectory(atPath: settings.directory)) ?? []
        for name in entries {
            let path = settings.directory + "/" + name
            let mode: mode_t = name.hasPrefix("raft.sqlite") ? 0o600 : (name == "agent" || name == "bootstrap" ? 0o700 : 0)
            if mode != 0, chmod(path, mode) != 0 {
                throw CLIError("router: cannot restrict \(path) to its owner (chmod \(String(mode, radix: 8))): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Until the task is cancelled. About once a second it also checks that NGINX still runs
    /// (a master that died, say OOM-killed, is restarted with the config it last confirmed).
    func run(node: PeerNode) async {
        var turns = 0
        while !Task.isCancelled {
            await turn(node: node)
            turns += 1
            if turns % max(1, 1_000 / settings.pollMillis) == 0 { await keepRouterRunning() }
            try? await Task.sleep(for: .milliseconds(settings.pollMillis))
        }
    }

    func keepRouterRunning() async {
        guard let router, state.withLock({ $0.lastSpec != nil }) else { return }
        do {
            try await router.ensureRunning()
        } catch {
            logger.error("router: NGINX is not running and could not be restarted: \(error)")
            state.withLock { $0.routerError = "\(error)" }
        }
    }

    func turn(node: PeerNode) async {
        guard let (applied, routing) = try? await node.read(linearizable: false, { ($0.appliedIndex, $0.routingChangeIndex) }) else { return }
        let s = state.withLock { $0 }
        if routing == s.liveRoutingIndex {
            state.withLock { $0.confirmedAppliedIndex = max($0.confirmedAppliedIndex, applied) }
        }
        if routing == s.handledRoutingIndex, s.routerError == nil { return }
        if let retryAt = s.retryAt, ContinuousClock.now < retryAt, routing == s.handledRoutingIndex { return }
        let selfID = "\(settings.selfID)"
        let config = settings.config
        guard let inputs = try? await node.read(linearizable: false, { state in RoutingInputs(state, selfID: selfID, config: config) }) else { return }
        let desired = desiredComponents(inputs)
        if let agent, desired != s.lastDesired {
            await agent.reconcile(desired)
        }
        state.withLock {
            $0.lastDesired = desired
            $0.neededHere = inputs.neededHere
            $0.handledRoutingIndex = inputs.routingIndex
        }
        guard let router else { return }
        let spec = routerSpec(inputs)
        if var previous = s.lastSpec, s.routerError == nil {
            previous.generation = spec.generation
            if previous == spec {
                // Same routing as what runs: that config serves this index too.
                state.withLock {
                    $0.liveRoutingIndex = inputs.routingIndex
                    $0.confirmedAppliedIndex = max($0.confirmedAppliedIndex, inputs.appliedIndex)
                }
                return
            }
        }
        do {
            let applied = try await router.apply(spec)
            logger.info(applied.configChanged ? "router config live" : "router routes live", metadata: [
                "generation": "\(applied.generation)", "tenants": "\(spec.tenants.count)", "upstreams": "\(spec.upstreams.count)",
                "started": "\(applied.started)", "config_changed": "\(applied.configChanged)",
                "route_changes": "\(applied.routeChanges)", "full_table": "\(applied.fullRouteTable)", "confirm_ms": "\(applied.confirmDuration.components.seconds * 1000 + applied.confirmDuration.components.attoseconds / 1_000_000_000_000_000)",
            ])
            state.withLock {
                $0.lastSpec = spec
                $0.liveRoutingIndex = inputs.routingIndex
                $0.confirmedAppliedIndex = max($0.confirmedAppliedIndex, inputs.appliedIndex)
                $0.routerError = nil
                $0.retryAt = nil
            }
        } catch {
            logger.error("router config of generation \(spec.generation) not applied: \(error)")
            state.withLock {
                $0.routerError = "\(error)"
                $0.retryAt = ContinuousClock.now + .milliseconds(settings.retryMillis)
            }
        }
    }

    func stop() async {
        await router?.stop()
        await agent?.stop()
        stats?.stop()
    }

    // MARK: - From the state to the agent's and the router's inputs

    func desiredComponents(_ inputs: RoutingInputs) -> DesiredComponents {
        guard let base = me.componentAddress else { return DesiredComponents() }
        var tenantsByComponent: [String: Set<String>] = [:]
        for (tenant, components) in inputs.neededHere {
            for c in components { tenantsByComponent[c, default: []].insert(tenant) }
        }
        var list: [DesiredComponent] = []
        for (name, tenants) in tenantsByComponent {
            guard let c = settings.config.component(named: name), let address = me.address(of: c) else {
                logger.error("tenants \(tenants.sorted().prefix(5)) need component \(name), which the config's components do not describe")
                continue
            }
            let fill: (String) -> String = { text in
                text.replacingOccurrences(of: "{instance}", with: "\(self.settings.selfID)")
                    .replacingOccurrences(of: "{component}", with: name)
                    .replacingOccurrences(of: "{host}", with: base.host)
                    .replacingOccurrences(of: "{port}", with: "\(address.port)")
            }
            let spec = ComponentSpec(
                name: name, command: resolve(c.command), arguments: c.args.map(fill), environment: c.env.mapValues(fill),
                port: Int(address.port), healthPath: c.healthPath, reloadSignal: Self.signal(named: c.reloadSignal),
                stopTimeout: .milliseconds(c.stopTimeoutMs))
            list.append(DesiredComponent(spec: spec, tenants: tenants))
        }
        return DesiredComponents(list)
    }

    /// An absolute path as is; a bare name beside the peer binary, else on PATH, else as given
    /// (the agent then reports the spawn failure).
    func resolve(_ command: String) -> String {
        let binaryDirectory = URL(fileURLWithPath: settings.peerBinary).deletingLastPathComponent().path
        return Self.executable(command, besideBinaryIn: binaryDirectory) ?? command
    }

    /// The executable a component's command names: an absolute path if it is executable, a bare
    /// name beside the peer binary, else on PATH; nil when none is.
    static func executable(_ command: String, besideBinaryIn directory: String) -> String? {
        if command.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: command) ? command : nil }
        let beside = directory + "/" + command
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(dir)/\(command)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func signal(named name: String) -> Int32 {
        switch name {
        case "USR1": return SIGUSR1
        case "USR2": return SIGUSR2
        default: return SIGHUP
        }
    }

    /// The router's spec for the applied state. Everything but `tenants` is a function of the
    /// config file alone (every peer's components, the plans' rates, the token check), so that
    /// a tenant change only changes the route table, never NGINX's config (ADR 0008).
    func routerSpec(_ inputs: RoutingInputs) -> RouterSpec {
        let config = settings.config
        let order = Dictionary(uniqueKeysWithValues: config.components.enumerated().map { ($0.element.name, $0.offset) })
        var upstreams: [Upstream] = []
        for (instance, base) in inputs.componentAddresses.sorted(by: { $0.key < $1.key }) {
            // The config and the state refuse names; one that got in anyway (an older state)
            // must not make the router refuse every route: its tenants stay unrouted.
            guard base.kind != .dnsName else {
                logger.error("instance \(instance): components address \(base) is not an IP address; its tenants are not routed")
                continue
            }
            for component in config.components {
                if let address = base.offset(by: component.portOffset) {
                    upstreams.append(Upstream(instance: instance, component: component.name, address: address.description))
                }
            }
        }
        let routable = Set(upstreams.map(\.name))
        let plans = config.catalog.services.flatMap(\.plans)
        var routes: [TenantRoute] = []
        for t in inputs.routed {
            let components = t.components.filter { order[$0] != nil }.sorted { order[$0]! < order[$1]! }
            guard !components.isEmpty,
                  components.allSatisfy({ routable.contains(NginxNames.upstream(instance: t.instance, component: $0)) }) else { continue }
            let plan = plans.first { $0.id == t.plan || $0.name == t.plan }
            routes.append(TenantRoute(
                id: t.id, instance: t.instance, components: components,
                requestsPerSecond: t.requestsPerSecond, connectionsMax: t.connectionsMax, requiresToken: plan?.userTokens ?? false))
        }
        let api = me.apiAddress
        let tokens = plans.contains(where: \.userTokens)
        var spec = RouterSpec(
            generation: inputs.routingIndex, listen: me.routerAddress!.description, controlListen: me.routerControlAddress!.description,
            prefix: settings.directory + "/router", workerProcesses: config.router.workerProcesses, domain: config.router.domain,
            upstreams: upstreams,
            tenants: routes.sorted { $0.id < $1.id },
            statsAddress: stats.map { "127.0.0.1:\($0.port)" },
            authURL: tokens ? "https://\(api.urlHost):\(api.port)" : nil,
            authCAFile: tokens ? settings.caCertificatePath : nil,
            // NGINX verifies DNS names only: a loopback API's certificate also names localhost.
            authServerName: api.isLoopback ? "localhost" : (api.kind == .dnsName ? api.host : nil),
            authCacheSeconds: config.router.authCacheSeconds)
        if tokens { spec.authCAVersion = state.withLock { $0.trustSHA256 } }
        spec.clientKeepaliveSeconds = config.router.clientKeepaliveSeconds
        spec.controlTimeoutMs = config.limits.routerControl.timeoutMs
        spec.routeTableMiB = config.router.routeTableMiB
        // The plans' values (within the renderer's bound on distinct values): a tenant of any
        // plan then fits the config's limit zones.
        spec.requestRates = Array(Set(plans.map { UInt32(clamping: $0.requestsPerSecond) }).subtracting([0]).sorted().prefix(RouterLimits.distinctRequestRatesMax))
        spec.connectionLimits = Array(Set(plans.map { UInt32(clamping: $0.connectionsMax) }).subtracting([0]).sorted().prefix(RouterLimits.distinctConnectionLimitsMax))
        return spec
    }

    // MARK: - The report (`GET /v1/dataplane`, `peer status`)

    func report() -> DataPlaneReport {
        let s = state.withLock { $0 }
        let statuses = agent?.status() ?? []
        let ready = agent?.readyTenants() ?? [:]
        let servingTenants = s.neededHere.compactMap { tenant, components -> String? in
            components.allSatisfy { ready[$0]?.contains(tenant) == true } ? tenant : nil
        }.sorted()
        var load: LoadReport?
        if let stats {
            let snap = stats.snapshot()
            let window = max(snap.windowSeconds, 1)
            let errors = Double(snap.tenants.reduce(0) { $0 + $1.status5xx }) / window
            load = LoadReport(
                windowSeconds: Int(snap.windowSeconds), requestsPerSecond: Double(snap.requests) / window, errorsPerSecond: errors,
                upstreamP99Ms: snap.instances.compactMap(\.upstreamP99Ms).max().map(Double.init),
                topTenants: snap.tenants.prefix(LoadReport.topTenantsMax).map {
                    TenantLoad(tenant: $0.tenant, requestsPerSecond: $0.requestsPerSecond, errorsPerSecond: Double($0.status5xx) / window,
                               upstreamP50Ms: $0.upstreamP50Ms.map(Double.init), upstreamP99Ms: $0.upstreamP99Ms.map(Double.init))
                },
                invalidDatagrams: snap.invalidDatagramsTotal,
                instances: snap.instances.prefix(LoadReport.instancesMax).map {
                    InstanceLoad(instance: $0.instance, requestsPerSecond: $0.requestsPerSecond, errorsPerSecond: Double($0.status5xx) / window,
                                 upstreamP99Ms: $0.upstreamP99Ms.map(Double.init))
                })
        }
        return DataPlaneReport(
            routerURL: me.routerAddress.map { "http://\($0.isUnspecified ? "127.0.0.1" : $0.urlHost):\($0.port)" },
            routerConfirmedIndex: router == nil || s.liveRoutingIndex == 0 ? nil : s.confirmedAppliedIndex,
            routerError: s.routerError, supervised: agent != nil, servingTenants: servingTenants,
            servingAsOfIndex: s.handledRoutingIndex == 0 ? nil : s.handledRoutingIndex,
            components: statuses.map {
                ComponentReport(name: $0.name, pid: $0.pid, state: Self.stateName($0.state), restarts: $0.restarts, lastExit: $0.lastExit,
                                cpuPermille: $0.cpuPermille, rssBytes: $0.rssBytes, tenants: $0.tenants)
            },
            load: load)
    }

    static func stateName(_ s: ComponentState) -> String {
        switch s {
        case .backingOff: return "backingOff"
        case .invalid: return "invalid"
        default: return s.description
        }
    }
}

/// What the data plane needs of the applied state, copied out in one read.
struct RoutingInputs: Sendable {
    struct Routed: Sendable {
        var id: String
        var instance: String
        var plan: String
        var components: [String]
        var requestsPerSecond: UInt32
        var connectionsMax: UInt32
    }

    var appliedIndex: UInt64
    var routingIndex: UInt64
    /// Tenants with an active placement, wherever it is: every router routes them.
    var routed: [Routed]
    /// Tenants placed on this instance in any phase (preparing, active, draining) and the
    /// components they need: this agent runs them.
    var neededHere: [String: [String]]
    /// Where each instance's components listen (base address): the config file's for its own
    /// peers (the file is the truth of where they listen, as in `MemberDirectory`: a cluster
    /// restored from another's snapshot keeps the old instances' addresses in its state), the
    /// replicated state's for instances added at run time.
    var componentAddresses: [String: HostPort]

    init(_ state: ClusterState, selfID: String, config: ClusterConfig) {
        appliedIndex = state.appliedIndex
        routingIndex = state.routingChangeIndex
        routed = []
        neededHere = [:]
        componentAddresses = [:]
        // Upstreams are route-table entries (NginxRoutes: instance/component@address), so an
        // instance added or removed never reloads NGINX. A removed one's are kept: no tenant
        // routes there any more.
        for i in state.allInstances {
            if let base = HostPort(i.componentsAddress) { componentAddresses[i.id] = base }
        }
        for p in config.peers { if let base = p.componentAddress { componentAddresses["\(p.id)"] = base } }
        for placement in state.placements(onInstance: selfID) {
            if let t = state.tenant(placement.tenantID) { neededHere[t.id] = t.components }
        }
        for t in state.allTenants {
            guard let instance = state.activeInstance(ofTenant: t.id) else { continue }
            routed.append(Routed(id: t.id, instance: instance, plan: t.plan, components: t.components,
                                 requestsPerSecond: t.quotas.requestsPerSecond, connectionsMax: t.quotas.connectionsMax))
        }
    }
}
