import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Logging
import Synchronization

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
    /// True when a change set was acknowledged or a download page applied.
    public var progress = false
    /// True when the hub's last signed download answer said more changes wait.
    public var moreAtHub = false
    /// The hub's stream head as it last said (informational `X-Ferry-Head`).
    public var hubHead: UInt64?
}

/// A round's report and, if it failed, why.
public struct SyncRoundResult: Sendable {
    public var report: SyncReport
    public var error: AgentError?
    /// True when the round ended at its request bound with work left (and no error).
    public var stoppedAtBound: Bool
}

/// One agent's sync with the hub (DESIGN §7): upload pending change sets in
/// sequence, then download the hub's changes since the cursor. Sealed change
/// sets are stored before they are sent, so a cut connection re-sends the same
/// bytes and loses at most the one in flight; the hub acknowledges by sequence.
public final class SyncEngine: Sendable {
    public let home: AgentHome
    public let store: AgentStore
    /// The hub addresses and the client for the one in use (failover, SPEC §9.10).
    let route: Mutex<HubRoute>
    /// The client for the hub address in use.
    public var client: HubClient { route.withLock { $0.client } }
    let identity: Identity
    let config: AgentConfig
    let hubSign: SigningPublicKey
    let keys: SessionKeys
    let logger: Logger
    let wall: any WallClock
    /// Change-set and page sizes from measured throughput and bytes per write (SPEC §9.7).
    let sizing: Mutex<TransferSizeStateMachine>

    public init(home: AgentHome, wall: any WallClock = SystemClock(), logger: Logger) throws {
        self.home = home
        config = try home.config()
        store = try home.store(wall: wall)
        identity = try home.identity()
        let hub = try home.hubKeys()
        hubSign = hub.sign
        keys = try identity.kx.clientSessionKeys(server: hub.kx)
        let urls = Self.hubURLs(config)
        route = Mutex(
            HubRoute(
                urls: urls, active: 0,
                client: HubClient(
                    baseURL: urls.first ?? config.hubURL, wall: wall, link: config.link ?? LinkSettings(),
                    retryConnect: urls.count == 1)))
        self.logger = logger
        self.wall = wall
        let link = config.link ?? LinkSettings()
        let maxBytes = min(link.maxTransferBytes ?? 96 * 1024, config.maxChangeSetBytes)
        let policy = TransferSizeStateMachine.Policy(
            targetSeconds: link.transferTargetSeconds ?? 10, maxBytes: maxBytes,
            minBytes: min(link.minTransferBytes ?? 8 * 1024, maxBytes), initialBytes: min(48 * 1024, maxBytes),
            maxWrites: link.maxWritesPerChangeSet ?? 16_384)
        // Figures measured by earlier runs, so a restarted agent does not start blind.
        let measuredRate = (try? store.meta("link_throughput_bps")).flatMap { $0.flatMap(Double.init) }
        let measuredPerWrite = (try? store.meta("bytes_per_write")).flatMap { $0.flatMap(Double.init) }
        sizing = Mutex(
            TransferSizeStateMachine(policy: policy, throughput: measuredRate, bytesPerWrite: measuredPerWrite))
    }

    /// The first hub URL to use: `FERRY_HUB_URL` when set, else agent.json's.
    public static func hubURL(_ config: AgentConfig) -> String { hubURLs(config).first ?? config.hubURL }

    /// The hub URLs in order: `FERRY_HUB_URL` alone when set, else agent.json's list.
    public static func hubURLs(_ config: AgentConfig) -> [String] {
        if let env = ProcessInfo.processInfo.environment["FERRY_HUB_URL"], !env.isEmpty {
            return [env.hasSuffix("/") ? String(env.dropLast()) : env]
        }
        let list = config.hubURLs
        return list.isEmpty ? [config.hubURL] : list
    }

