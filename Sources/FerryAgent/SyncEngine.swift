import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Logging

/// What one sync round did.
public struct SyncReport: Sendable, Codable, Equatable {
    public var uploadedChangeSets = 0
    public var uploadedWrites = 0
    public var downloadedWrites = 0
    public var duplicates = 0
    public var retries = 0
    public var hubCursor: UInt64 = 0
    public var pendingWrites = 0
    public var complete = false
}

/// One agent's sync with the hub (DESIGN §7): upload pending change sets in
/// sequence, then download the hub's changes since the cursor. Sealed change
/// sets are stored before they are sent, so a cut connection re-sends the same
/// bytes and loses at most the one in flight; the hub acknowledges by sequence.
public final class SyncEngine: Sendable {
    public let home: AgentHome
    public let store: AgentStore
    public let client: HubClient
    let identity: Identity
    let config: AgentConfig
    let hubSign: SigningPublicKey
    let keys: SessionKeys
    let logger: Logger
    let wall: any WallClock
    /// Adaptive change-set bound in bytes: grows after success, shrinks after failure.
    let budget: BudgetBox

    public init(home: AgentHome, wall: any WallClock = SystemClock(), logger: Logger) throws {
        self.home = home
        config = try home.config()
        store = try home.store(wall: wall)
        identity = try home.identity()
        let hub = try home.hubKeys()
        hubSign = hub.sign
        keys = try identity.kx.clientSessionKeys(server: hub.kx)
        client = HubClient(baseURL: config.hubURL, wall: wall)
        self.logger = logger
        self.wall = wall
        budget = BudgetBox(initial: min(64 * 1024, config.maxChangeSetBytes), max: config.maxChangeSetBytes)
    }

    public func shutdown() async { await client.shutdown() }

    /// One full round: upload everything pending, then download everything new.
    /// Bounded: at most `maxRequests` HTTP requests.
    /// - Throws: ``AgentError`` with what is wrong and what to do; state is kept for the next round.
    @discardableResult
    public func syncOnce(maxRequests: Int = 200) async throws -> SyncReport {
        var report = SyncReport()
        var requests = 0
        var restamps = 0
        try store.setMeta(["last_attempt_ms": String(wall.nowMillis())])
        do {
            try refuseIfCloned()
            // Upload, one frozen change set at a time, strictly in sequence.
            while requests < maxRequests {
                guard let inflight = try freezeNext() else { break }
                requests += 1
                try store.noteAttempt(seqFrom: inflight.seqFrom)
                let answer: HubAnswer
                do {
                    answer = try await client.send(
                        .POST, "/v1/changesets", body: inflight.envelope,
                        headers: ["Content-Type": "application/octet-stream"])
                } catch {
                    budget.shrink()
                    throw AgentError(
                        "cannot reach the hub at \(config.hubURL) (\(error)); the change set stays queued and is re-sent"
                    )
                }
                if answer.status == 200 {
                    // Only an acknowledgement signed by the pinned hub key that covers
                    // the change set releases its writes; anything else (a captive
                    // portal, a proxy page, a forgery) leaves them queued.
                    guard let ack = try? HubJSON.decoder.decode(AckV1.self, from: Data(answer.body)),
                        ack.cursor >= inflight.seqTo, let sig = unhex(ack.signature),
                        hubSign.verify(
                            signature: sig,
                            of: AckAuth.message(
                                agent: config.agentID, changeSet: hex(inflight.id), cursor: ack.cursor,
                                status: ack.status))
                    else {
                        budget.shrink()
                        throw AgentError(
                            "the answer to change set \(inflight.seqFrom)...\(inflight.seqTo) was not a Ferry acknowledgement (is a proxy or login page in the way?); it stays queued"
                        )
                    }
                    try applyNotices(ack, changeSet: inflight.id)
                    try store.acknowledge(upTo: inflight.seqTo)
                    if ack.status == "duplicate" { report.duplicates += 1 }
                    report.uploadedChangeSets += 1
                    report.uploadedWrites += Int(inflight.seqTo - inflight.seqFrom + 1)
                    budget.grow()
                    continue
                }
                try await handleRefusal(answer, inflight: inflight, restamped: &restamps)
                report.retries += 1
            }
            // Download, following `more`.
            while requests < maxRequests {
                requests += 1
                let (writes, more, _) = try await pullOnce()
                report.downloadedWrites += writes
                if !more { break }
            }
            let counts = try store.counts()
            report.hubCursor = counts.hubCursor
            report.pendingWrites = counts.pendingWrites + counts.inFlightWrites
            report.complete = report.pendingWrites == 0
            try store.setMeta(["last_sync_ok_ms": String(wall.nowMillis()), "last_error": nil, "last_error_ms": nil])
            return report
        } catch {
            try? store.setMeta(["last_error": "\(error)", "last_error_ms": String(wall.nowMillis())])
            throw error
        }
    }

