/// How to run one component (`dfx-dev`, `dfx-dep`, `dfc`, ...) on this instance.
///
/// The peer builds it from the cluster configuration with every placeholder already
/// substituted, except `{tenantFile}`: the agent replaces that literal in `arguments` with the
/// component's tenant file path, and also passes the path as the environment variable
/// `PEER_TENANT_FILE` (see ``AgentLimits/tenantFileEnvironmentKey``).
///
/// The component contract (what the agent expects from the program it runs):
/// - it listens on `127.0.0.1:<port>` and answers `GET <healthPath>` with a 2xx status while
///   it is healthy;
/// - the same request with the header `X-Tenant-ID: <tenant>` answers 2xx only once the
///   component serves that tenant (it has read a tenant file listing it), and a non-2xx status
///   otherwise;
/// - on `reloadSignal` it re-reads its tenant file (one tenant id per line) without exiting;
/// - on SIGTERM it finishes its requests in flight and exits.
public struct ComponentSpec: Sendable, Hashable {
    /// The component's name, unique on this instance; also the stem of its tenant, log and
    /// state file names, hence limited to `a-z A-Z 0-9 - _ .` (1...64 bytes, no leading dot).
    public var name: String
    /// Absolute path of the program to run.
    public var command: String
    /// Arguments after the program (not including argv[0]); `{tenantFile}` is substituted.
    public var arguments: [String]
    /// Added to the peer's own environment (these win); `PEER_TENANT_FILE` is set last.
    public var environment: [String: String]
    /// The loopback TCP port the component listens on, 1...65535.
    public var port: Int
    /// The HTTP path of the health check, e.g. `/healthz`; starts with `/`.
    public var healthPath: String
    /// The signal that makes the component re-read its tenant file, e.g. SIGHUP.
    public var reloadSignal: Int32
    /// How long a stop waits after SIGTERM before it sends SIGKILL to the process group.
    public var stopTimeout: Duration

    public init(
        name: String, command: String, arguments: [String] = [], environment: [String: String] = [:],
        port: Int, healthPath: String = "/healthz", reloadSignal: Int32 = 1, stopTimeout: Duration = .seconds(10)
    ) {
        self.name = name
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.port = port
        self.healthPath = healthPath
        self.reloadSignal = reloadSignal
        self.stopTimeout = stopTimeout
    }

    /// True when going from `self` to `other` needs a new process: what the process was
    /// started with differs. Health path, reload signal and stop timeout change in place.
    func needsRestart(toBecome other: ComponentSpec) -> Bool {
        command != other.command || arguments != other.arguments
            || environment != other.environment || port != other.port
    }
}

/// One component that must run on this instance and the tenants it must serve.
public struct DesiredComponent: Sendable, Hashable {
    public var spec: ComponentSpec
    /// Tenant ids (DNS labels, see ``AgentLimits/tenantIdBytesMax``).
    public var tenants: Set<String>

    public init(spec: ComponentSpec, tenants: Set<String>) {
        self.spec = spec
        self.tenants = tenants
    }
}

/// Every component that must run on this instance, keyed by component name (the key must
/// equal `spec.name`). A component absent from it is stopped.
public struct DesiredComponents: Sendable, Hashable {
    public var components: [String: DesiredComponent]

    public init(components: [String: DesiredComponent] = [:]) {
        self.components = components
    }

    /// Builds the map from a list, keyed by each spec's name.
    public init(_ list: [DesiredComponent]) {
        var components: [String: DesiredComponent] = [:]
        for entry in list { components[entry.spec.name] = entry }
        self.components = components
    }
}

/// The bounds the agent enforces on what it is asked to run (TigerStyle: a limit on
/// everything, unit last).
public enum AgentLimits {
    /// Components one agent runs at most; extra ones (by name order) are rejected.
    public static let componentsMax = 64
    /// Tenants one component's tenant file lists at most (the cluster's tenant limit).
    public static let tenantsPerComponentMax = 250_000
    /// A tenant id is a DNS label (ClusterModel's rule): 1...63 bytes of a-z, 0-9, '-'.
    public static let tenantIdBytesMax = 63
    public static let componentNameBytesMax = 64
    public static let argumentsMax = 256
    public static let argumentBytesMax = 4096
    public static let environmentEntriesMax = 256
    public static let environmentValueBytesMax = 4096
    public static let healthPathBytesMax = 1024
    public static let stopTimeoutMax: Duration = .seconds(600)
    /// The environment variable naming the component's tenant file.
    public static let tenantFileEnvironmentKey = "PEER_TENANT_FILE"
    /// The literal in `arguments` replaced by the tenant file path.
    public static let tenantFilePlaceholder = "{tenantFile}"
}

