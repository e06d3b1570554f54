import AsyncHTTPClient
import FerryCore
import FerryCrypto
import FerryProtocol
import Foundation
import NIOCore
import NIOHTTP1

/// An HTTP answer from the hub.
public struct HubAnswer: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var hubTimeMs: UInt64?
    public var cursor: UInt64?
    /// Informational (unsigned) download headers: the hub's stream head and how
    /// many changes for this agent still wait after this page (SPEC §9.4).
    public var hubHead: UInt64?
    public var hubRemaining: Int?
    /// `Upload-Offset` of a resumable-upload answer (SPEC §9.10).
    public var uploadOffset: Int?
    /// `ETag` and `Content-Range` of a download page (SPEC §9.12).
    public var etag: String?
    public var contentRange: String?
    /// `Content-Length`, when the hub declared it.
    public var contentLength: Int?
    /// The typed error, when the hub refused.
    public var error: ErrorDetail?
    /// Local wall-clock ms when the request was sent and the answer received.
    public var sentMs: UInt64
    public var receivedMs: UInt64

    public struct ErrorDetail: Codable, Sendable {
        public var code: String
        public var message: String
        public var expectedSeq: UInt64?
    }
}

/// Talks to the hub over HTTP/1.1 with timeouts made for bad links
/// (``LinkSettings``, PLATFORM.md "Networks for link tests"):
/// - connect: 12 s by default (during an outage `connect()` just hangs);
/// - idle read: 30 s from the end of the request to the first byte of the
///   answer, and then between bytes; idle write: 30 s without a byte sent;
/// - overall: connect + idle + size / 1,000 B/s, so a transfer that trickles
///   through a dying link still ends instead of hanging.
/// A request given up on fails with an error the sync loop retries on a fresh
/// connection; nothing hangs silently.
public final class HubClient: Sendable {
    let http: HTTPClient
    public let baseURL: String
    let wall: any WallClock
    public let link: LinkSettings

    /// - Parameter retryConnect: keep retrying a refused connection until the
    ///   connect timeout (one hub address), or fail at once so the next
    ///   address is tried (several, SPEC §9.10).
    public init(
        baseURL: String, wall: any WallClock = SystemClock(), link: LinkSettings = LinkSettings(),
        retryConnect: Bool = true
    ) {
        var config = HTTPClient.Configuration()
        config.timeout = .init(
            connect: .milliseconds(Int64(link.connectTimeout * 1000)),
            read: .milliseconds(Int64(link.idleTimeout * 1000)), write: .milliseconds(Int64(link.idleTimeout * 1000)))
        // A pooled connection that sat idle across an outage may be dead without
        // knowing it; do not keep them longer than the idle timeout.
        config.connectionPool = .init(idleTimeout: .milliseconds(Int64(min(20, link.idleTimeout) * 1000)))
        config.connectionPool.retryConnectionEstablishment = retryConnect
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.wall = wall
        self.link = link
    }

    /// The overall deadline in seconds for a request moving about `bytes` bytes.
    public func deadlineSeconds(bytes: Int) -> Double {
        link.connectTimeout + link.idleTimeout + Double(max(0, bytes)) / link.minRate
    }

    /// Must be called before the client is dropped.
    public func shutdown() async {
        try? await http.shutdown()
    }

    /// Sends one request and reads the whole answer (bounded).
    /// - Parameter expectedBytes: the size of the answer expected (a download
    ///   page), which lengthens the overall deadline.
    public func send(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:],
        expectedBytes: Int = 0, maxBytes: Int = 16 << 20
    ) async throws -> HubAnswer {
        var req = HTTPClientRequest(url: baseURL + path)
        req.method = method
        for (k, v) in headers { req.headers.add(name: k, value: v) }
        // SPEC §9.1.1: the hub may refuse software older than it needs.
        req.headers.replaceOrAdd(name: SoftwareVersion.header, value: SoftwareVersion.current.headerValue)
        if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
        let sent = wall.nowMillis()
        let seconds = deadlineSeconds(bytes: (body?.count ?? 0) + max(0, expectedBytes))
        let resp = try await http.execute(req, timeout: .milliseconds(Int64(seconds * 1000)))
        let buf = try await resp.body.collect(upTo: maxBytes)
        return Self.answer(resp, body: Array(buffer: buf), sentMs: sent, receivedMs: wall.nowMillis())
    }

    /// The answer of `resp` with its whole `body` (typed error decoded on 4xx/5xx).
    static func answer(_ resp: HTTPClientResponse, body bytes: [UInt8], sentMs sent: UInt64, receivedMs: UInt64)
        -> HubAnswer
    {
        var a = HubAnswer(
            status: Int(resp.status.code), body: bytes,
            hubTimeMs: resp.headers.first(name: "X-Ferry-Time").flatMap(UInt64.init),
            cursor: resp.headers.first(name: "X-Ferry-Cursor").flatMap(UInt64.init),
            hubHead: resp.headers.first(name: "X-Ferry-Head").flatMap(UInt64.init),
            hubRemaining: resp.headers.first(name: "X-Ferry-Remaining").flatMap(Int.init).map { max(0, $0) },
            uploadOffset: resp.headers.first(name: "Upload-Offset").flatMap(Int.init),
            etag: resp.headers.first(name: "ETag"), contentRange: resp.headers.first(name: "Content-Range"),
            contentLength: resp.headers.first(name: "Content-Length").flatMap { UInt64($0) }.flatMap {
                Int(exactly: $0)
            },
            error: nil, sentMs: sent, receivedMs: receivedMs)
        if a.status >= 400 {
            struct E: Codable { var error: HubAnswer.ErrorDetail }
            let d = JSONDecoder()
            d.keyDecodingStrategy = .convertFromSnakeCase
            a.error =
                (try? d.decode(E.self, from: Data(bytes)))?.error
                ?? .init(
                    code: "http_\(a.status)", message: String(decoding: bytes.prefix(300), as: UTF8.self),
                    expectedSeq: nil)
        }
        return a
    }
}
