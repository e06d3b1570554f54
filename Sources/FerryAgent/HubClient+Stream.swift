import AsyncHTTPClient
import FerryProtocol
import Foundation
import NIOCore
import NIOHTTP1

extension HubClient {
    /// Why a streamed answer was given up on before its end.
    public struct StreamError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Sends a `GET` and hands the answer's body to `onBytes` as it arrives,
    /// so a download cut in transit keeps what got here (SPEC §9.12).
    /// `onHead` sees the status and headers first (body empty); when a read
    /// breaks off, `onCut` runs before the error is rethrown.
    /// - Returns: the answer with the bytes of this response's body (at most `maxBytes`).
    public func stream(
        _ path: String, headers: [String: String], expectedBytes: Int, maxBytes: Int = 16 << 20,
        onHead: (HubAnswer) throws -> Void, onBytes: ([UInt8]) throws -> Void, onCut: () -> Void
    ) async throws -> HubAnswer {
        var req = HTTPClientRequest(url: baseURL + path)
        req.method = .GET
        for (k, v) in headers { req.headers.add(name: k, value: v) }
        req.headers.replaceOrAdd(name: SoftwareVersion.header, value: SoftwareVersion.current.headerValue)
        let sent = wall.nowMillis()
        let seconds = deadlineSeconds(bytes: max(0, expectedBytes))
        let resp = try await http.execute(req, timeout: .milliseconds(Int64(seconds * 1000)))
        let head = Self.answer(resp, body: [], sentMs: sent, receivedMs: sent)
        // Refusals are small JSON: read them whole, as `send` does.
        guard head.status == 200 || head.status == 206 else {
            let buf = try await resp.body.collect(upTo: 1 << 20)
            return Self.answer(resp, body: Array(buffer: buf), sentMs: sent, receivedMs: wall.nowMillis())
        }
        try onHead(head)
        var body: [UInt8] = []
        do {
            for try await chunk in resp.body {
                let bytes = Array(buffer: chunk)
                guard body.count + bytes.count <= maxBytes else {
                    throw StreamError(description: "the answer is over \(maxBytes) bytes")
                }
                body.append(contentsOf: bytes)
                try onBytes(bytes)
            }
        } catch {
            onCut()
            throw error
        }
        var a = head
        a.body = body
        a.receivedMs = wall.nowMillis()
        return a
    }
}
