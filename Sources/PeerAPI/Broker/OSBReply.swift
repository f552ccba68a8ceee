import Foundation
import Hummingbird
import NIOCore

/// One answer of the broker: a status, a JSON object body and the optional `Retry-After`.
/// Thrown as an error to end a handler early (a 400 from deep in validation), returned otherwise.
struct OSBReply: Error, Sendable {
    var status: HTTPResponse.Status
    var body: [String: JSONValue]
    var retryAfterSeconds: Int?

    init(_ status: HTTPResponse.Status, _ body: [String: JSONValue] = [:], retryAfterSeconds: Int? = nil) {
        self.status = status
        self.body = body
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// An OSB error body (spec §Service Broker Errors): `error` a camel-case word, `description`
    /// for people.
    init(_ status: HTTPResponse.Status, error: String?, _ description: String) {
        var body: [String: JSONValue] = ["description": .string(description)]
        if let error { body["error"] = .string(error) }
        self.init(status, body)
    }

    static func badRequest(_ description: String) -> OSBReply { OSBReply(.badRequest, error: "BadRequest", description) }

    static func asyncRequired(_ what: String) -> OSBReply {
        OSBReply(.unprocessableContent, error: "AsyncRequired", "\(what) is asynchronous: this broker requires clients to accept it (?accepts_incomplete=true)")
    }

    static func concurrency(_ description: String) -> OSBReply {
        OSBReply(.unprocessableContent, error: "ConcurrencyError", description)
    }

    static func unavailable(_ description: String) -> OSBReply {
        OSBReply(.serviceUnavailable, error: "Unavailable", description + "; retry")
    }

    var response: Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(JSONValue.object(body))) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let retryAfterSeconds { headers[OSBHeader.retryAfter] = String(retryAfterSeconds) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// swift-http-types' `HTTPField`, reached through the `HTTPFields` that Hummingbird re-exports
/// (so this target needs no direct dependency on the package).
typealias HTTPField = HTTPFields.Element