    /// Freezes the next change set within the byte budget (halving the write
    /// count until the sealed bytes fit), or returns the one already in flight.
    func freezeNext() throws -> InFlight? {
        if let f = try store.inFlight() { return f }
        var maxWrites = max(1, budget.bytes / 24)
        for _ in 0..<16 {
            do {
                let hubKX = try home.hubKeys().kx.id
                return try store.freeze(maxWrites: maxWrites) { body, ctx in
                    let s = try seal(body, ctx, hubKX: hubKX)
                    if s.envelope.count > budget.bytes && body.writes.count > 1 { throw TooBig() }
                    return (s.header.id, s.envelope)
                }
            } catch is TooBig {
                maxWrites = max(1, maxWrites / 2)
            }
        }
        throw AgentError("cannot fit a change set in \(budget.bytes) bytes")
    }

    struct TooBig: Error {}

    func seal(_ body: ChangeSetBody, _ ctx: FreezeContext, hubKX: [UInt8]) throws -> SealedChangeSet {
        let header = ChangeSetHeader(
            id: randomBytes(16), origin: store.origin, seqFrom: ctx.seqFrom, seqTo: ctx.seqTo, ack: ctx.hubCursor,
            senderKeyID: identity.signing.publicKey.id, recipientKeyID: hubKX, createdHLC: ctx.now,
            compression: .zstd, commune: config.commune)
        return try Envelope.seal(
            header: header, body: body, signer: identity.signing, key: keys.transmit, zstdLevel: Compressor.wireLevel)
    }

    func handleRefusal(_ a: HubAnswer, inflight: InFlight, restamped: inout Int) async throws {
        let code = a.error?.code ?? "http_\(a.status)"
        let message = a.error?.message ?? "HTTP \(a.status)"
        budget.shrink()
        switch code {
        case "out_of_sequence":
            if let expected = a.error?.expectedSeq, expected > inflight.seqTo {
                // The hub says it already has this change set (its answer was lost).
                // The error is not signed: confirm with a signed download, whose
                // header carries the hub's count of this agent's writes.
                let (_, _, applied) = try await pullOnce()
                if applied >= inflight.seqTo {
                    try store.acknowledge(upTo: inflight.seqTo)
                    return
                }
                throw AgentError(
                    "the hub's claim to hold change set \(inflight.seqFrom)...\(inflight.seqTo) was not confirmed; it stays queued"
                )
            }
            throw AgentError(
                "the hub expects sequence \(a.error?.expectedSeq ?? 0) but this agent is at \(inflight.seqFrom): the hub's store may have been restored from an old backup; ask the operator (\(message))"
            )
        case "future_timestamp", "clock_skew":
            // This PC's clock ran ahead: learn the hub's time from a signed
            // download, then re-stamp the queued writes with the corrected clock.
            guard restamped == 0 else {
                throw AgentError(
                    "the hub still refuses this agent's timestamps after correcting them: \(message). Set the PC's date and time"
                )
            }
            restamped += 1
            _ = try? await pullOnce()
            try store.unfreeze(restamp: true)
            return
        case "oversized":
            try store.unfreeze(restamp: false)
            budget.halve()
            return
        case "cloned_replica":
            // SPEC §7.2: another PC writes as this agent. Stop uploading (every
            // write stays here) until this directory is enrolled as its own agent.
            try store.setMeta(["cloned_replica": message, "cloned_replica_ms": String(wall.nowMillis())])
            try refuseIfCloned()
        default:
            if a.status >= 500 || a.status == 429 || a.status == 503 {
                throw AgentError("the hub is unavailable (\(message)); retrying later")
            }
            throw AgentError("the hub refused change set \(inflight.seqFrom)...\(inflight.seqTo): \(message) [\(code)]")
        }
    }

    /// Throws when the hub refused this replica as a copy of another PC's
    /// (`cloned_replica`): nothing is sent again until it is re-enrolled.
    func refuseIfCloned() throws {
        guard try store.meta("cloned_replica") != nil else { return }
        throw AgentError(
            "NOT IN SYNC: the hub refused this PC's changes because this agent directory (\(home.directory)) is a copy of another PC's, and both wrote as agent \(config.agentID). Nothing is sent until this copy is enrolled as its own agent; every change made here is kept. Ask the hub operator for a new token, then run: ferry agent enroll \(config.hubURL) NEW_TOKEN --dir \(home.directory)"
        )
    }

