import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The hub's HTTP/1.1 server (Hummingbird 2): versioned endpoints under `/v1`.
public enum HubServer {
    /// Builds the application; `onRunning` receives the bound port (use port 0 in tests).
    public static func application(
        service: HubService, host: String, port: Int, logger: Logger, limits: ServerLimits = .standard,
        minAgentVersion: SoftwareVersion? = nil, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: HubRequestContext.self)
        // SPEC §9.1.1: agent endpoints refuse software older than the hub needs.
        if let minAgentVersion { router.add(middleware: AgentVersionCheck(minimum: minAgentVersion)) }
        let maxBody = service.limits.maxEnvelopeBytes
        let uploads = ConnectionCount()
        router.get("/v1/health") { _, _ in reply(service.health()) }
        router.get("/v1/metrics") { _, _ in reply(service.metricsText()) }
        router.get("/v1/openapi.json") { _, _ in
            reply(HubReply(status: 200, contentType: "application/json", body: Array(OpenAPIDocument.json.utf8)))
        }
        router.post("/v1/enroll") { request, _ in
            guard let body = try await collect(request, upTo: 64 * 1024, what: "enrollment request") else {
                return reply(tooLarge("an enrollment request", 64 * 1024))
            }
            let r = service.enroll(Array(buffer: body))
            service.noteEnrollment(r)
            return reply(r)
        }
        router.post("/v1/changesets") { request, _ in
            guard let body = try await collect(request, upTo: maxBody, what: "change set") else {
                return reply(
                    .error(
                        413, code: "oversized",
                        "the change set is over \(maxBody) bytes: split it into smaller change sets"))
            }
            // One writer holds the store: past a bound, say "busy" at once rather than
            // let every client queue (they retry with backoff).
            defer { uploads.closed() }
            guard uploads.opened(limit: limits.maxQueuedUploads) else {
                var r = HubReply.error(
                    429, code: "busy", "the hub has \(limits.maxQueuedUploads) uploads in progress; retry shortly")
                r.headers["Retry-After"] = "5"
                return reply(r)
            }
            let bytes = Array(buffer: body)
            let r = try await blocking { service.upload(bytes) }
            return reply(r)
        }
        addUploadRoutes(router, service: service, uploads: uploads, limits: limits)
        router.get("/v1/changes") { request, _ in
            var query: [String: String] = [:]
            for (k, v) in request.uri.queryParameters where query[String(k)] == nil { query[String(k)] = String(v) }
            var headers: [String: String] = [:]
            for f in request.headers where headers[f.name.canonicalName] == nil {
                headers[f.name.canonicalName] = f.value
            }
            let p: PullRequestV1
            do throws(RequestError) {
                p = try PullRequestV1.parse(query: query, headers: headers)
            } catch {
                return reply(.error(400, code: error.code.rawValue, error.message))
            }
            // SPEC §9.12: a resume names its byte range and the page's ETag.
            let range: ByteRange?
            let ifRange: String?
            do throws(ByteRangeError) {
                (range, ifRange) = try PageRange.parse(
                    headers: headers, rangeFields: request.headers.filter { $0.name.canonicalName == "range" }.count)
            } catch {
                return reply(.error(error.status, code: error.code.rawValue, error.message))
            }
            let r = try await blocking {
                service.pull(
                    agentID: p.agentID, since: p.since, maxBytes: p.maxBytes, timeMs: p.timeMs,
                    signature: hex(p.signature), range: range, ifRange: ifRange)
            }
            return reply(r)
        }
        // SPEC §9.13: the open conflicts on the signing agent's commune, sealed for it.
        router.get("/v1/conflicts") { request, _ in
            var headers: [String: String] = [:]
            for f in request.headers where headers[f.name.canonicalName] == nil {
                headers[f.name.canonicalName] = f.value
            }
            let signed: SignedAgentHeaders
            do throws(RequestError) {
                signed = try SignedAgentHeaders.parse(headers, what: "a conflict list request needs")
            } catch {
                return reply(.error(400, code: error.code.rawValue, error.message))
            }
            return reply(try await blocking { service.communeConflicts(signed) })
        }
        let ops = router.group("/v1/ops").add(middleware: OperatorAuthenticator(access: service.access))
        for method in [HTTPRequest.Method.get, .post] {
            ops.on("**", method: method) { request, context in
                // Bearer tokens only: a console cookie must not reach the API (no CSRF check there).
                guard let who = context.identity, who.session == nil else {
                    return reply(
                        .error(
                            401, code: "unauthorized",
                            "operator endpoints need 'Authorization: Bearer <token>': a user token from `ferry hub users token`, or operator.token in the hub directory"
                        ))
                }
                // A CSV import may be larger than the other operator bodies.
                let limit = request.uri.path.hasSuffix("/records/import") ? RecordsCSV.maxBytes : 1 << 20
                guard let body = try await collect(request, upTo: limit, what: "operator request") else {
                    return reply(tooLarge("an operator request", limit))
                }
                let parts = request.uri.path.split(separator: "/").map(String.init).dropFirst(2).map {
                    $0.removingPercentEncoding ?? $0
                }
                var query: [String: String] = [:]
                for (k, v) in request.uri.queryParameters { query[String(k)] = String(v) }
                let bytes = Array(buffer: body)
                let m = request.method.rawValue
                let q = query
                let r = try await blocking {
                    service.operatorRequest(method: m, path: Array(parts), query: q, body: bytes, identity: who)
                }
                return reply(r)
            }
        }
        Console.register(on: router, service: service)
        let connections = ConnectionCount()
        return Application(
            router: router,
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [RequestGuard(limits: limits, connections: connections)])),
            configuration: .init(address: .hostname(host, port: port), serverName: "ferry-hub"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    /// Threads for the store's blocking work (SQLite calls, or a database
    /// driver waited on synchronously): kept off the event loops and off
    /// Swift's cooperative pool, which has one thread per core here, so a
    /// store waiting on its disk or its database never stalls the server.
    static let blockingPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        return pool
    }()

    static func blocking<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        try await blockingPool.runIfActive(work)
    }

    /// The request body, or nil when it is (or declares itself) larger than `limit`.
    static func collect(_ request: Request, upTo limit: Int, what: String) async throws -> ByteBuffer? {
        if let declared = request.headers[.contentLength].flatMap({ UInt64($0) }), declared > UInt64(limit) {
            return nil
        }
        var request = request
        do {
            return try await request.collectBody(upTo: limit)
        } catch let e as HTTPError where e.status == .contentTooLarge {
            return nil
        }
    }

    static func tooLarge(_ what: String, _ limit: Int) -> HubReply {
        .error(413, code: "too_large", "\(what) is over \(limit) bytes: the hub refuses larger ones")
    }

    static func reply(_ r: HubReply) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = r.contentType
        for (k, v) in r.headers {
            if let name = HTTPField.Name(k) { headers[name] = v }
        }
        return Response(
            status: HTTPResponse.Status(code: r.status), headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: r.body)))
    }
}
