import FerryCrypto

/// What an agent signs for each request on an upload resource (SPEC §9.10):
/// the resource, the envelope's full length and digest, and the agent's time.
public enum UploadAuth {
    public static func message(agent: String, upload: String, length: UInt64, digest: String, timeMs: UInt64)
        -> [UInt8]
    {
        Array("ferry/upload/v1\n\(agent)\n\(upload)\n\(length)\n\(digest)\n\(timeMs)".utf8)
    }
}

/// The headers of a request on `/v1/uploads/{id}` (SPEC §9.10), parsed and
/// bounded; nothing in it is authenticated yet. The names follow the IETF
/// "Resumable Uploads for HTTP" draft (`Upload-Offset`, `Upload-Length`,
/// `Upload-Complete`); the digest and signature are Ferry's.
public struct UploadRequestV1: Sendable, Equatable {
    /// The resource: the change set's id, 32 lower-case hex digits.
    public var upload: String
    public var agentID: String
    public var timeMs: UInt64
    public var signature: [UInt8]
    /// `Upload-Length`: the envelope's full size in bytes.
    public var length: UInt64
    /// `X-Ferry-Digest`: BLAKE2b-256 of the whole envelope, 64 hex digits.
    public var digest: String
    /// `Upload-Offset`: where this request's body starts (0 on creation).
    public var offset: UInt64?
    /// `Upload-Complete: ?1`: this request's body ends the envelope.
    public var complete: Bool

    /// The header names (lower case, as the hub reads them).
    public static let offsetHeader = "upload-offset"
    public static let lengthHeader = "upload-length"
    public static let completeHeader = "upload-complete"
    public static let digestHeader = "x-ferry-digest"

    /// Parses and bounds the headers of an upload request.
    /// - Parameters:
    ///   - upload: the `{id}` path component.
    ///   - headers: header values by lower-case name.
    ///   - maxLength: the largest envelope the hub takes (SPEC §3.2).
    /// - Throws: ``RequestError`` `bad_request` naming what is missing or malformed.
    public static func parse(upload: String, headers: [String: String], maxLength: Int) throws(RequestError)
        -> UploadRequestV1
    {
        guard upload.utf8.count == 32, upload.utf8.allSatisfy(Self.isLowerHex) else {
            throw RequestError(.badRequest, "an upload is named by its change set's id: 32 lower-case hex digits")
        }
        guard let agent = headers["x-ferry-agent"], !agent.isEmpty,
            agent.utf8.count <= PullRequestV1.maxAgentIDBytes
        else {
            throw RequestError(
                .badRequest, "X-Ferry-Agent must be an agent id of 1 to \(PullRequestV1.maxAgentIDBytes) bytes")
        }
        guard let time = headers["x-ferry-time"].flatMap(PullRequestV1.decimal) else {
            throw RequestError(.badRequest, "X-Ferry-Time must be Unix milliseconds, a whole number")
        }
        guard let sig = headers["x-ferry-signature"].flatMap(unhex), sig.count == 64 else {
            throw RequestError(.badRequest, "X-Ferry-Signature must be 128 hex digits (an Ed25519 signature)")
        }
        // Lengths and offsets from outside are checked against the hub's bound
        // before anything is allocated or compared (hostile input, SPEC §3.2).
        guard let length = headers[lengthHeader].flatMap(PullRequestV1.decimal), length >= 1,
            length <= UInt64(max(0, maxLength))
        else {
            throw RequestError(.badRequest, "Upload-Length must be a whole number from 1 to \(maxLength)")
        }
        guard let digest = headers[digestHeader], digest.utf8.count == 64, digest.utf8.allSatisfy(Self.isLowerHex)
        else {
            throw RequestError(.badRequest, "X-Ferry-Digest must be 64 lower-case hex digits (BLAKE2b-256)")
        }
        var offset: UInt64?
        if let text = headers[offsetHeader] {
            guard let o = PullRequestV1.decimal(text), o <= length else {
                throw RequestError(.badRequest, "Upload-Offset must be a whole number from 0 to Upload-Length")
            }
            offset = o
        }
        let complete: Bool
        switch headers[completeHeader] {
        case "?1": complete = true
        case "?0", nil: complete = false
        default: throw RequestError(.badRequest, "Upload-Complete must be ?1 or ?0")
        }
        return UploadRequestV1(
            upload: upload, agentID: agent, timeMs: time, signature: sig, length: length, digest: digest,
            offset: offset, complete: complete)
    }

    static func isLowerHex(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) }

    /// The message the signature covers.
    public var signedMessage: [UInt8] {
        UploadAuth.message(agent: agentID, upload: upload, length: length, digest: digest, timeMs: timeMs)
    }
}
