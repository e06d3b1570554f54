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
        _ status: Int, code: String, _ message: String, expectedSeq: UInt64? = nil, changeSet: String? = nil,
        problems: [ProblemV1]? = nil
    ) -> HubReply {
        json(
            status,
            ErrorBody(
                error: .init(
                    code: code, message: message, expectedSeq: expectedSeq, changeSet: changeSet, problems: problems)))
    }
}

/// How many sealed bytes a download page's size estimate turns into: the hub
/// estimates before encoding (SQLiteHubStore.estimatedSize), but the agent asks
/// for sealed bytes. The ratio is measured on every page big enough to tell
/// and kept as a moving average; it starts near what land records measured
/// (3,220 sample records, 48–96 KiB pages: ~0.05–0.08 sealed bytes per
/// estimated byte, 4–5 sealed bytes per write, with zstd 19).
final class PageSizeCalibration: Sendable {
    private let ratio = Mutex<Double>(0.07)
    /// Fixed envelope bytes (header, signature, nonce, tag) not covered by the estimate.
    static let overhead = 200

    /// The estimate budget that should seal to about `sealed` bytes.
    func estimateBudget(sealed: Int) -> Int {
        let r = ratio.withLock { $0 }
        let budget = Double(max(sealed - Self.overhead, 1024)) / r
        // Bounds the memory one page can take at the hub, whatever the ratio.
        return Int(min(budget, 16 * 1024 * 1024))
    }

    /// A page of `estimated` estimate units sealed to `sealed` bytes.
    func observe(estimated: Int, sealed: Int) {
        // Small pages are all overhead and say nothing about the ratio.
        guard estimated >= 16 * 1024 else { return }
        let sample = Double(max(sealed - Self.overhead, 1)) / Double(estimated)
        ratio.withLock { $0 = min(2, max(0.02, $0 * 0.5 + sample * 0.5)) }
    }
}

/// The hub's request handling, independent of the HTTP server (DESIGN §8).
public final class HubService: Sendable {
    public let store: any HubServiceStore
    public let identity: Identity
    public let operatorToken: String
    public let limits: EnvelopeLimits
    let pipeline: IngestPipeline
    let metrics = HubMetrics()
    /// Sealed bytes per estimated byte of a download page, measured (SPEC §9.4).
    let pageRatio = PageSizeCalibration()
    /// Envelopes arriving in pieces over resumable uploads (SPEC §9.10).
    public let partialUploads = PartialUploads()
    /// Sealed download pages kept byte-identical until acknowledged, for `Range` (SPEC §9.12).
    public let pageCache = PageCache()
    let logger: Logger
    let started = Date()
    /// Operator accounts, console sessions and login links (Accounts.swift).
    public let access: OperatorAccess

