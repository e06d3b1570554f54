import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

/// Resumable uploads (SPEC §9.10): the checks every request on an upload
/// resource gets, and the ingest of a complete envelope through the same
/// pipeline as `POST /v1/changesets`.
extension HubService {
    /// How far an upload request's `X-Ferry-Time` may be from the hub's clock.
    static let uploadWindowMs: UInt64 = 600_000

    /// Checks the agent, its signature and its time; nil when the request may proceed.
    public func authorizeUpload(_ r: UploadRequestV1) -> HubReply? {
        do {
            if case .failure(let f) = try signedAgent(
                r.agentID, signature: r.signature, message: r.signedMessage, what: "upload request")
            {
                return uploadRefusedFrom(r.agentID, f.status, f.code, f.message)
            }
            // A signed request can be replayed only within the window, and then only
            // onto the same bytes (length and digest are signed).
            let now = store.nowMillis()
            let gap = now >= r.timeMs ? now - r.timeMs : r.timeMs - now
            guard gap <= Self.uploadWindowMs else {
                return .error(
                    400, code: "clock_skew",
                    "the upload request's time is \(gap / 1000) s from the hub's clock: set the PC's date and time")
            }
            return nil
        } catch {
            return refused(error)
        }
    }

    /// A refused upload request, counted and logged as every change-set refusal
    /// is (`ferry_changesets_refused_total`, "change set refused" naming the agent).
    func uploadRefusedFrom(_ agent: String, _ status: Int, _ code: String, _ message: String) -> HubReply {
        metrics.add("ferry_changesets_refused_total", "code=\"\(code)\"")
        logger.warning(
            "change set refused",
            metadata: ["ferry.code": "\(code)", "ferry.agent": "\(agent)", "ferry.reason": "\(message)"])
        return .error(status, code: code, message)
    }

    /// The reply for a refusal of the partial-upload store.
    public func uploadRefused(_ e: PartialUploads.Refusal, offset: Int? = nil) -> HubReply {
        var r: HubReply
        switch e {
        case .notFound:
            r = .error(404, code: "upload_not_found", "no upload in progress here: start it again from offset 0")
        case .wrongAgent:
            r = .error(403, code: "scope", "this upload belongs to another agent")
        case .mismatch(let why):
            r = .error(400, code: "upload_mismatch", "\(why); the upload was dropped, start it again")
        case .offset(let expected):
            r = .error(409, code: "mismatching_upload_offset", "the hub holds \(expected) bytes of this upload")
            r.headers["Upload-Offset"] = String(expected)
        case .full(let why):
            r = .error(429, code: "busy", why)
            r.headers["Retry-After"] = "5"
        case .superseded:
            r = .error(409, code: "superseded", "a newer request took this upload over")
        }
        if let offset, r.headers["Upload-Offset"] == nil { r.headers["Upload-Offset"] = String(offset) }
        r.headers.merge(timeHeader) { a, _ in a }
        return r
    }

    /// Ingests a complete upload: its length and digest must match what was
    /// signed at creation; then every check of SPEC §7 runs as for `POST /v1/changesets`.
    public func completeUpload(id: String, generation: UInt64) -> HubReply {
        let taken: (bytes: [UInt8], length: Int, digest: String)
        do throws(PartialUploads.Refusal) {
            taken = try partialUploads.take(id: id, generation: generation)
        } catch {
            return uploadRefused(error)
        }
        guard taken.bytes.count == taken.length, hex(digest(taken.bytes)) == taken.digest else {
            return uploadRefused(
                .mismatch("the \(taken.bytes.count) bytes received do not match X-Ferry-Digest"), offset: 0)
        }
        var r = upload(taken.bytes)
        r.headers["Upload-Offset"] = String(taken.length)
        r.headers["Upload-Complete"] = "?1"
        return r
    }
}
