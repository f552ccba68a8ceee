import ClusterModel
import Hummingbird
import NIOCore
import PeerNode

/// `GET /v1/auth/tenant/{tenant}` with `Authorization: Bearer <user token>`: the check the
/// router's `auth_request` makes before it passes a tenant user's request on (docs/api.md).
/// Answered by every peer from its own applied state (no leader round trip, so the data plane
/// keeps working while there is no leader): the token's SHA-256 is one dictionary lookup.
///
/// - 204: a binding of this tenant holds the token (and the tenant is not being deprovisioned);
/// - 401 (`WWW-Authenticate: Bearer`): no bearer token, or one no binding holds (never issued,
///   or revoked by unbind);
/// - 403: the token is valid but for another tenant, or the tenant is being deprovisioned.
///
/// It takes no admin credentials: the token itself is the credential, and 256 random bits do
/// not yield to guessing. No body, no token and no hash is ever logged.
struct TokenCheck {
    let node: PeerNode

    static let tokenBytesMax = 512

    func addRoutes(to router: Router<AdminRequestContext>) {
        router.group("v1/auth").get("tenant/:tenant") { request, context in
            await self.check(tenant: context.parameters.get("tenant") ?? "", authorization: request.headers[.authorization])
        }
    }

    func check(tenant: String, authorization: String?) async -> Response {
        // RFC 9110 §11.1: the scheme name is case-insensitive.
        guard let header = authorization, header.utf8.count <= Self.tokenBytesMax + 7, header.lowercased().hasPrefix("bearer ") else {
            return Self.answer(.unauthorized)
        }
        let token = header.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty else { return Self.answer(.unauthorized) }
        let hash = TokenHash.sha256Hex(of: Array(token.utf8))
        let verdict: HTTPResponse.Status
        do {
            verdict = try await node.read(linearizable: false) { state in
                guard let binding = state.binding(forTokenSHA256Hex: hash) else { return .unauthorized }
                guard binding.tenantID == tenant, let owner = state.tenant(tenant), owner.state != .deprovisioning else { return .forbidden }
                return .noContent
            }
        } catch {
            return Self.answer(.serviceUnavailable)
        }
        return Self.answer(verdict)
    }

    static func answer(_ status: HTTPResponse.Status) -> Response {
        var headers = HTTPFields()
        if status == .unauthorized { headers[HTTPField.Name("WWW-Authenticate")!] = "Bearer realm=\"tenant\"" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer()))
    }
}