    /// One download request. Returns the writes applied, whether more wait, and
    /// the hub's signed count of this agent's writes it has applied (header ack).
    func pullOnce() async throws -> (Int, Bool, UInt64) {
        let since = try store.counts().hubCursor
        let maxBytes = budget.bytes * 4
        let t = HybridLogicalClock.corrected(
            localMillis: wall.nowMillis(), offset: Int64(try store.meta("clock_offset_ms") ?? "0") ?? 0)
        let sig = identity.signing.sign(
            PullAuth.message(agent: config.agentID, since: since, maxBytes: maxBytes, timeMs: t))
        let a: HubAnswer
        do {
            a = try await client.send(
                .GET, "/v1/changes?since=\(since)&max_bytes=\(maxBytes)",
                headers: ["X-Ferry-Agent": config.agentID, "X-Ferry-Time": String(t), "X-Ferry-Signature": hex(sig)])
        } catch {
            budget.shrink()
            throw AgentError("cannot reach the hub at \(config.hubURL) to download (\(error)); will retry")
        }
        guard a.status == 200 else {
            throw AgentError(
                "the hub refused the download: \(a.error?.message ?? "HTTP \(a.status)") [\(a.error?.code ?? "")]")
        }
        let opened: OpenedChangeSet
        do {
            opened = try Envelope.open(
                a.body, recipientKeyID: identity.kx.publicKey.id, author: hubSign, key: keys.receive, normalize: false)
        } catch {
            throw AgentError(
                "the hub's answer failed verification (\(error)): it was altered in transit or the hub's keys changed")
        }
        guard opened.header.origin == .hub, opened.header.seqFrom == since + 1 else {
            throw AgentError("the hub's answer starts at \(opened.header.seqFrom), expected \(since + 1); will retry")
        }
        // The hub's signed header carries its time: the only clock source trusted.
        learnTime(hubMs: opened.header.createdHLC.millis, sentMs: a.sentMs, receivedMs: a.receivedMs)
        let n = try store.applyRemote(opened.body, cursor: opened.header.seqTo)
        return (n, opened.header.more, opened.header.ack)
    }

    /// Applies the hub's signed notices about quarantined writes (SPEC §8.9): the
    /// replica takes the hub's accepted value back and keeps the reason. Notices
    /// that do not verify are ignored (the acknowledgement itself was verified).
    func applyNotices(_ ack: AckV1, changeSet: [UInt8]) throws {
        guard let n = ack.notices, let sig = unhex(n.signature),
            hubSign.verify(
                signature: sig, of: QuarantineAuth.message(agent: config.agentID, changeSet: hex(changeSet), notices: n)
            ),
            let acceptedBytes = unhex(n.accepted),
            let accepted = try? BodyCodec.decode(acceptedBytes, normalize: false)
        else { return }
        var notices: [QuarantineNotice] = []
        for r in n.refused {
            guard let rid = RecordID(r.record), let id = QuarantineAuth.writeID(r.write) else { continue }
            let refused = FieldWrite(record: rid, field: r.field, id: id, value: .null)
            let winner = accepted.writes.first { $0.record == rid && $0.field == r.field }
            notices.append(QuarantineNotice(refused: refused, reason: r.reason, accepted: winner))
        }
        let fixed = try store.applyQuarantine(notices)
        logger.warning(
            "the hub quarantined values written here",
            metadata: ["ferry.quarantined": "\(n.refused.count)", "ferry.corrected": "\(fixed)"])
    }

    /// Keeps the clock offset to the hub (DESIGN §4): hub time (from a signed
    /// change-set header) minus local time at the middle of the request.
    func learnTime(hubMs: UInt64, sentMs: UInt64, receivedMs: UInt64) {
        let offset = HybridLogicalClock.offset(hubMillis: hubMs, localMillis: sentMs / 2 + receivedMs / 2)
        try? store.setMeta(["clock_offset_ms": String(offset), "last_contact_ms": String(receivedMs)])
    }
}

/// The adaptive change-set bound (DESIGN §5).
final class BudgetBox: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var value: Int
    private let maxValue: Int
    static let minValue = 8 * 1024

    init(initial: Int, max: Int) {
        value = initial
        maxValue = max
    }

    var bytes: Int { lock.withLock { value } }
    func grow() { lock.withLock { value = Swift.min(maxValue, value * 3 / 2) } }
    func shrink() { lock.withLock { value = Swift.max(Self.minValue, value * 2 / 3) } }
    func halve() { lock.withLock { value = Swift.max(Self.minValue, value / 2) } }
}
