import FerryCrypto
import Foundation

/// Why an HTTP request's parameters were refused before any work (SPEC §9.2, §9.4).
public struct RequestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The refusal kinds; stable strings for the JSON error `code`.
    public enum Code: String, Sendable, Equatable, CaseIterable {
        case badRequest = "bad_request"
        case badToken = "bad_token"
    }

    public let code: Code
    /// What is wrong and what to do, for a person.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// The parameters of a signed pull, `GET /v1/changes` (SPEC §9.4), parsed and
/// bounded; nothing in it is authenticated yet.
public struct PullRequestV1: Sendable, Equatable {
    /// `X-Ferry-Agent`.
    public var agentID: String
    /// `since`: the agent's hub cursor.
    public var since: UInt64
    /// `max_bytes` as the agent sent (and signed) it; nil when absent.
    public var maxBytes: UInt64?
    /// `X-Ferry-Time`: the agent's clock, Unix ms.
    public var timeMs: UInt64
    /// `X-Ferry-Signature`, 64 bytes.
    public var signature: [UInt8]

    /// Longest agent id accepted; ids the hub issues are far shorter.
    public static let maxAgentIDBytes = 128

    public init(agentID: String, since: UInt64, maxBytes: UInt64?, timeMs: UInt64, signature: [UInt8]) {
        self.agentID = agentID
        self.since = since
        self.maxBytes = maxBytes
        self.timeMs = timeMs
        self.signature = signature
    }

    /// Parses a pull's query parameters and headers.
    /// - Parameters:
    ///   - query: decoded query parameters (`since`, `max_bytes`).
    ///   - headers: header values by lower-case name (`x-ferry-agent`, `x-ferry-time`, `x-ferry-signature`).
    /// - Throws: ``RequestError`` `bad_request` naming the missing or malformed parameter.
    public static func parse(query: [String: String], headers: [String: String]) throws(RequestError) -> PullRequestV1 {
        guard let sinceText = query["since"] else {
            throw RequestError(
                .badRequest, "a pull needs since, X-Ferry-Agent, X-Ferry-Time and X-Ferry-Signature")
        }
        let signed = try SignedAgentHeaders.parse(headers, what: "a pull needs since,")
        // SPEC §9.4: numbers are decimal ASCII in the 64-bit ranges the signature covers.
        guard let since = decimal(sinceText) else {
            throw RequestError(.badRequest, "since must be a whole number from 0 to \(UInt64.max)")
        }
        var maxBytes: UInt64?
        if let text = query["max_bytes"] {
            // Any 64-bit value is read as sent, so the hub checks the signature over
            // the number the agent signed and then applies its own bounds; anything
            // else is refused, never replaced by a default.
            guard let b = decimal(text) else {
                throw RequestError(.badRequest, "max_bytes must be a whole number from 0 to \(UInt64.max)")
            }
            maxBytes = b
        }
        return PullRequestV1(
            agentID: signed.agentID, since: since, maxBytes: maxBytes, timeMs: signed.timeMs,
            signature: signed.signature)
    }

    /// Decimal ASCII digits only (no sign, no spaces), within UInt64.
    static func decimal(_ text: String) -> UInt64? {
        guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        return UInt64(text)
    }
}

/// The headers every signed agent request carries (SPEC §9.4, §9.13):
/// `X-Ferry-Agent`, `X-Ferry-Time` and `X-Ferry-Signature`, parsed and
/// bounded; nothing in them is authenticated yet.
public struct SignedAgentHeaders: Sendable, Equatable {
    public var agentID: String
    /// The agent's clock, Unix ms.
    public var timeMs: UInt64
    /// 64 bytes.
    public var signature: [UInt8]

    /// - Parameters:
    ///   - headers: header values by lower-case name.
    ///   - what: how the refusal naming missing headers starts, e.g. "a pull needs since,".
    /// - Throws: ``RequestError`` `bad_request` naming the missing or malformed header.
    public static func parse(_ headers: [String: String], what: String) throws(RequestError) -> SignedAgentHeaders {
        guard let agent = headers["x-ferry-agent"], let timeText = headers["x-ferry-time"],
            let sigText = headers["x-ferry-signature"]
        else {
            throw RequestError(.badRequest, "\(what) X-Ferry-Agent, X-Ferry-Time and X-Ferry-Signature")
        }
        guard let time = PullRequestV1.decimal(timeText) else {
            throw RequestError(.badRequest, "X-Ferry-Time must be Unix milliseconds, a whole number")
        }
        guard !agent.isEmpty, agent.utf8.count <= PullRequestV1.maxAgentIDBytes else {
            throw RequestError(
                .badRequest, "X-Ferry-Agent must be an agent id of 1 to \(PullRequestV1.maxAgentIDBytes) bytes")
        }
        guard let sig = unhex(sigText), sig.count == 64 else {
            throw RequestError(.badRequest, "X-Ferry-Signature must be 128 hex digits (an Ed25519 signature)")
        }
        return SignedAgentHeaders(agentID: agent, timeMs: time, signature: sig)
    }
}

extension EnrollRequest {
    /// An enrollment request whose JSON, token and keys parsed.
    public struct Parsed: Sendable {
        public var token: EnrollmentToken
        public var signKey: SigningPublicKey
        public var kxKey: KXPublicKey
        /// At most 128 characters (SPEC §9.2).
        public var hostname: String
    }

    /// Parses the body of `POST /v1/enroll` (SPEC §9.2). The token's
    /// fingerprint is not compared here: that needs the hub's keys.
    /// - Throws: ``RequestError`` `bad_request` (JSON, keys) or `bad_token` (malformed token).
    public static func parse(_ body: [UInt8]) throws(RequestError) -> Parsed {
        let req: EnrollRequest
        do {
            req = try HubJSON.decoder.decode(EnrollRequest.self, from: Data(body))
        } catch {
            throw RequestError(
                .badRequest,
                "the enrollment request is not valid JSON with token, sign_public_key, kx_public_key, hostname")
        }
        guard let token = EnrollmentToken(req.token) else {
            throw RequestError(
                .badToken, "the token is malformed: copy it exactly as `ferry hub token` printed it")
        }
        guard let s = unhex(req.signPublicKey), let k = unhex(req.kxPublicKey) else {
            throw RequestError(.badRequest, "public keys must be hex")
        }
        do {
            return Parsed(
                token: token, signKey: try SigningPublicKey(bytes: s), kxKey: try KXPublicKey(bytes: k),
                hostname: String(req.hostname.prefix(128)))
        } catch {
            throw RequestError(.badRequest, "\(error)")
        }
    }
}
