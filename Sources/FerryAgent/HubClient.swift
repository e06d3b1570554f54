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

/// Talks to the hub over HTTP/1.1 with timeouts made for bad links:
/// short requests, a 10 s connect timeout and a 30 s idle timeout, so a cut
/// connection is abandoned and retried on a fresh one (PLATFORM.md).
public final class HubClient: Sendable {
    let http: HTTPClient
    public let baseURL: String
    let wall: any WallClock

    public init(baseURL: String, wall: any WallClock = SystemClock()) {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(10), read: .seconds(30))
        config.connectionPool = .init(idleTimeout: .seconds(20))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.wall = wall
    }

    /// Must be called before the client is dropped.
    public func shutdown() async {
        try? await http.shutdown()
    }

    /// Sends one request and reads the whole answer (bounded).
    public func send(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:],
        timeoutSeconds: Int64 = 60, maxBytes: Int = 16 << 20
    ) async throws -> HubAnswer {
        var req = HTTPClientRequest(url: baseURL + path)
        req.method = method
        for (k, v) in headers { req.headers.add(name: k, value: v) }
        if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
        let sent = wall.nowMillis()
        let resp = try await http.execute(req, timeout: .seconds(timeoutSeconds))
        let buf = try await resp.body.collect(upTo: maxBytes)
        let bytes = Array(buffer: buf)
        var a = HubAnswer(
            status: Int(resp.status.code), body: bytes,
            hubTimeMs: resp.headers.first(name: "X-Ferry-Time").flatMap(UInt64.init),
            cursor: resp.headers.first(name: "X-Ferry-Cursor").flatMap(UInt64.init), error: nil, sentMs: sent,
            receivedMs: wall.nowMillis())
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
