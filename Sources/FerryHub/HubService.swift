import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Logging
import Synchronization

/// A hub answer before it becomes HTTP: status, content type, body, headers.
public struct HubReply: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var headers: [String: String] = [:]

    static func json(_ status: Int, _ value: some Encodable) -> HubReply {
        HubReply(
            status: status, contentType: "application/json",
            body: (try? HubJSON.encoder.encode(value)).map { [UInt8]($0) } ?? [])
    }

    /// A typed error (DESIGN §6): `{"error": {"code", "message", ...}}`.
    static func error(
        _ status: Int, code: String, _ message: String, expectedSeq: UInt64? = nil, changeSet: String? = nil
    ) -> HubReply {
        json(
            status,
            ErrorBody(error: .init(code: code, message: message, expectedSeq: expectedSeq, changeSet: changeSet)))
    }
}

/// An upload's acknowledgement, signed by the hub (SPEC §9.3).
struct SignedAck: Encodable {
    let result: IngestResult
    let signature: String

    enum Keys: String, CodingKey { case signature }

    func encode(to encoder: any Encoder) throws {
        try result.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(signature, forKey: .signature)
    }
}

/// The hub's counters, exported in Prometheus text format.
final class HubMetrics: Sendable {
    private let counters = Mutex<[String: Double]>([:])

    func add(_ name: String, _ labels: String = "", _ by: Double = 1) {
        let key = labels.isEmpty ? name : "\(name){\(labels)}"
        counters.withLock { $0[key, default: 0] += by }
    }

    var snapshot: [String: Double] { counters.withLock { $0 } }
}

/// The hub's request handling, independent of the HTTP server (DESIGN §8).
public final class HubService: Sendable {
    public let store: SQLiteHubStore
    public let identity: Identity
    public let operatorToken: String
    public let limits: EnvelopeLimits
    let metrics = HubMetrics()
    let logger: Logger
    let started = Date()

    public init(
        store: SQLiteHubStore, identity: Identity, operatorToken: String, limits: EnvelopeLimits = .standard,
        logger: Logger
    ) {
        self.store = store
        self.identity = identity
        self.operatorToken = operatorToken
        self.limits = limits
        self.logger = logger
    }

    var timeHeader: [String: String] { ["X-Ferry-Time": String(store.nowMillis())] }

    // MARK: agent endpoints

    /// POST /v1/enroll
    public func enroll(_ body: [UInt8]) -> HubReply {
        let req: EnrollRequest.Parsed
        do {
            req = try EnrollRequest.parse(body)
        } catch {
            return .error(400, code: error.code.rawValue, error.message)
        }
        let token = req.token
        guard token.hubFingerprint == identity.fingerprint else {
            return .error(400, code: "bad_token", "the token was issued by another hub (its key fingerprint differs)")
        }
        do {
            let info = try store.enroll(
                secret: token.secret, commune: token.commune, signKey: req.signKey, kxKey: req.kxKey,
                hostname: req.hostname)
            metrics.add("ferry_enrollments_total")
            logger.info("agent enrolled", metadata: ["ferry.agent": "\(info.id)", "ferry.commune": "\(info.commune)"])
            var r = HubReply.json(
                200,
                EnrollResponse(
                    agentId: info.id, commune: info.commune, hubSignPublicKey: hex(identity.signing.publicKey.bytes),
                    hubKxPublicKey: hex(identity.kx.publicKey.bytes), hubTimeMs: store.nowMillis()))
            r.headers = timeHeader
            return r
        } catch let e as HubError {
            return .error(403, code: e.code.rawValue, e.message)
        } catch {
            return .error(400, code: "bad_request", "\(error)")
        }
    }

    /// POST /v1/changesets: open → verify → status, scope, sequence → validate → merge → ack.
    public func upload(_ bytes: [UInt8]) -> HubReply {
        metrics.add("ferry_changesets_received_total")
        metrics.add("ferry_bytes_received_total", "", Double(bytes.count))
        var reply = uploadInner(bytes)
        reply.headers.merge(timeHeader) { a, _ in a }
        return reply
    }

