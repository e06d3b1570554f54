import FerryProtocol
import Foundation
import Hummingbird
import NIOCore

/// The routes of resumable uploads (SPEC §9.10), in the manner of the IETF
/// "Resumable Uploads for HTTP" draft: `POST /v1/uploads/{id}` creates the
/// upload resource with the first bytes (often all of them), `HEAD` says how
/// many bytes the hub holds (`Upload-Offset`), `PATCH` appends from there.
/// `{id}` is the change set's id, which the agent knows before it sends a
/// byte, so a creation whose answer was lost can still be resumed.
extension HubServer {
    static func addUploadRoutes(
        _ router: Router<HubRequestContext>, service: HubService, uploads: ConnectionCount, limits: ServerLimits
    ) {
        let maxBody = service.limits.maxEnvelopeBytes
        router.post("/v1/uploads/:id") { request, context in
            try await body(request, context, service: service, uploads: uploads, limits: limits, creating: true)
        }
        router.patch("/v1/uploads/:id") { request, context in
            try await body(request, context, service: service, uploads: uploads, limits: limits, creating: false)
        }
        router.head("/v1/uploads/:id") { request, context in
            let r: UploadRequestV1
            switch parse(request, context, maxLength: maxBody) {
            case .success(let p): r = p
            case .failure(let e): return reply(.error(400, code: e.code.rawValue, e.message))
            }
            if let refusal = await Task.detached(operation: { service.authorizeUpload(r) }).value {
                return reply(refusal)
            }
            do throws(PartialUploads.Refusal) {
                let o = try service.partialUploads.offset(
                    id: r.upload, agent: r.agentID, nowMs: service.store.nowMillis())
                var ok = HubReply(status: 204, contentType: "application/json", body: [])
                ok.headers = [
                    "Upload-Offset": String(o.offset), "Upload-Length": String(o.length), "Upload-Complete": "?0",
                    "Cache-Control": "no-store",
                ]
                return reply(ok)
            } catch {
                return reply(service.uploadRefused(error))
            }
        }
    }

    static func parse(_ request: Request, _ context: HubRequestContext, maxLength: Int) -> Result<
        UploadRequestV1, RequestError
    > {
        var headers: [String: String] = [:]
        for f in request.headers where headers[f.name.canonicalName] == nil { headers[f.name.canonicalName] = f.value }
        do throws(RequestError) {
            return .success(
                try UploadRequestV1.parse(
                    upload: context.parameters.get("id") ?? "", headers: headers, maxLength: maxLength))
        } catch {
            return .failure(error)
        }
    }

    /// Creation (`POST`) or append (`PATCH`): stream the body into the partial
    /// upload as it arrives, so a cut keeps every byte that got here.
    static func body(
        _ request: Request, _ context: HubRequestContext, service: HubService, uploads: ConnectionCount,
        limits: ServerLimits, creating: Bool
    ) async throws -> Response {
        let r: UploadRequestV1
        switch parse(request, context, maxLength: service.limits.maxEnvelopeBytes) {
        case .success(let p): r = p
        case .failure(let e): return reply(.error(400, code: e.code.rawValue, e.message))
        }
        if let refusal = await Task.detached(operation: { service.authorizeUpload(r) }).value {
            return reply(refusal)
        }
        let partials = service.partialUploads
        // Both fit in Int: UploadRequestV1.parse bounds them by the envelope limit.
        let length = Int(clamping: r.length)
        var offset = Int(clamping: r.offset ?? 0)
        let generation: UInt64
        do throws(PartialUploads.Refusal) {
            if creating {
                guard offset == 0 else {
                    return reply(.error(400, code: "bad_request", "a creation (POST) starts at Upload-Offset 0"))
                }
                generation = try partials.create(
                    id: r.upload, agent: r.agentID, length: length, digest: r.digest, nowMs: service.store.nowMillis())
            } else {
                guard r.offset != nil else {
                    return reply(.error(400, code: "bad_request", "an append (PATCH) needs Upload-Offset"))
                }
                generation = try partials.resume(
                    id: r.upload, agent: r.agentID, length: length, digest: r.digest, offset: offset,
                    nowMs: service.store.nowMillis())
            }
        } catch {
            return reply(service.uploadRefused(error))
        }
        do {
            for try await chunk in request.body {
                offset = try partials.append(
                    id: r.upload, generation: generation, chunk: chunk.readableBytesView,
                    nowMs: service.store.nowMillis())
            }
        } catch let e as PartialUploads.Refusal {
            if case .mismatch = e { partials.drop(id: r.upload) }
            return reply(service.uploadRefused(e, offset: offset))
        }
        // A cut connection ends the loop above with an error: what arrived stays.
        guard r.complete else {
            var created = HubReply(status: creating ? 201 : 204, contentType: "application/json", body: [])
            created.headers = [
                "Location": "/v1/uploads/\(r.upload)", "Upload-Offset": String(offset), "Upload-Complete": "?0",
            ]
            return reply(created)
        }
        guard offset == length else {
            partials.drop(id: r.upload)
            return reply(
                service.uploadRefused(
                    .mismatch("Upload-Complete came after \(offset) of Upload-Length \(length) bytes"), offset: 0))
        }
        defer { uploads.closed() }
        guard uploads.opened(limit: limits.maxQueuedUploads) else {
            // The bytes stay: the agent retries the completion with an empty PATCH.
            var busy = HubReply.error(
                429, code: "busy", "the hub has \(limits.maxQueuedUploads) uploads in progress; retry shortly")
            busy.headers["Retry-After"] = "5"
            return reply(busy)
        }
        let done = await Task.detached { service.completeUpload(id: r.upload, generation: generation) }.value
        return reply(done)
    }
}