    public init(
        store: any HubServiceStore, identity: Identity, operatorToken: String, limits: EnvelopeLimits = .standard,
        logger: Logger, passwordCost: PasswordHash.Cost = .interactive
    ) {
        self.store = store
        self.identity = identity
        self.operatorToken = operatorToken
        self.limits = limits
        self.logger = logger
        pipeline = IngestPipeline(store: store, identity: identity, limits: limits)
        access = OperatorAccess(
            store: store,
            bootstrapToken: operatorToken, cost: passwordCost, now: { [store] in store.nowMillis() })
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
            // SPEC §6.3: a small-order Ed25519 key proves nothing, and a low-order X25519
            // key gives no session keys; refuse them now rather than fail every upload.
            guard req.signKey.isValidPoint else {
                return .error(
                    400, code: "bad_key",
                    "sign_public_key is not a valid Ed25519 point of large order: generate the keys with ferry agent enroll"
                )
            }
            guard (try? identity.kx.serverSessionKeys(client: req.kxKey)) != nil else {
                return .error(
                    400, code: "bad_key",
                    "kx_public_key is not a usable X25519 key (low order): generate the keys with ferry agent enroll")
            }
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
            if let f = storeFault(error) { return .error(f.httpStatus, code: f.code.rawValue, f.message) }
            return .error(400, code: "bad_request", "\(error)")
        }
    }

    /// POST /v1/changesets: open → verify → status, scope, sequence → validate → merge → ack.
    public func upload(_ bytes: [UInt8]) -> HubReply {
        let start = ContinuousClock.now
        defer { metrics.observe("ferry_ingest_duration_seconds", since: start) }
        metrics.add("ferry_changesets_received_total")
        metrics.add("ferry_bytes_received_total", "", Double(bytes.count))
        var reply = uploadInner(bytes)
        reply.headers.merge(timeHeader) { a, _ in a }
        return reply
    }

    private func uploadInner(_ bytes: [UInt8]) -> HubReply {
        var authenticated = false
        do {
            let o = try pipeline.ingest(envelope: bytes, authenticated: &authenticated)
            let r = o.result
            metrics.add("ferry_changesets_total", "status=\"\(r.status)\"")
            metrics.add("ferry_writes_merged_total", "", Double(r.merged))
            metrics.add("ferry_writes_quarantined_total", "", Double(r.quarantined))
            if r.status == "duplicate" {
                try? store.noteContact(agent: o.agent.id, skewMs: nil, ackedCursor: nil, error: nil)
            }
            logger.info(
                "change set ingested",
                metadata: [
                    "ferry.changeset.id": "\(o.header.idHex)", "ferry.agent": "\(o.agent.id)",
                    "ferry.status": "\(r.status)", "ferry.merged": "\(r.merged)",
                    "ferry.quarantined": "\(r.quarantined)",
                ])
            return .json(200, acknowledgement(o))
        } catch {
            // Only an authenticated author's refusal is recorded against it, so a
            // forger cannot make a silent agent look alive.
            let origin = (try? Envelope.peek(bytes, limits: limits))?.origin.rawValue
            if authenticated, let origin, let a = try? store.agent(id: origin) {
                try? store.noteContact(agent: a.id, skewMs: nil, ackedCursor: nil, error: "\(error)")
            }
            // The claimed origin is named in the log even when unauthenticated (marked so).
            return refused(error, agent: origin.map { authenticated ? $0 : "\($0.prefix(80)) (unverified)" })
        }
    }

    /// The signed acknowledgement of an ingested change set (SPEC §9.3), with the
    /// signed quarantine notices when writes were refused (SPEC §8.9).
    func acknowledgement(_ o: IngestPipeline.Outcome) -> AckV1 {
        let r = o.result
        let cs = o.header.idHex
        let signature = identity.signing.sign(
            AckAuth.message(agent: o.agent.id, changeSet: cs, cursor: r.cursor, status: r.status))
        var ack = AckV1(
            status: r.status, cursor: r.cursor, merged: r.merged, quarantined: r.quarantined,
            conflictsOpen: r.conflictsOpen, signature: hex(signature))
        if !o.notices.isEmpty { ack.notices = signedNotices(o.notices, for: o.agent, context: cs) }
        return ack
    }

    /// The hub's signed notices of `notices` for `agent` (SPEC §8.9), signed under
    /// `context`: the change set's id in an ack, the bundle's in a bundle (§12.4).
    func signedNotices(_ notices: [QuarantineNotice], for agent: AgentInfo, context: String) -> QuarantineNoticesV1 {
        let accepted = notices.compactMap(\.accepted)
        var scopes: [RecordID: RecordScope] = [:]
        for w in accepted { scopes[w.record] = RecordScope(formID: "", formVersion: 0, commune: agent.commune) }
        var signed = QuarantineNoticesV1(
            refused: notices.map {
                .init(
                    record: $0.refused.record.description, field: $0.refused.field,
                    write: QuarantineAuth.text($0.refused.id), reason: $0.reason)
            },
            accepted: hex(BodyCodec.encode(ChangeSetBody(writes: accepted, scopes: scopes))), signature: "")
        signed.signature = hex(
            identity.signing.sign(QuarantineAuth.message(agent: agent.id, changeSet: context, notices: signed)))
        return signed
    }

    func refused(_ error: any Error, agent: String? = nil) -> HubReply {
        let who = agent ?? "-"
        switch error {
        case let e as ChangeSetError:
            metrics.add("ferry_changesets_refused_total", "code=\"\(e.code.rawValue)\"")
            logger.warning(
                "change set refused",
                metadata: [
                    "ferry.code": "\(e.code.rawValue)", "ferry.changeset.id": "\(e.changeSetID ?? "-")",
                    "ferry.agent": "\(who)",
                ])
            let status =
                switch e.code {
                case .oversized: 413
                case .outOfSequence, .replayed, .clonedReplica: 409
                case .unknownKey, .wrongKey, .tampered, .badSignature: 401
                case .scope: 403
                default: 400
                }
            return .error(
                status, code: e.code.rawValue, e.description, expectedSeq: e.expectedSeq, changeSet: e.changeSetID)
        case let e as HubError:
            metrics.add("ferry_changesets_refused_total", "code=\"\(e.code.rawValue)\"")
            logger.warning(
                "change set refused",
                metadata: ["ferry.code": "\(e.code.rawValue)", "ferry.reason": "\(e.message)", "ferry.agent": "\(who)"])
            let status =
                switch e.code {
                case .revoked, .scope: 403
                case .cursorAhead: 409
                default: 400
                }
            return .error(status, code: e.code.rawValue, e.message)
        case _ where storeFault(error) != nil:
            let f = storeFault(error) ?? StoreFault(.ioError, path: store.location)
            metrics.add("ferry_store_faults_total", "code=\"\(f.code.rawValue)\"")
            logger.error("store fault", metadata: ["ferry.code": "\(f.code.rawValue)", "ferry.reason": "\(f.message)"])
            return .error(f.httpStatus, code: f.code.rawValue, f.message)
        default:
            metrics.add("ferry_internal_errors_total")
            logger.error("internal error", metadata: ["ferry.error": "\(error)", "ferry.agent": "\(who)"])
            return .error(
                500, code: "internal",
                "the hub failed to process the request (\(error)); it was not applied, retry later")
        }
    }

    /// GET /v1/changes?since=C&max_bytes=B with the signed pull headers; with
    /// `range` and `ifRange` (already parsed, SPEC §9.12) a resume of a kept page.
    public func pull(
        agentID: String?, since: UInt64?, maxBytes: UInt64?, timeMs: UInt64?, signature: String?,
        range: ByteRange? = nil, ifRange: String? = nil
    ) -> HubReply {
        let start = ContinuousClock.now
        defer { metrics.observe("ferry_pull_duration_seconds", since: start) }
        var reply = pullInner(
            agentID: agentID, since: since, maxBytes: maxBytes, timeMs: timeMs, signature: signature, range: range,
            ifRange: ifRange)
        countPullRefusal(reply, agent: agentID)
        reply.headers.merge(timeHeader) { a, _ in a }
        return reply
    }

    private func pullInner(
        agentID: String?, since: UInt64?, maxBytes: UInt64?, timeMs: UInt64?, signature: String?, range: ByteRange?,
        ifRange: String?
    ) -> HubReply {
        guard let agentID, let since, let timeMs, let sig = signature.flatMap(unhex) else {
            return .error(
                400, code: "bad_request", "a pull needs since, X-Ferry-Agent, X-Ferry-Time and X-Ferry-Signature")
        }
        let requested = maxBytes ?? 256 * 1024
        // The signature covers what the agent asked for; the hub then applies its own bounds.
        let maxBytes = Int(min(max(requested, 4096), UInt64(limits.maxEnvelopeBytes / 2)))
        do {
            let agent: AgentInfo
            switch try signedAgent(
                agentID, signature: sig,
                message: PullAuth.message(agent: agentID, since: since, maxBytes: requested, timeMs: timeMs),
                what: "pull request")
            {
            case .success(let a): agent = a
            case .failure(let refusal): return refusal.reply
            }
            let now = store.nowMillis()
            let skew = Self.skew(timeMs, now)
            // SPEC §9.12: a pull at `since` acknowledges the pages kept below it;
            // a resume of the page kept at `since` is served from its bytes.
            pageCache.acknowledge(agent: agentID, cursor: since, nowMs: now)
            if let range, let ifRange, let kept = pageCache.page(agent: agentID, since: since, nowMs: now),
                kept.etag == ifRange
            {
                try? store.noteContact(agent: agentID, skewMs: skew, ackedCursor: since, error: nil)
                return servedRange(kept, range)
            }
            // A skewed clock is recorded, not refused: a download changes nothing
            // at the hub, and its signed answer is how the agent learns the
            // hub's time and corrects its clock.
            // `max_bytes` is in sealed bytes; the store budgets in its own estimate,
            // which runs ~10× the sealed size on land records (zstd).
            let (sealed, page) = try sealedPage(for: agent, since: since, maxBytes: maxBytes)
            // A download only reads: it still works while the disk is full or read-only.
            try? store.noteContact(agent: agentID, skewMs: skew, ackedCursor: since, error: nil)
            metrics.add("ferry_pulls_total")
            if page.body.writes.isEmpty && page.body.catalog.isEmpty {
                // Nothing for this agent up to the head: it is up to date. The
                // answer is still a signed change set, so the cursor and the
                // hub's time cannot be forged.
                try? store.noteContact(agent: agentID, skewMs: skew, ackedCursor: page.seqTo, error: nil)
            }
            metrics.add("ferry_bytes_sent_total", "", Double(sealed.envelope.count))
            let pageHeaders = [
                "X-Ferry-Cursor": String(page.seqTo), "X-Ferry-Head": String(page.head),
                "X-Ferry-Remaining": String(page.remaining),
            ]
            return keptPage(agent: agentID, since: since, envelope: sealed.envelope, headers: pageHeaders, nowMs: now)
        } catch {
            return refused(error)
        }
    }

    /// A refusal of a signed agent request: its status, code and message.
    struct AgentRefusal: Error {
        var status: Int
        var code: String
        var message: String
        var reply: HubReply { .error(status, code: code, message) }
    }

    /// The enrolled, active agent `id` whose key signed `message` (SPEC §9.4, §9.10,
    /// §9.13), or the typed refusal: 401 `unknown_agent`, 403 `revoked`, 401 `bad_signature`.
    func signedAgent(_ id: String, signature: [UInt8], message: [UInt8], what: String) throws -> Result<
        AgentInfo, AgentRefusal
    > {
        guard let agent = try store.agent(id: id) else {
            return .failure(
                AgentRefusal(
                    status: 401, code: "unknown_agent",
                    message: "agent \(id) is not enrolled here: enroll it with a new token"))
        }
        guard agent.isActive else {
            return .failure(
                AgentRefusal(
                    status: 403, code: "revoked", message: "agent \(id) was revoked: re-enroll with a new token"))
        }
        guard try SigningPublicKey(bytes: agent.signPublicKey).verify(signature: signature, of: message) else {
            return .failure(
                AgentRefusal(
                    status: 401, code: "bad_signature",
                    message: "the \(what)'s signature does not match agent \(id)'s key"))
        }
        return .success(agent)
    }

    /// `theirs − ours` in milliseconds, clamped to Int64 (an agent may send any 64-bit time).
    static func skew(_ theirs: UInt64, _ ours: UInt64) -> Int64 {
        theirs >= ours ? Int64(clamping: theirs - ours) : -Int64(clamping: ours - theirs)
    }

    /// A storage failure behind `error` (disk full, read-only, damaged), typed (SPEC §9.5).
    func storeFault(_ error: any Error) -> StoreFault? { store.fault(error) }

    /// GET /v1/health: 200 "ok", or 503 "degraded" with `store_writable` false
    /// and the reason while the store cannot take writes (SPEC §9.5).
    public func health() -> HubReply {
        struct Health: Codable {
            var status: String
            var version: String
            var timeMs: UInt64
            var streamSeq: UInt64
            var storeWritable: Bool
            var problem: String?
            var problemCode: String?
        }
        let seq = (try? store.streamSeq()) ?? 0
        let problem = store.writeProblem()
        var r = HubReply.json(
            problem == nil ? 200 : 503,
            Health(
                status: problem == nil ? "ok" : "degraded", version: FerryVersion.string, timeMs: store.nowMillis(),
                streamSeq: seq, storeWritable: problem == nil, problem: problem?.message,
                problemCode: problem?.code.rawValue))
        r.headers = timeHeader
        return r
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
    public static let string = SoftwareVersion.current.description
}