/// Why a desired component was refused; shown in ``ComponentState/invalid(_:)``.
public struct ComponentSpecError: Error, Sendable, Hashable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension DesiredComponent {
    /// Checks every field against ``AgentLimits`` and the shapes the agent relies on (a file
    /// name, an HTTP request line and header, a signal number).
    func validate(key: String) throws(ComponentSpecError) {
        guard key == spec.name else {
            throw ComponentSpecError("component key \(quoted(key)) differs from its spec name \(quoted(spec.name))")
        }
        try Self.validateName(spec.name)
        guard spec.command.hasPrefix("/"), !spec.command.contains("\0"), spec.command.utf8.count <= AgentLimits.argumentBytesMax else {
            throw ComponentSpecError("\(spec.name): command must be an absolute path, got \(quoted(spec.command))")
        }
        guard spec.arguments.count <= AgentLimits.argumentsMax else {
            throw ComponentSpecError("\(spec.name): \(spec.arguments.count) arguments, max \(AgentLimits.argumentsMax)")
        }
        for argument in spec.arguments where argument.contains("\0") || argument.utf8.count > AgentLimits.argumentBytesMax {
            throw ComponentSpecError("\(spec.name): an argument holds NUL or exceeds \(AgentLimits.argumentBytesMax) bytes")
        }
        try validateEnvironment()
        guard (1...65535).contains(spec.port) else {
            throw ComponentSpecError("\(spec.name): port must be 1...65535, got \(spec.port)")
        }
        let path = spec.healthPath.utf8
        guard path.first == UInt8(ascii: "/"), path.count <= AgentLimits.healthPathBytesMax,
              path.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else {
            throw ComponentSpecError("\(spec.name): healthPath must start with '/' and hold printable ASCII without spaces, at most \(AgentLimits.healthPathBytesMax) bytes")
        }
        guard (1...64).contains(spec.reloadSignal), spec.reloadSignal != SIGKILL_NUMBER, spec.reloadSignal != SIGSTOP_NUMBER else {
            throw ComponentSpecError("\(spec.name): reloadSignal must be a catchable signal 1...64, got \(spec.reloadSignal)")
        }
        guard spec.stopTimeout > .zero, spec.stopTimeout <= AgentLimits.stopTimeoutMax else {
            throw ComponentSpecError("\(spec.name): stopTimeout must be in (0, \(AgentLimits.stopTimeoutMax)], got \(spec.stopTimeout)")
        }
        guard tenants.count <= AgentLimits.tenantsPerComponentMax else {
            throw ComponentSpecError("\(spec.name): \(tenants.count) tenants, max \(AgentLimits.tenantsPerComponentMax)")
        }
        for tenant in tenants where !Self.isTenantId(tenant) {
            throw ComponentSpecError("\(spec.name): tenant id \(quoted(tenant)) is not a DNS label (a-z, 0-9, '-', 1...\(AgentLimits.tenantIdBytesMax) bytes)")
        }
    }

    private func validateEnvironment() throws(ComponentSpecError) {
        guard spec.environment.count <= AgentLimits.environmentEntriesMax else {
            throw ComponentSpecError("\(spec.name): \(spec.environment.count) environment entries, max \(AgentLimits.environmentEntriesMax)")
        }
        for (key, value) in spec.environment {
            guard !key.isEmpty, !key.contains("="), !key.contains("\0"), key.utf8.count <= AgentLimits.argumentBytesMax else {
                throw ComponentSpecError("\(spec.name): environment key \(quoted(key)) is empty or holds '=' or NUL")
            }
            guard !value.contains("\0"), value.utf8.count <= AgentLimits.environmentValueBytesMax else {
                throw ComponentSpecError("\(spec.name): environment value of \(key) holds NUL or exceeds \(AgentLimits.environmentValueBytesMax) bytes")
            }
        }
    }

    static func validateName(_ name: String) throws(ComponentSpecError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= AgentLimits.componentNameBytesMax, bytes[0] != UInt8(ascii: "."),
              bytes.allSatisfy({ isNameByte($0) })
        else {
            throw ComponentSpecError("component name \(quoted(name)) must be 1...\(AgentLimits.componentNameBytesMax) bytes of a-z, A-Z, 0-9, '-', '_', '.', not starting with '.'")
        }
    }

    static func isTenantId(_ value: String) -> Bool {
        let bytes = Array(value.utf8)
        guard !bytes.isEmpty, bytes.count <= AgentLimits.tenantIdBytesMax,
              bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-")
        else { return false }
        return bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
            || byte == 0x2D || byte == 0x5F || byte == 0x2E
    }
}

/// Linux signal numbers the validation refuses as reload signals (uncatchable).
let SIGKILL_NUMBER: Int32 = 9
let SIGSTOP_NUMBER: Int32 = 19

/// A value in quotes with control characters escaped, for error messages.
func quoted(_ value: String) -> String {
    let limited = value.count > 80 ? String(value.prefix(80)) + "..." : value
    return "\"" + limited.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined() + "\""
}