    /// The retry policy from agent.json (`interval` overrides the sync interval).
    public func schedulePolicy(interval: Double? = nil) -> SyncScheduleStateMachine.Policy {
        let link = config.link ?? LinkSettings()
        return SyncScheduleStateMachine.Policy(
            interval: interval ?? config.syncIntervalSeconds, retryAfterProgress: link.retryAfterProgressSeconds ?? 1,
            backoffMin: link.backoffMinSeconds ?? 2, backoffMax: link.backoffMaxSeconds ?? 60)
    }

    public func shutdown() async { await client.shutdown() }

    /// Records the next planned attempt for `ferry status`.
    public func noteNextAttempt(ms: UInt64?) {
        try? store.setMeta(["next_attempt_ms": ms.map(String.init)])
    }

    /// Marks a request in progress in the replica (for `ferry status`) while `body` runs.
    func request<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        try? store.setMeta(["request_started_ms": String(wall.nowMillis()), "request_what": what])
        defer { try? store.setMeta(["request_started_ms": nil, "request_what": nil]) }
        return try await body()
    }

    /// One full round: upload everything pending, then download everything new.
    /// Bounded: at most `maxRequests` HTTP requests.
    /// - Throws: ``AgentError`` with what is wrong and what to do; state is kept for the next round.
    @discardableResult
    public func syncOnce(maxRequests: Int = 200) async throws -> SyncReport {
        let r = await syncRound(maxRequests: maxRequests)
        if let e = r.error { throw e }
        return r.report
    }

    /// One round, as ``syncOnce(maxRequests:)``, but returns the failure with the
    /// report, so the loop can tell a round that moved data before it failed
    /// from one in which nothing moved.
    public func syncRound(maxRequests: Int = 200) async -> SyncRoundResult {
        await followHubURL()
        await failBackIfAnswering()
        return await roundWithFailover(maxRequests: maxRequests)
    }

    /// One round against the hub address in use (``syncRound(maxRequests:)`` adds failover).
    func roundAtActiveHub(maxRequests: Int) async -> SyncRoundResult {
        var report = SyncReport()
        var requests = 0
        var restamps = 0
        do {
            try refuseIfCloned()
            try store.setMeta(["last_attempt_ms": String(wall.nowMillis()), Self.partialGrewKey: nil])
            // Upload, one frozen change set at a time, strictly in sequence.
            var uploaded = false
            while requests < maxRequests {
                guard let inflight = try freezeNext() else {
                    uploaded = true
                    break
                }
                requests += 1
                try store.noteAttempt(seqFrom: inflight.seqFrom)
                let answer: HubAnswer
                do {
                    answer = try await request("upload of changes \(inflight.seqFrom)...\(inflight.seqTo)") {
                        try await sendChangeSet(inflight)
                    }
                } catch {
                    sizing.withLock { $0.failed(.upload) }
                    throw AgentError(
                        "cannot reach the hub at \(client.baseURL) (\(Self.plain(error))); the change set stays queued and is re-sent",
                        kind: .network)
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
                        sizing.withLock { $0.failed(.upload) }
                        throw AgentError(
                            "the answer to change set \(inflight.seqFrom)...\(inflight.seqTo) was not a Ferry acknowledgement (is a proxy or login page in the way?); it stays queued",
                            kind: .notFerry)
                    }
                    try applyNotices(ack, changeSet: inflight.id)
                    try store.acknowledge(upTo: inflight.seqTo)
                    // A signed acknowledgement is contact with the hub.
                    try store.setMeta([
                        "last_upload_ack_ms": String(answer.receivedMs), "last_contact_ms": String(answer.receivedMs),
                        Self.uploadStartedKey: nil,
                        "hub_conflicts_open": String(max(0, ack.conflictsOpen)),
                    ])
                    if ack.status == "duplicate" { report.duplicates += 1 }
                    report.uploadedChangeSets += 1
                    report.uploadedWrites += Int(inflight.seqTo - inflight.seqFrom + 1)
                    report.progress = true
                    let next = sizing.withLock {
                        $0.succeeded(
                            .upload, bytes: inflight.envelope.count + answer.body.count,
                            millis: answer.receivedMs &- answer.sentMs)
                        return $0
                    }
                    logger.debug(
                        "change set acknowledged",
                        metadata: [
                            "ferry.seq": "\(inflight.seqFrom)...\(inflight.seqTo)",
                            "ferry.bytes": "\(inflight.envelope.count)",
                            "ferry.ms": "\(answer.receivedMs &- answer.sentMs)",
                            "ferry.next_bytes": "\(next.bytes(.upload))",
                            "ferry.throughput": "\(next.throughput.map { Int($0) } ?? 0)",
                            "ferry.bytes_per_write": "\(next.bytesPerWrite)",
                        ])
                    continue
                }
                try await handleRefusal(answer, inflight: inflight, restamped: &restamps)
                report.retries += 1
            }
            // Download, following `more`.
            var downloaded = false
            while uploaded && requests < maxRequests {
                requests += 1
                let page = try await pullOnce()
                report.downloadedWrites += page.writes
                report.progress = report.progress || page.advanced
                report.moreAtHub = page.more
                report.hubHead = page.head
                if !page.more {
                    downloaded = true
                    break
                }
            }
            if uploaded && downloaded {
                await refreshCommuneConflicts(
                    roundMovedWrites: report.uploadedWrites > 0 || report.downloadedWrites > 0)
            }
            let counts = try store.counts()
            report.hubCursor = counts.hubCursor
            report.pendingWrites = counts.pendingWrites + counts.inFlightWrites
            report.complete = report.pendingWrites == 0 && downloaded
            var meta: [String: String?] = ["last_error": nil, "last_error_ms": nil, "last_error_kind": nil]
            if uploaded && downloaded { meta["last_sync_ok_ms"] = String(wall.nowMillis()) }
            try store.setMeta(meta.merging(measuredMeta()) { a, _ in a })
            return SyncRoundResult(report: report, error: nil, stoppedAtBound: !(uploaded && downloaded))
        } catch {
            let e = error as? AgentError ?? AgentError("\(error)", kind: .local)
            // Bytes added to a partial page before a cut are progress (SPEC §9.9, §9.12).
            report.progress = report.progress || takePartialProgress()
            var meta: [String: String?] = [
                "last_error": e.description, "last_error_ms": String(wall.nowMillis()),
                "last_error_kind": e.kind.description,
            ]
            meta.merge(measuredMeta()) { a, _ in a }
            try? store.setMeta(meta)
            if let counts = try? store.counts() {
                report.hubCursor = counts.hubCursor
                report.pendingWrites = counts.pendingWrites + counts.inFlightWrites
            }
            return SyncRoundResult(report: report, error: e, stoppedAtBound: false)
        }
    }

    /// The link figures measured so far, kept across restarts.
    func measuredMeta() -> [String: String?] {
        let s = sizing.withLock { $0 }
        return [
            "link_throughput_bps": s.throughput.map { String(Int($0)) }, "bytes_per_write": String(s.bytesPerWrite),
        ]
    }

    /// An HTTP client error in words a clerk can read.
    static func plain(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("connectTimeout") { return "connecting timed out" }
        if text.contains("readTimeout") || text.contains("deadlineExceeded") { return "the hub stopped answering" }
        if text.contains("writeTimeout") { return "sending stalled" }
        if text.contains("connectionRefused") || text.contains("Connection refused") {
            return "nothing answers at that address"
        }
        if text.contains("remoteConnectionClosed") { return "the connection was cut" }
        return text
    }

    /// Freezes the next change set within the byte budget (halving the write
    /// count until the sealed bytes fit), or returns the one already in flight.
    /// With `alongside`, freezes a new change set even when others are in flight
    /// (an offline bundle, SPEC §12), and returns nil when nothing is left to freeze.
    func freezeNext(alongside: Bool = false) throws -> InFlight? {
        if !alongside, let f = try store.inFlight() { return f }
        let (budgetBytes, writes) = sizing.withLock { ($0.bytes(.upload), $0.writesPerChangeSet) }
        var maxWrites = writes
        for _ in 0..<16 {
            do {
                let hubKX = try home.hubKeys().kx.id
                var sealedWrites = 0
                let frozen = try store.freeze(maxWrites: maxWrites, alongside: alongside) { body, ctx in
                    let s = try seal(body, ctx, hubKX: hubKX)
                    if s.envelope.count > budgetBytes && body.writes.count > 1 { throw TooBig() }
                    sealedWrites = body.writes.count
                    return (s.header.id, s.envelope)
                }
                if let frozen { sizing.withLock { $0.sealed(bytes: frozen.envelope.count, writes: sealedWrites) } }
                return frozen
            } catch is TooBig {
                maxWrites = max(1, maxWrites / 2)
            }
        }
        throw AgentError("cannot fit a change set in \(budgetBytes) bytes", kind: .local)
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
        sizing.withLock { $0.failed(.upload) }
        switch code {
        case "out_of_sequence":
            if let expected = a.error?.expectedSeq, expected > inflight.seqTo {
                // The hub says it already has this change set (its answer was lost).
                // The error is not signed: confirm with a signed download, whose
                // header carries the hub's count of this agent's writes.
                let applied = try await pullOnce().applied
                if applied >= inflight.seqTo {
                    try store.acknowledge(upTo: inflight.seqTo)
                    return
                }
                throw AgentError(
                    "the hub's claim to hold change set \(inflight.seqFrom)...\(inflight.seqTo) was not confirmed; it stays queued",
                    kind: .sequence)
            }
            throw AgentError(
                "the hub expects sequence \(a.error?.expectedSeq ?? 0) but this agent is at \(inflight.seqFrom): the hub's store may have been restored from an old backup; ask the operator (\(message))",
                kind: .sequence)
        case "future_timestamp", "clock_skew":
            // This PC's clock ran ahead: learn the hub's time from a signed
            // download, then re-stamp the queued writes with the corrected clock.
            guard restamped == 0 else {
                throw AgentError(
                    "the hub still refuses this agent's timestamps after correcting them: \(message). Set the PC's date and time",
                    kind: .clock)
            }
            restamped += 1
            _ = try? await pullOnce()
            try store.unfreeze(restamp: true)
            return
        case "oversized":
            try store.unfreeze(restamp: false)
            sizing.withLock { $0.halveUpload() }
            return
        case "agent_too_old":
            // SPEC §9.1.1: nothing is sent until this PC's software is updated; the
            // frozen change set and every queued write stay as they are.
            throw AgentError("the hub needs newer software: \(message)", kind: .update)
        case "cloned_replica":
            // SPEC §7.2: another PC writes as this agent. Stop uploading (every
            // write stays here) until this directory is enrolled as its own agent.
            try store.setMeta(["cloned_replica": message, "cloned_replica_ms": String(wall.nowMillis())])
            try refuseIfCloned()
        default:
            if a.status >= 500 || a.status == 429 || a.status == 503 {
                throw AgentError("the hub is unavailable (\(message)); retrying later", kind: .hubUnavailable)
            }
            throw AgentError(
                "the hub refused change set \(inflight.seqFrom)...\(inflight.seqTo): \(message) [\(code)]",
                kind: code == "revoked" ? .revoked : .refused)
        }
    }

    /// Throws when the hub refused this replica as a copy of another PC's
    /// (`cloned_replica`): nothing is sent again until it is re-enrolled.
    func refuseIfCloned() throws {
        guard try store.meta("cloned_replica") != nil else { return }
        throw AgentError(
            "NOT IN SYNC: the hub refused this PC's changes because this agent directory (\(home.directory)) is a copy of another PC's, and both wrote as agent \(config.agentID). Nothing is sent until this copy is enrolled as its own agent; every change made here is kept. Ask the hub operator for a new token, then run: ferry agent enroll \(config.hubURL) NEW_TOKEN --dir \(home.directory)",
            kind: .cloned)
    }

    /// What one download request did.
    struct Page {
        /// Fields whose winner changed.
        var writes: Int
        /// Whether the hub said more changes wait (signed header).
        var more: Bool
        /// The hub's signed count of this agent's writes it has applied (header ack).
        var applied: UInt64
        /// True when the page moved the cursor or changed a field.
        var advanced: Bool
        /// The hub's stream head, as its informational `X-Ferry-Head` says, or the
        /// page's end when the page reached the head.
        var head: UInt64?
    }

    /// One download request, sized by the measured link (SPEC §9.4, §9.7),
    /// resumed from a partial page when a cut left one (SPEC §9.12).
    func pullOnce() async throws -> Page {
        do {
            return try await pullOnce(resume: true)
        } catch let e as ResumedPageFailed {
            // The assembled page did not open: drop it and ask for it whole, once.
            logger.warning("a resumed download page did not open; fetching it whole", metadata: ["ferry.error": "\(e)"])
            dropPartial()
            return try await pullOnce(resume: false)
        }
    }

    struct ResumedPageFailed: Error, CustomStringConvertible {
        var description: String
    }

    func pullOnce(resume: Bool) async throws -> Page {
        let since = try store.counts().hubCursor
        let maxBytes = sizing.withLock { $0.bytes(.download) }
        let t = HybridLogicalClock.corrected(
            localMillis: wall.nowMillis(), offset: Int64(try store.meta("clock_offset_ms") ?? "0") ?? 0)
        let sig = identity.signing.sign(
            PullAuth.message(agent: config.agentID, since: since, maxBytes: maxBytes, timeMs: t))
        let fetched: FetchedPage
        do {
            fetched = try await request("download of hub changes after #\(since)") {
                try await fetchPage(
                    since: since, path: "/v1/changes?since=\(since)&max_bytes=\(maxBytes)",
                    headers: [
                        "X-Ferry-Agent": config.agentID, "X-Ferry-Time": String(t), "X-Ferry-Signature": hex(sig),
                    ], maxBytes: maxBytes, resume: resume)
            }
        } catch let e as RangeMismatch {
            sizing.withLock { $0.failed(.download) }
            throw AgentError(
                "the hub's partial answer was not the part asked for (\(e)); the page will be fetched whole",
                kind: .verification)
        } catch {
            sizing.withLock { $0.failed(.download) }
            throw AgentError(
                "cannot reach the hub at \(client.baseURL) to download (\(Self.plain(error))); will retry",
                kind: .network)
        }
        let a = fetched.answer
        guard a.status == 200 || (a.status == 206 && fetched.resumed) else {
            let code = a.error?.code ?? ""
            let kind: AgentError.Kind =
                a.status >= 500 || a.status == 429
                ? .hubUnavailable : code == "revoked" ? .revoked : code == "agent_too_old" ? .update : .refused
            throw AgentError(
                "the hub refused the download: \(a.error?.message ?? "HTTP \(a.status)") [\(code)]", kind: kind)
        }
        let opened: OpenedChangeSet
        do {
            opened = try openHubPage(a.body)
        } catch {
            if fetched.resumed { throw ResumedPageFailed(description: "\(error)") }
            dropPartial()
            throw AgentError(
                "the hub's answer failed verification (\(error)): it was altered in transit or the hub's keys changed",
                kind: .verification)
        }
        guard opened.header.origin == .hub, opened.header.seqFrom == since + 1 else {
            throw AgentError(
                "the hub's answer starts at \(opened.header.seqFrom), expected \(since + 1); will retry",
                kind: .verification)
        }
        // The hub's signed header carries its time: the only clock source trusted.
        // A page assembled from a resume was sealed before this request: its
        // time is not now (SPEC §9.12).
        if !fetched.resumed {
            learnTime(hubMs: opened.header.createdHLC.millis, sentMs: a.sentMs, receivedMs: a.receivedMs)
        } else {
            try? store.setMeta(["last_contact_ms": String(a.receivedMs)])
        }
        let n = try store.applyRemote(opened.body, cursor: opened.header.seqTo)
        dropPartial()
        let next = sizing.withLock {
            $0.succeeded(.download, bytes: fetched.received, millis: a.receivedMs &- a.sentMs)
            return $0
        }
        let more = opened.header.more
        logger.debug(
            "page applied",
            metadata: [
                "ferry.cursor": "\(opened.header.seqTo)", "ferry.asked": "\(maxBytes)",
                "ferry.bytes": "\(a.body.count)", "ferry.received": "\(fetched.received)",
                "ferry.writes": "\(opened.body.writes.count)", "ferry.ms": "\(a.receivedMs &- a.sentMs)",
                "ferry.more": "\(more)", "ferry.next_bytes": "\(next.bytes(.download))",
            ])
        // The head is informational (unsigned); only the signed `more` decides
        // whether this copy is complete.
        let head = more ? a.hubHead.map { max($0, opened.header.seqTo) } : opened.header.seqTo
        let remaining = more ? a.hubRemaining : 0
        try store.setMeta([
            "last_download_ms": String(a.receivedMs), "hub_more": more ? "1" : "0", "hub_head": head.map(String.init),
            "hub_remaining": remaining.map(String.init),
        ])
        return Page(
            writes: n, more: more, applied: opened.header.ack,
            advanced: n > 0 || opened.header.seqTo > since, head: head)
    }

    /// Opens a page of the hub's stream with the keys pinned at enrollment (SPEC §7.4
    /// steps 1–17); the sync loop and offline bundles (SPEC §12) open pages here.
    func openHubPage(_ bytes: [UInt8]) throws(ChangeSetError) -> OpenedChangeSet {
        try Envelope.open(
            bytes, recipientKeyID: identity.kx.publicKey.id, author: hubSign, key: keys.receive, normalize: false)
    }

    /// Applies the hub's signed notices about quarantined writes (SPEC §8.9): the
    /// replica takes the hub's accepted value back and keeps the reason. Notices
    /// that do not verify are ignored (the acknowledgement itself was verified).
    func applyNotices(_ ack: AckV1, changeSet: [UInt8]) throws {
        guard let n = ack.notices else { return }
        try applyNotices(n, context: hex(changeSet))
    }

    /// The notices' entries, when the hub's signature under `context` (a change
    /// set's id, or a bundle's, SPEC §12.4) verifies.
    func verifiedNotices(_ n: QuarantineNoticesV1, context: String) -> [QuarantineNotice]? {
        guard let sig = unhex(n.signature),
            hubSign.verify(
                signature: sig, of: QuarantineAuth.message(agent: config.agentID, changeSet: context, notices: n)),
            let acceptedBytes = unhex(n.accepted),
            let accepted = try? BodyCodec.decode(acceptedBytes, normalize: false)
        else { return nil }
        var winners: [RecordID: [String: FieldWrite]] = [:]
        for w in accepted.writes { winners[w.record, default: [:]][w.field] = w }
        return n.refused.compactMap { r in
            guard let rid = RecordID(r.record), let id = QuarantineAuth.writeID(r.write) else { return nil }
            return QuarantineNotice(
                refused: FieldWrite(record: rid, field: r.field, id: id, value: .null), reason: r.reason,
                accepted: winners[rid]?[r.field])
        }
    }

    /// Applies verified notices; the number of fields corrected (0 when they do not verify).
    @discardableResult
    func applyNotices(_ n: QuarantineNoticesV1, context: String) throws -> Int {
        guard let notices = verifiedNotices(n, context: context) else { return 0 }
        let fixed = try store.applyQuarantine(notices)
        logger.warning(
            "the hub quarantined values written here",
            metadata: ["ferry.quarantined": "\(n.refused.count)", "ferry.corrected": "\(fixed)"])
        return fixed
    }

    /// Keeps the clock offset to the hub (DESIGN §4): hub time (from a signed
    /// change-set header) minus local time at the middle of the request.
    func learnTime(hubMs: UInt64, sentMs: UInt64, receivedMs: UInt64) {
        let offset = HybridLogicalClock.offset(hubMillis: hubMs, localMillis: sentMs / 2 + receivedMs / 2)
        try? store.setMeta(["clock_offset_ms": String(offset), "last_contact_ms": String(receivedMs)])
    }
}
