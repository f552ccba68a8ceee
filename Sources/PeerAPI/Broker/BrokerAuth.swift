import Foundation
import Hummingbird

/// OSB headers (spec §Headers).
enum OSBHeader {
    static let version = HTTPField.Name("X-Broker-API-Version")!
    static let originatingIdentity = HTTPField.Name("X-Broker-API-Originating-Identity")!
    static let requestIdentity = HTTPField.Name("X-Broker-API-Request-Identity")!
    static let retryAfter = HTTPField.Name("Retry-After")!
    static let wwwAuthenticate = HTTPField.Name("WWW-Authenticate")!
    static let forwardedBy = HTTPField.Name("X-Peer-Forwarded-By")!
    static let allow = HTTPField.Name("Allow")!
}

/// The API versions this broker speaks: 2.14 and every later 2.x (docs/broker.md §Versions).
/// Everything it reads and writes means the same from 2.14 on; 2.17 is what it is tested with.
enum BrokerAPIVersion {
    static let major = 2
    static let minorMin = 14
    static let current = "2.17"

    static func isSupported(_ header: String) -> Bool {
        let parts = header.trimmingCharacters(in: .whitespaces).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let major = Int(parts[0]), let minor = Int(parts[1]),
              parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) })
        else { return false }
        return major == Self.major && minor >= minorMin
    }
}

/// The `/v2` group's gate: OSB basic auth (401), then the API version header (400 missing, 412
/// unsupported). It echoes `X-Broker-API-Request-Identity` on every answer, refusals included.
/// The admin API's certificate and token are not accepted here, and the broker's credentials
/// are not accepted on `/v1`.
struct BrokerMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext
    let username: String
    let password: PasswordVerifier

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await admit(request, context: context, next: next)
        if let identity = request.headers[OSBHeader.requestIdentity], Self.isEchoable(identity) {
            response.headers[OSBHeader.requestIdentity] = identity
        }
        return response
    }

    private func admit(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard authenticated(request.headers[.authorization]) else {
            var response = OSBReply(.unauthorized, error: "Unauthorized", "HTTP basic authentication with the broker credentials is required (`peer broker credentials`)").response
            response.headers[OSBHeader.wwwAuthenticate] = "Basic realm=\"peer broker\", charset=\"UTF-8\""
            return response
        }
        guard let version = request.headers[OSBHeader.version] else {
            return OSBReply(.badRequest, error: "BadRequest", "the X-Broker-API-Version header is required (this broker speaks \(BrokerAPIVersion.major).\(BrokerAPIVersion.minorMin) to \(BrokerAPIVersion.major).x; use \(BrokerAPIVersion.current))").response
        }
        guard BrokerAPIVersion.isSupported(version) else {
            return OSBReply(.preconditionFailed, error: "PreconditionFailed", "X-Broker-API-Version \(Self.printable(version)) is not supported; this broker speaks \(BrokerAPIVersion.major).\(BrokerAPIVersion.minorMin) and later \(BrokerAPIVersion.major).x versions: use \(BrokerAPIVersion.current)").response
        }
        return try await next(request, context)
    }

    /// `Authorization: Basic base64(user:password)`. The user compares in constant time over its
    /// bytes and the password through its salted hash; neither is ever logged.
    func authenticated(_ header: String?) -> Bool {
        guard let header, header.count < 4096 else { return false }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let decoded = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
              let text = String(data: decoded, encoding: .utf8),
              let colon = text.firstIndex(of: ":")
        else { return false }
        let user = Array(text[..<colon].utf8)
        let expected = Array(username.utf8)
        var diff: UInt8 = user.count == expected.count ? 0 : 1
        for i in 0..<expected.count { diff |= expected[i] ^ (i < user.count ? user[i] : 0) }
        let passwordOK = password.matches(String(text[text.index(after: colon)...]))
        return diff == 0 && passwordOK
    }

    static func isEchoable(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= OSBLimits.requestIdentityBytesMax && value.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }
    }

    static func printable(_ value: String) -> String {
        "'" + String(value.unicodeScalars.prefix(40).map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" }) + "'"
    }
}
