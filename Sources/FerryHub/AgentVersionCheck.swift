import FerryProtocol
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Refuses agent requests (enroll, upload, download) from software older than
/// the hub's minimum with 426 `agent_too_old` (SPEC §9.1.1). Health, metrics
/// and operator endpoints are not agent requests and pass.
struct AgentVersionCheck<Context: RequestContext>: RouterMiddleware {
    let minimum: SoftwareVersion

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let path = request.uri.path
        guard
            path == "/v1/enroll" || path == "/v1/changesets" || path == "/v1/changes" || path.hasPrefix("/v1/uploads/")
        else {
            return try await next(request, context)
        }
        let announced = HTTPField.Name(SoftwareVersion.header).flatMap { request.headers[$0] }
        guard let message = SoftwareVersion.refusal(announced: announced, minimum: minimum) else {
            return try await next(request, context)
        }
        let body = HubReply.error(426, code: "agent_too_old", message)
        var headers = HTTPFields()
        headers[.contentType] = body.contentType
        return Response(
            status: .init(code: 426), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body.body)))
    }
}
