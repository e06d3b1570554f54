import FerryAgent
import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The threat model's first attacker: a stolen commune PC holding a valid agent
/// key. Every request below is validly signed and sealed; each must get a typed
/// refusal (or be applied correctly) and the hub must keep serving.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct HostileInputEndToEndTests {
    static let commune = "24848"

    /// An enrolled agent's keys, used as a thief would.
    struct Thief {
        var origin: OriginID
        var identity: Identity
        var hubKX: KXPublicKey
        var url: String

        init(agentDir: String, url: String) throws {
            let home = AgentHome(directory: agentDir)
            origin = OriginID(try home.config().agentID)
            identity = try home.identity()
            hubKX = try home.hubKeys().kx
            self.url = url
        }

        func seal(_ body: ChangeSetBody, seqFrom: UInt64, ack: UInt64 = 0) throws -> [UInt8] {
            let header = ChangeSetHeader(
                id: randomBytes(16), origin: origin, seqFrom: seqFrom,
                seqTo: seqFrom + UInt64(body.writes.count) - 1, ack: ack, senderKeyID: identity.signing.publicKey.id,
                recipientKeyID: hubKX.id, createdHLC: body.writes[0].id.hlc, commune: HostileInputEndToEndTests.commune)
            let keys = try identity.kx.clientSessionKeys(server: hubKX)
            return try Envelope.seal(header: header, body: body, signer: identity.signing, key: keys.transmit).envelope
        }

        func upload(_ bytes: [UInt8]) async throws -> Answer {
            try await Answer(withHubClient(url) { try await $0.send(.POST, "/v1/changesets", body: bytes) })
        }

        /// A pull signed over exactly the texts sent.
        func pull(since: String, maxBytes: String, time: String) async throws -> Answer {
            let message = Array(
                "ferry/pull/v1\n\(origin.rawValue)\n\(since)\n\(maxBytes)\n\(time)".utf8)
            let sig = identity.signing.sign(message)
            return try await Answer(
                withHubClient(url) {
                    try await $0.send(
                        .GET, "/v1/changes?since=\(since)&max_bytes=\(maxBytes)",
                        headers: [
                            "X-Ferry-Agent": origin.rawValue, "X-Ferry-Time": time, "X-Ferry-Signature": hex(sig),
                        ])
                })
        }
    }

    struct Answer: CustomStringConvertible {
        var status: Int
        var code: String?
        var text: String
        init(_ a: HubAnswer) {
            status = a.status
            code = a.error?.code
            text = String(decoding: a.body.prefix(600), as: UTF8.self)
        }
        var description: String { "\(status) \(code ?? "-") \(text)" }
    }

    /// One record with the given field values, written by `origin` now.
    static func body(origin: OriginID, _ values: [String: Value], scope: RecordScope? = nil) -> (
        ChangeSetBody, RecordID
    ) {
        var rng = SystemRandomNumberGenerator()
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let rid = RecordID.v7(millis: now, using: &rng)
        let id = WriteID(hlc: HLC(millis: now, counter: 0), origin: origin)
        let writes = values.sorted { $0.key < $1.key }.map {
            FieldWrite(record: rid, field: $0.key, id: id, value: $0.value)
        }
        let scope = scope ?? RecordScope(formID: "land-record", formVersion: 1, commune: commune)
        return (ChangeSetBody(writes: writes, scopes: [rid: scope]), rid)
    }

    /// The hub process still runs and answers its health check.
    static func expectAlive(_ hub: Sandbox.Hub, _ step: String) async throws {
        #expect(hub.process.isRunning, "the hub died after: \(step)")
        let health = try await withHubClient(hub.url) { try await $0.send(.GET, "/v1/health") }
        #expect(health.status == 200, "health after \(step): \(health.status)")
    }

    @Test func numbersAtTheLimitsFromAStolenKeyGetTypedRefusalsAndTheHubKeepsServing() async throws {
        let sb = try Sandbox("hostile-numbers")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let thief = try Thief(agentDir: a, url: hub.url)
        let store = try hubStore(hub.dir)
        var seq = try #require(try store.agent(id: thief.origin.rawValue)).appliedSeq + 1
        let good: [String: Value] = [
            "owner_name": .string("Nguyễn Thị Ánh"), "owner_id": .string("012345678901"), "status": .string("draft"),
        ]

        // An ack past the hub's stream head (it once trapped converting to Int64).
        for ack in [UInt64(1) << 63, UInt64.max] {
            let (b, rid) = Self.body(origin: thief.origin, good)
            let r = try await thief.upload(try thief.seal(b, seqFrom: seq, ack: ack))
            #expect(r.status == 400 && r.code == "malformed" && r.text.contains("ack"), "\(r)")
            #expect(try store.record(rid) == nil)
            try await Self.expectAlive(hub, "ack \(ack)")
        }

        // Pull cursors and sizes at the edges of UInt64, validly signed.
        let head = try store.streamSeq()
        let ahead = try await thief.pull(since: String(UInt64(1) << 63), maxBytes: "65536", time: "1")
        #expect(ahead.status == 409 && ahead.code == "cursor_ahead", "\(ahead)")
        try await Self.expectAlive(hub, "since 2^63")
        let huge = try await thief.pull(since: String(head), maxBytes: String(UInt64.max), time: "1")
        #expect(huge.status == 200, "max_bytes 2^64-1 is signed as sent and bounded by the hub: \(huge)")
        let future = try await thief.pull(since: String(head), maxBytes: "65536", time: String(UInt64(1) << 63))
        #expect(future.status == 200, "a skewed time is recorded, not refused: \(future)")
        try await Self.expectAlive(hub, "time 2^63")
        let skew = try #require(try store.agent(id: thief.origin.rawValue)?.lastSkewMs)
        #expect(skew > 1 << 40, "the skew is kept, clamped: \(skew)")
        let words = try await thief.pull(since: "abc", maxBytes: "65536", time: "1")
        #expect(words.status == 400 && words.code == "bad_request" && words.text.contains("since"), "\(words)")

        // An int at Int64.max: quarantined with a readable reason (it trapped formatting the bound).
        var values = good
        values["members"] = .int(Int64.max)
        let (bInt, ridInt) = Self.body(origin: thief.origin, values)
        let rInt = try await thief.upload(try thief.seal(bInt, seqFrom: seq))
        #expect(rInt.status == 200 && rInt.text.contains("\"quarantined\":1"), "\(rInt)")
        seq += UInt64(bInt.writes.count)
        try await Self.expectAlive(hub, "members = Int64.max")
        #expect(
            try store.quarantine().contains {
                $0.record == ridInt.description && $0.reason.contains("9223372036854775807")
            })

        // An empty scope: SPEC §5.1 says `scope`.
        let (bNoScope, _) = Self.body(
            origin: thief.origin, good, scope: RecordScope(formID: "", formVersion: 0, commune: ""))
        let rNoScope = try await thief.upload(try thief.seal(bNoScope, seqFrom: seq))
        #expect(rNoScope.status == 403 && rNoScope.code == "scope", "\(rNoScope)")

        // Text the hub could not store exactly as the NFC of what was signed.
        values = good
        values["address"] = .text("An" + String(repeating: "\u{0344}", count: 40))
        let (bMarks, ridMarks) = Self.body(origin: thief.origin, values)
        let rMarks = try await thief.upload(try thief.seal(bMarks, seqFrom: seq))
        #expect(rMarks.status == 400 && rMarks.code == "malformed" && rMarks.text.contains("combining"), "\(rMarks)")
        #expect(try store.record(ridMarks) == nil)
        values["address"] = .text(String(repeating: "a\u{0344}", count: 1365))  // 4,095 bytes; 5,460 after NFC
        let (bGrow, _) = Self.body(origin: thief.origin, values)
        let rGrow = try await thief.upload(try thief.seal(bGrow, seqFrom: seq))
        #expect(rGrow.status == 400 && rGrow.text.contains("after Unicode normalisation"), "\(rGrow)")
        try await Self.expectAlive(hub, "combining marks")

        // Text that is merely not NFC is normalised and stored exactly as its NFC.
        values["address"] = .text("Nguye\u{0302}\u{0303}n, Lạc Dương")
        let (bNFD, ridNFD) = Self.body(origin: thief.origin, values)
        let rNFD = try await thief.upload(try thief.seal(bNFD, seqFrom: seq))
        #expect(rNFD.status == 200, "\(rNFD)")
        let stored = try #require(try store.record(ridNFD)).leaves["address"]?.winner?.value
        #expect(stored == .text("Nguyễn, Lạc Dương"))
        #expect(stored.map { "\($0.display)".unicodeScalars.count } == 17)
    }

    @Test func enrollmentRefusesKeysThatCanNeverWorkAndKeepsTheToken() async throws {
        let sb = try Sandbox("hostile-keys")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let token = try await sb.ok(["hub", "token", "--commune", Self.commune, "--hub-dir", hub.dir])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let good = Identity()
        func enroll(sign: [UInt8], kx: [UInt8]) async throws -> Answer {
            let req = EnrollRequest(token: token, signPublicKey: hex(sign), kxPublicKey: hex(kx), hostname: "pc")
            let body = [UInt8](try HubJSON.encoder.encode(req))
            return try await Answer(withHubClient(hub.url) { try await $0.send(.POST, "/v1/enroll", body: body) })
        }
        let zeroKX = try await enroll(sign: good.signing.publicKey.bytes, kx: [UInt8](repeating: 0, count: 32))
        #expect(zeroKX.status == 400 && zeroKX.code == "bad_key", "\(zeroKX)")
        var identityPoint = [UInt8](repeating: 0, count: 32)
        identityPoint[0] = 1  // the Ed25519 neutral element: small order
        let smallSign = try await enroll(sign: identityPoint, kx: good.kx.publicKey.bytes)
        #expect(smallSign.status == 400 && smallSign.code == "bad_key", "\(smallSign)")
        #expect(try hubStore(hub.dir).agents().isEmpty)
        // The refused attempts did not use up the token.
        let ok = try await sb.run(["agent", "enroll", hub.url, token, "--dir", sb.path("a")])
        #expect(ok.status == 0, "\(ok.text)")
    }

    @Test func slowHugeAndExcessRequestsGetTypedJSONRefusals() async throws {
        let sb = try Sandbox("hostile-http")
        defer { sb.close() }
        let dir = try await sb.initHub()
        let p = try sb.start(
            [
                "hub", "serve", "--dir", dir, "--port", "0", "--head-timeout", "1", "--body-idle-timeout", "1",
                "--max-connections", "6",
            ], name: "hub")
        defer { sb.stop(p) }
        var url = ""
        #expect(
            try await waitUntil(timeout: 30) {
                url =
                    (try? String(contentsOfFile: dir + "/hub.url", encoding: .utf8))?.trimmingCharacters(
                        in: .whitespacesAndNewlines) ?? ""
                return !url.isEmpty
            })
        let port = try #require(url.split(separator: ":").last.flatMap { Int($0) })

        // A head that never completes: 408 after the head timeout, not a connection held for ever.
        let half = try RawClient(port: port)
        try half.send("GET /v1/health HTTP/1.1\r\nHost: hub\r\n")
        let t0 = Date()
        let r1 = try half.readAll(timeout: 10)
        #expect(r1.hasPrefix("HTTP/1.1 408") && r1.contains("\"request_timeout\""), "\(r1)")
        #expect(Date().timeIntervalSince(t0) < 5)

        // A declared body of 10^12 bytes: 413 at once, typed.
        let huge = try RawClient(port: port)
        try huge.send("POST /v1/changesets HTTP/1.1\r\nHost: hub\r\nContent-Length: 1000000000000\r\n\r\nabc")
        let r2 = try huge.readAll(timeout: 5)
        #expect(r2.hasPrefix("HTTP/1.1 413") && r2.contains("\"too_large\""), "\(r2)")

        // A body that stalls: 408.
        let stall = try RawClient(port: port)
        try stall.send("POST /v1/changesets HTTP/1.1\r\nHost: hub\r\nContent-Length: 100\r\n\r\nabc")
        let r3 = try stall.readAll(timeout: 10)
        #expect(r3.hasPrefix("HTTP/1.1 408") && r3.contains("stalled"), "\(r3)")

        // Enrollment and operator bodies over their limits: typed 413 JSON, not an empty body.
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 70 * 1024)
        let e = try await withHubClient(url) { try await $0.send(.POST, "/v1/enroll", body: big) }
        #expect(e.status == 413 && e.error?.code == "too_large", "\(e.status) \(e.error?.message ?? "")")
        let token = try String(contentsOfFile: dir + "/operator.token", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let o = try await withHubClient(url) {
            try await $0.send(
                .POST, "/v1/ops/forms", body: [UInt8](repeating: UInt8(ascii: "x"), count: 2 << 20),
                headers: ["Authorization": "Bearer \(token)"])
        }
        #expect(o.status == 413 && o.error?.code == "too_large", "\(o.status) \(o.error?.message ?? "")")

        // More connections than the bound: the excess gets 503 busy; the hub keeps serving after.
        let many = try (0..<8).map { _ in try RawClient(port: port) }
        try await Task.sleep(nanoseconds: 300_000_000)
        var busy = 0
        var served = 0
        for c in many {
            try c.send("GET /v1/health HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
            let r = try c.readAll(timeout: 5)
            if r.hasPrefix("HTTP/1.1 503") && r.contains("\"busy\"") { busy += 1 }
            if r.hasPrefix("HTTP/1.1 200") { served += 1 }
        }
        #expect(busy >= 2 && served >= 1 && busy + served == 8, "busy \(busy), served \(served)")
        for c in many { c.close() }
        try await Task.sleep(nanoseconds: 300_000_000)
        let health = try await withHubClient(url) { try await $0.send(.GET, "/v1/health") }
        #expect(health.status == 200)
        #expect(p.isRunning)
    }
}

/// A plain TCP client for requests no HTTP library would send (half heads, lying lengths).
final class RawClient {
    let fd: Int32

    init(port: Int) throws {
        fd = try tcpSocket()
        var addr = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            throw HarnessError("connect() to 127.0.0.1:\(port) failed")
        }
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n == bytes.count else { throw HarnessError("send() wrote \(n) of \(bytes.count)") }
    }

    /// Reads until the peer closes or `timeout` seconds pass.
    func readAll(timeout: Double) throws -> String {
        var out: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buf = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline, out.count < 1 << 20 {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 100)
            if ready < 0 { break }
            if ready == 0 {
                // A complete answer to a `Connection: close` request may be followed by a slow close.
                if let s = String(bytes: out, encoding: .utf8), Self.complete(s) { break }
                continue
            }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// True when `s` holds a head and as many body bytes as its Content-Length says.
    static func complete(_ s: String) -> Bool {
        guard let end = s.range(of: "\r\n\r\n") else { return false }
        let head = s[..<end.lowerBound].lowercased()
        guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
            let n = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
        else { return false }
        return s[end.upperBound...].utf8.count >= n
    }

    private var open = true

    func close() {
        if open { Glibc.close(fd) }
        open = false
    }

    deinit { close() }
}