    private func uploadInner(_ bytes: [UInt8]) -> HubReply {
        let header: ChangeSetHeader
        do {
            header = try Envelope.peek(bytes, limits: limits)
        } catch {
            return refused(error)
        }
        var authenticated = false
        do {
            guard let agent = try store.agent(id: header.origin.rawValue) else {
                throw ChangeSetError.unknownKey(hex(header.senderKeyID)).about(header)
            }
            guard agent.isActive else {
                return .error(
                    403, code: "revoked",
                    "agent \(agent.id) was revoked: its change sets are refused; re-enroll with a new token",
                    changeSet: header.idHex)
            }
            let signKey = try SigningPublicKey(bytes: agent.signPublicKey)
            let keys = try identity.kx.serverSessionKeys(client: try KXPublicKey(bytes: agent.kxPublicKey))
            let opened = try Envelope.open(
                bytes, recipientKeyID: identity.kx.publicKey.id, author: signKey, key: keys.receive, limits: limits,
                normalize: true)
            authenticated = true
            let result = try store.ingest(opened, from: agent.id)
            metrics.add("ferry_changesets_total", "status=\"\(result.status)\"")
            metrics.add("ferry_writes_merged_total", "", Double(result.merged))
            metrics.add("ferry_writes_quarantined_total", "", Double(result.quarantined))
            let skew = Int64(bitPattern: opened.header.createdHLC.millis) - Int64(bitPattern: store.nowMillis())
            try? store.noteContact(agent: agent.id, skewMs: skew, ackedCursor: header.ack, error: nil)
            logger.info(
                "change set ingested",
                metadata: [
                    "ferry.changeset.id": "\(header.idHex)", "ferry.agent": "\(agent.id)",
                    "ferry.status": "\(result.status)",
                    "ferry.merged": "\(result.merged)", "ferry.quarantined": "\(result.quarantined)",
                ])
            let signature = identity.signing.sign(
                AckAuth.message(agent: agent.id, changeSet: header.idHex, cursor: result.cursor, status: result.status))
            return .json(200, SignedAck(result: result, signature: hex(signature)))
        } catch {
            // Only an authenticated author's refusal is recorded against it, so a
            // forger cannot make a silent agent look alive.
            if authenticated, let a = try? store.agent(id: header.origin.rawValue) {
                try? store.noteContact(agent: a.id, skewMs: nil, ackedCursor: nil, error: "\(error)")
            }
            return refused(error)
        }
    }

    func refused(_ error: any Error) -> HubReply {
        switch error {
        case let e as ChangeSetError:
            metrics.add("ferry_changesets_refused_total", "code=\"\(e.code.rawValue)\"")
            logger.warning(
                "change set refused",
                metadata: ["ferry.code": "\(e.code.rawValue)", "ferry.changeset.id": "\(e.changeSetID ?? "-")"])
            let status =
                switch e.code {
                case .oversized: 413
                case .outOfSequence, .replayed: 409
                case .unknownKey, .wrongKey, .tampered, .badSignature: 401
                default: 400
                }
            return .error(
                status, code: e.code.rawValue, e.description, expectedSeq: e.expectedSeq, changeSet: e.changeSetID)
        case let e as HubError:
            metrics.add("ferry_changesets_refused_total", "code=\"\(e.code.rawValue)\"")
            logger.warning(
                "change set refused", metadata: ["ferry.code": "\(e.code.rawValue)", "ferry.reason": "\(e.message)"])
            return .error(e.code == .revoked || e.code == .scope ? 403 : 400, code: e.code.rawValue, e.message)
        default:
            logger.error("internal error", metadata: ["ferry.error": "\(error)"])
            return .error(
                500, code: "internal",
                "the hub failed to process the request (\(error)); it was not applied, retry later")
        }
    }

    /// GET /v1/changes?since=C&max_bytes=B with the signed pull headers.
    public func pull(agentID: String?, since: UInt64?, maxBytes: Int?, timeMs: UInt64?, signature: String?) -> HubReply
    {
        var reply = pullInner(agentID: agentID, since: since, maxBytes: maxBytes, timeMs: timeMs, signature: signature)
        reply.headers.merge(timeHeader) { a, _ in a }
        return reply
    }

