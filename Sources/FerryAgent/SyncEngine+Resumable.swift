import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import NIOHTTP1

/// Resumable uploads, agent side (SPEC §9.10): a cut costs the bytes since
/// the hub's last checkpoint, not the whole change set.
extension SyncEngine {
    /// Replica key naming the change set whose upload was started and not acknowledged.
    static let uploadStartedKey = "upload_started"

    /// Sends the in-flight change set. The first attempt creates the upload
    /// resource with the whole envelope (no extra round trip); after a cut the
    /// agent asks the hub how much it holds (`HEAD`) and sends only the rest
    /// (`PATCH` from `Upload-Offset`). A hub without resumable uploads (404 on
    /// the route) gets the plain `POST /v1/changesets`.
    func sendChangeSet(_ inflight: InFlight) async throws -> HubAnswer {
        let id = hex(inflight.id)
        let path = "/v1/uploads/\(id)"
        let envelope = inflight.envelope
        let sum = hex(digest(envelope))
        var offset: Int?
        if (try? store.meta(Self.uploadStartedKey)) == id {
            let head = try await client.send(.HEAD, path, headers: uploadHeaders(id, envelope.count, sum))
            if head.status == 204, let o = head.uploadOffset, o >= 0, o <= envelope.count {
                offset = o
            } else if head.status != 404 {
                return head
            }
        }
        try store.setMeta([Self.uploadStartedKey: id])
        if let offset {
            logger.info(
                "resuming an upload",
                metadata: ["ferry.upload": "\(id)", "ferry.offset": "\(offset)/\(envelope.count)"])
            var headers = uploadHeaders(id, envelope.count, sum)
            headers["Upload-Offset"] = String(offset)
            headers["Upload-Complete"] = "?1"
            headers["Content-Type"] = "application/partial-upload"
            let a = try await client.send(.PATCH, path, body: Array(envelope[offset...]), headers: headers)
            // The hub lost the upload (restart, age) or holds another offset: start over now.
            guard a.error?.code == "upload_not_found" || a.error?.code == "mismatching_upload_offset" else {
                return a
            }
        }
        var headers = uploadHeaders(id, envelope.count, sum)
        headers["Upload-Complete"] = "?1"
        headers["Content-Type"] = "application/octet-stream"
        let a = try await client.send(.POST, path, body: envelope, headers: headers)
        if a.status == 404 && a.error?.code != "upload_not_found" {
            // An older hub: no upload resources there.
            try store.setMeta([Self.uploadStartedKey: nil])
            return try await client.send(
                .POST, "/v1/changesets", body: envelope, headers: ["Content-Type": "application/octet-stream"])
        }
        return a
    }

    /// The signed headers of every request on an upload resource.
    func uploadHeaders(_ id: String, _ length: Int, _ sum: String) -> [String: String] {
        let offset = Int64((try? store.meta("clock_offset_ms")) ?? "0") ?? 0
        let t = HybridLogicalClock.corrected(localMillis: wall.nowMillis(), offset: offset)
        let len = UInt64(clamping: length)
        let sig = identity.signing.sign(
            UploadAuth.message(agent: config.agentID, upload: id, length: len, digest: sum, timeMs: t))
        return [
            "X-Ferry-Agent": config.agentID, "X-Ferry-Time": String(t), "X-Ferry-Signature": hex(sig),
            "Upload-Length": String(len), "X-Ferry-Digest": sum,
        ]
    }
}