    private func pullInner(agentID: String?, since: UInt64?, maxBytes: Int?, timeMs: UInt64?, signature: String?)
        -> HubReply
    {
        guard let agentID, let since, let timeMs, let sig = signature.flatMap(unhex) else {
            return .error(
                400, code: "bad_request", "a pull needs since, X-Ferry-Agent, X-Ferry-Time and X-Ferry-Signature")
        }
        let requested = maxBytes ?? 256 * 1024
        // The signature covers what the agent asked for; the hub then applies its own bounds.
        let maxBytes = min(max(requested, 4096), limits.maxEnvelopeBytes / 2)
        do {
            guard let agent = try store.agent(id: agentID) else {
                return .error(
                    401, code: "unknown_agent", "agent \(agentID) is not enrolled here: enroll it with a new token")
            }
            guard agent.isActive else {
                return .error(403, code: "revoked", "agent \(agentID) was revoked: re-enroll with a new token")
            }
            let key = try SigningPublicKey(bytes: agent.signPublicKey)
            guard
                key.verify(
                    signature: sig,
                    of: PullAuth.message(agent: agentID, since: since, maxBytes: requested, timeMs: timeMs))
            else {
                return .error(
                    401, code: "bad_signature", "the pull request's signature does not match agent \(agentID)'s key")
            }
            let now = store.nowMillis()
            let skew = Int64(bitPattern: timeMs) - Int64(bitPattern: now)
            // A skewed clock is recorded, not refused: a download changes nothing
            // at the hub, and its signed answer is how the agent learns the
            // hub's time and corrects its clock.
            let (body, seqTo, more) = try store.changes(for: agent, since: since, maxBytes: maxBytes)
            try store.noteContact(agent: agentID, skewMs: skew, ackedCursor: since, error: nil)
            metrics.add("ferry_pulls_total")
            if body.writes.isEmpty && body.catalog.isEmpty {
                // Nothing for this agent up to the head: it is up to date. The
                // answer is still a signed change set, so the cursor and the
                // hub's time cannot be forged.
                try store.noteContact(agent: agentID, skewMs: skew, ackedCursor: seqTo, error: nil)
            }
            let keys = try identity.kx.serverSessionKeys(client: try KXPublicKey(bytes: agent.kxPublicKey))
            let header = ChangeSetHeader(
                id: randomBytes(16), origin: .hub, seqFrom: since + 1, seqTo: seqTo, ack: agent.appliedSeq,
                senderKeyID: identity.signing.publicKey.id, recipientKeyID: keyID(of: agent.kxPublicKey),
                createdHLC: HLC(millis: now, counter: 0), commune: agent.commune, more: more)
            let sealed = try Envelope.seal(
                header: header, body: body, signer: identity.signing, key: keys.transmit,
                zstdLevel: Compressor.wireLevel)
            metrics.add("ferry_bytes_sent_total", "", Double(sealed.envelope.count))
            return HubReply(
                status: 200, contentType: "application/octet-stream", body: sealed.envelope,
                headers: ["X-Ferry-Cursor": String(seqTo)])
        } catch {
            return refused(error)
        }
    }

    /// GET /v1/health
    public func health() -> HubReply {
        struct Health: Codable { var status: String; var version: String; var timeMs: UInt64; var streamSeq: UInt64 }
        let seq = (try? store.streamSeq()) ?? 0
        var r = HubReply.json(
            200, Health(status: "ok", version: FerryVersion.string, timeMs: store.nowMillis(), streamSeq: seq))
        r.headers = timeHeader
        return r
    }

    /// GET /v1/metrics in Prometheus text format.
    public func metricsText() -> HubReply {
        var lines: [String] = []
        let totals = (try? store.totals()) ?? [:]
        for (k, v) in totals.sorted(by: { $0.key < $1.key }) {
            lines.append("# TYPE ferry_hub_\(k) gauge")
            lines.append("ferry_hub_\(k) \(v)")
        }
        var typed = Set<String>()
        for (k, v) in metrics.snapshot.sorted(by: { $0.key < $1.key }) {
            let name = String(k.prefix { $0 != "{" })
            if typed.insert(name).inserted { lines.append("# TYPE \(name) counter") }
            lines.append("\(k) \(v == v.rounded() ? String(Int64(v)) : String(v))")
        }
        lines.append("# TYPE ferry_hub_uptime_seconds gauge")
        lines.append("ferry_hub_uptime_seconds \(Int(Date().timeIntervalSince(started)))")
        return HubReply(
            status: 200, contentType: "text/plain; version=0.0.4",
            body: Array((lines.joined(separator: "\n") + "\n").utf8))
    }

    // MARK: operator

    /// True when `header` is `Bearer <operator token>` (constant-time compare).
    public func isOperator(_ header: String?) -> Bool {
        guard let header, header.hasPrefix("Bearer ") else { return false }
        return constantTimeEqual(Array(header.dropFirst(7).utf8), Array(operatorToken.utf8))
    }
}

/// Ferry's version string.
public enum FerryVersion {
    public static let string = "0.1.0"
}

extension ChangeSetError {
    func about(_ h: ChangeSetHeader) -> ChangeSetError {
        var e = self
        e.changeSetID = h.idHex
        e.origin = h.origin.rawValue
        return e
    }
}
