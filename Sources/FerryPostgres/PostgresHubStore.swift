import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The hub's store on PostgreSQL (DESIGN §8, issue 10): the same ingest
/// pipeline, rules and tables as ``SQLiteHubStore``, so several stateless
/// `ferry hub serve` processes can share one database.
///
/// Concurrency between hub processes is decided in the database, never in one
/// process's memory (DESIGN §8.1):
/// - an ingest transaction locks its agent's row (`SELECT … FOR UPDATE`), so
///   change sets of one origin apply one at a time, in sequence, exactly once;
/// - stream positions are taken by `UPDATE stream SET head = head + n`, which
///   holds the counter row's lock until commit: positions are gap-free and
///   become visible in the order they were given, so an agent reading up to
///   the head never skips a position that commits later;
/// - operator writes stamped with the hub's clock lock the clock row first.
public final class PostgresHubStore: HubServiceStore {
    let pool: PostgresConnectionPool
    private let wall: any WallClock
    public let futureBoundMillis: UInt64
    /// The database URL without its password.
    public let location: String
    /// Leaves are staged before the stream row is locked (see
    /// ``PostgresHubTransaction/stage(_:changeSet:atMillis:)``); `FERRY_PG_STAGE=0`
    /// turns it off, to measure what it buys (docs/SCALING.md).
    let stagesLeaves = ProcessInfo.processInfo.environment["FERRY_PG_STAGE"] != "0"
    private let formCache = Mutex<(key: [Int64], forms: [String: FormDefinition])?>(nil)
    private let lastFault = Mutex<StoreFault?>(nil)

    /// Connects and brings the schema to the current version.
    /// - Throws: ``HubError`` for a malformed URL, ``StoreFault`` when the server cannot be reached.
    public init(
        url: String, wall: any WallClock = SystemClock(), futureBoundMillis: UInt64 = 600_000,
        logger: Logger = Logger(label: "ferry.postgres")
    ) throws {
        let parsed = try PostgresURL(url)
        location = parsed.description
        pool = PostgresConnectionPool(url: parsed, logger: logger)
        self.wall = wall
        self.futureBoundMillis = futureBoundMillis
        try PostgresSchema.migrate(pool)
    }

    deinit { pool.close() }

    public func nowMillis() -> UInt64 { wall.nowMillis() }

    // MARK: transactions

    /// Runs `body` in one transaction; a transaction the server aborted for a
    /// deadlock or serialisation failure is run again (a few times).
    @discardableResult
    func transact<T>(readOnly: Bool = false, _ body: (PGConnection) throws -> T) throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let r = try pool.with { c -> T in
                    try c.exec(
                        readOnly
                            ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN ISOLATION LEVEL READ COMMITTED"
                    )
                    do {
                        let r = try body(c)
                        try c.exec("COMMIT")
                        return r
                    } catch {
                        _ = try? c.exec("ROLLBACK")
                        throw error
                    }
                }
                if !readOnly { lastFault.withLock { $0 = nil } }
                return r
            } catch {
                if attempt < 5 && PostgresFailure.isRetryable(error) { continue }
                if error is HubError || error is ChangeSetError || error is FormError { throw error }
                if let f = error as? StoreFault {
                    lastFault.withLock { $0 = f }
                    throw f
                }
                if error is PSQLError {
                    let f = StoreFault(.databaseUnavailable, path: location, detail: PostgresFailure.describe(error))
                    if !readOnly { lastFault.withLock { $0 = f } }
                    throw f
                }
                throw error
            }
        }
    }

    public func transaction<T>(_ body: (any HubTransaction) throws -> T) throws -> T {
        try transact { c in try body(PostgresHubTransaction(c: c, store: self)) }
    }

    public func stampingTransaction<T>(_ body: (any HubTransaction) throws -> T) throws -> T {
        try transact { c in
            // Stream row, then clock row: the order every writer takes them in.
            try c.exec("SELECT head FROM stream WHERE id = 1 FOR UPDATE")
            try c.exec("SELECT last FROM hub_clock WHERE id = 1 FOR UPDATE")
            return try body(PostgresHubTransaction(c: c, store: self))
        }
    }

    public func noteClonedReplica(agent: String) throws {
        try transact { c in
            try c.exec(
                "UPDATE agents SET cloned_ms = \(Int64(clamping: nowMillis())), cloned_refusals = cloned_refusals + 1 WHERE id = \(agent)"
            )
        }
    }

    public func fault(_ error: any Error) -> StoreFault? {
        if let f = error as? StoreFault { return f }
        if error is PSQLError {
            return StoreFault(.databaseUnavailable, path: location, detail: PostgresFailure.describe(error))
        }
        return nil
    }

    public func writeProblem() -> StoreFault? {
        if lastFault.withLock({ $0 }) != nil {
            // A small write tells whether the database takes writes again.
            _ = try? transact { c in
                try c.exec(
                    "INSERT INTO meta(key, value) VALUES ('health_probe_ms', \(String(nowMillis()))) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                )
            }
            return lastFault.withLock { $0 }
        }
        return nil
    }

    public func streamSeq() throws -> UInt64 {
        try transact(readOnly: true) { c in try c.one("SELECT head FROM stream WHERE id = 1")?.u64(0) ?? 0 }
    }

    // MARK: catalog

    public func publish(_ kind: CatalogItem.Kind, key: String, json: [UInt8]) throws {
        try transact { c in
            if kind == .form,
                let old = try c.one("SELECT json FROM catalog WHERE kind = 'form' AND key = \(key)")?.bytes(0)
            {
                let a = try? JSONDecoder().decode(FormDefinition.self, from: Data(old))
                let b = try? JSONDecoder().decode(FormDefinition.self, from: Data(json))
                if a == b { return }
                throw HubError(
                    .formImmutable, "form \(key) is already published with other content: publish it as a new version")
            }
            let seq = try PostgresHubTransaction.reserve(c, 1)
            try c.exec(
                """
                INSERT INTO catalog(kind, key, seq, json) VALUES (\(kind.rawValue), \(key), \(Int64(clamping: seq)), \(ByteBuffer(json)))
                ON CONFLICT (kind, key) DO UPDATE SET seq = excluded.seq, json = excluded.json
                """)
        }
    }

    public func catalogJSON(_ kind: CatalogItem.Kind) throws -> [[UInt8]] {
        try transact(readOnly: true) { c in
            try c.rows("SELECT json FROM catalog WHERE kind = \(kind.rawValue) ORDER BY key").map { try $0.bytes(0) }
        }
    }

    /// Published forms by `"<id>@<version>"`, decoded once per catalog change.
    func formsByKey(_ c: PGConnection) throws -> [String: FormDefinition] {
        let stamp = try c.one("SELECT coalesce(max(seq), 0), count(*) FROM catalog WHERE kind = 'form'")
        let key = [try stamp?.int64(0) ?? 0, try stamp?.int64(1) ?? 0]
        if let hit = formCache.withLock({ $0?.key == key ? $0?.forms : nil }) { return hit }
        let forms = try c.rows("SELECT json FROM catalog WHERE kind = 'form'").compactMap {
            try? JSONDecoder().decode(FormDefinition.self, from: Data(try $0.bytes(0)))
        }
        let byKey = Dictionary(forms.map { ("\($0.id)@\($0.version)", $0) }, uniquingKeysWith: { a, _ in a })
        formCache.withLock { $0 = (key, byKey) }
        return byKey
    }

    // MARK: enrollment

    public func issueToken(commune: String, ttlMillis: UInt64) throws -> [UInt8] {
        guard try communes().contains(where: { $0.code == commune }) else {
            throw HubError(.notFound, "commune \(commune) is not in this hub's list: see `ferry hub communes`")
        }
        let secret = randomBytes(16)
        let now = nowMillis()
        let (created, expires) = (Int64(clamping: now), Int64(clamping: now.addingReportingOverflow(ttlMillis).0))
        try transact { c in
            try c.exec(
                "INSERT INTO tokens(hash, commune, created_ms, expires_ms) VALUES (\(ByteBuffer(keyID(of: secret))), \(commune), \(created), \(expires))"
            )
        }
        return secret
    }

    public func enroll(
        secret: [UInt8], commune: String, signKey: SigningPublicKey, kxKey: KXPublicKey, hostname: String
    ) throws -> AgentInfo {
        let now = nowMillis()
        let hash = ByteBuffer(keyID(of: secret))
        return try transact { c in
            // FOR UPDATE: two hubs redeeming one token at once, one wins.
            guard
                let t = try c.one(
                    "SELECT used_by, expires_ms, commune FROM tokens WHERE hash = \(hash) FOR UPDATE")
            else {
                throw HubError(
                    .badToken, "this enrollment token is not known to this hub: ask the operator for a new one")
            }
            if let used = try t.optString(0) {
                throw HubError(
                    .badToken,
                    "this enrollment token was already used (by agent \(used)): ask the operator for a new one")
            }
            if UInt64(clamping: try t.int64(1)) < now {
                throw HubError(.badToken, "this enrollment token has expired: ask the operator for a new one")
            }
            guard try t.string(2) == commune else { throw HubError(.badToken, "this token is for another commune") }
            if try c.one("SELECT 1 FROM agents WHERE sign_key_id = \(ByteBuffer(signKey.id))") != nil {
                throw HubError(.badToken, "this signing key is already enrolled")
            }
            let id = "a-\(commune)-\(hex(randomBytes(4)))"
            try c.exec(
                """
                INSERT INTO agents(id, commune, sign_pk, kx_pk, sign_key_id, status, hostname, enrolled_ms)
                VALUES (\(id), \(commune), \(ByteBuffer(signKey.bytes)), \(ByteBuffer(kxKey.bytes)), \(ByteBuffer(signKey.id)), 'active', \(hostname), \(Int64(clamping: now)))
                """)
            try c.exec("UPDATE tokens SET used_by = \(id) WHERE hash = \(hash)")
            guard let info = try Self.agent(c, id: id, lock: false) else {
                throw HubError(.notFound, "agent vanished")
            }
            return info
        }
    }

    public func revoke(agent id: String) throws {
        try transact { c in
            if try c.exec("UPDATE agents SET status = 'revoked' WHERE id = \(id)") == 0 {
                throw HubError(.notFound, "no agent \(id): see `ferry hub agents`")
            }
        }
    }

    public func agent(id: String) throws -> AgentInfo? {
        try transact(readOnly: true) { c in try Self.agent(c, id: id, lock: false) }
    }

    public func agents() throws -> [AgentInfo] {
        try transact(readOnly: true) { c in
            try c.rows("SELECT \(unescaped: Self.agentColumns) FROM agents ORDER BY commune, id").map(Self.agentInfo)
        }
    }

    static let agentColumns =
        "id, commune, sign_pk, kx_pk, status, hostname, enrolled_ms, last_seen_ms, last_skew_ms, applied_seq, acked_cursor, last_error, cloned_ms, cloned_refusals"

    static func agent(_ c: PGConnection, id: String, lock: Bool) throws -> AgentInfo? {
        try c.one(
            "SELECT \(unescaped: agentColumns) FROM agents WHERE id = \(id)\(unescaped: lock ? " FOR UPDATE" : "")"
        )
        .map(agentInfo)
    }

    static func agentInfo(_ r: PostgresRandomAccessRow) throws -> AgentInfo {
        AgentInfo(
            id: try r.string(0), commune: try r.string(1), signPublicKey: try r.bytes(2), kxPublicKey: try r.bytes(3),
            status: try r.string(4), hostname: try r.string(5), enrolledMs: try r.u64(6),
            lastSeenMs: try r.optInt64(7).map { UInt64(clamping: $0) }, lastSkewMs: try r.optInt64(8),
            appliedSeq: try r.u64(9), ackedCursor: try r.u64(10), lastError: try r.optString(11),
            clonedMs: try r.optInt64(12).map { UInt64(clamping: $0) }, clonedRefusals: try r.int(13))
    }

    public func noteContact(agent id: String, skewMs: Int64?, ackedCursor: UInt64?, error: String?) throws {
        let cursor = ackedCursor.map { Int64(clamping: $0) }
        try transact { c in
            try c.exec(
                """
                UPDATE agents SET last_seen_ms = \(Int64(clamping: nowMillis())), last_skew_ms = coalesce(\(skewMs), last_skew_ms),
                  acked_cursor = greatest(acked_cursor, coalesce(\(cursor), acked_cursor)), last_error = \(error) WHERE id = \(id)
                """)
        }
    }

    // MARK: reading

    public func record(_ id: RecordID) throws -> HubRecordView? {
        try transact(readOnly: true) { c in try Self.hubView(id, c) }
    }

    static func hubView(_ id: RecordID, _ c: PGConnection) throws -> HubRecordView? {
        guard
            let r = try c.one(
                "SELECT form_id, form_version, commune FROM records WHERE id = \(ByteBuffer(id.bytes))")
        else { return nil }
        let regs = try PostgresHubTransaction.registers(c, of: id)
        return HubRecordView(
            id: id,
            scope: RecordScope(formID: try r.string(0), formVersion: Int(try r.int64(1)), commune: try r.string(2)),
            leaves: regs)
    }

    public func recordIDs(commune: String?, limit: Int) throws -> [RecordID] {
        let lim = Int64(clamping: max(0, limit))
        return try transact(readOnly: true) { c in
            let rows =
                try commune.map {
                    try c.rows("SELECT id FROM records WHERE commune = \($0) ORDER BY id DESC LIMIT \(lim)")
                }
                ?? c.rows("SELECT id FROM records ORDER BY id DESC LIMIT \(lim)")
            return try rows.compactMap { RecordID(bytes: try $0.bytes(0)) }
        }
    }

    public func winners(commune: String) throws -> [RecordID: [String: Value]] {
        try transact(readOnly: true) { c in
            var all: [RecordID: [String: FieldWrite]] = [:]
            for row in try c.rows(
                "SELECT \(unescaped: PostgresHubTransaction.leafColumns), record FROM leaves WHERE commune = \(commune)"
            ) {
                guard let rid = RecordID(bytes: try row.bytes(8)) else { continue }
                let w = try PostgresHubTransaction.write(rid, row)
                if let have = all[rid]?[w.field], have.id > w.id { continue }
                all[rid, default: [:]][w.field] = w
            }
            return all.mapValues { $0.mapValues(\.value) }
        }
    }

    public func conflicts(limit: Int) throws -> [ConflictReport] {
        try transact(readOnly: true) { c in
            var communeOf: [String: String] = [:]
            for r in try c.rows("SELECT id, commune FROM agents") { communeOf[try r.string(0)] = try r.string(1) }
            var rows: [(RecordID, String, String, String, UInt64)] = []
            var views: [RecordID: HubRecordView] = [:]
            for r in try c.rows(
                "SELECT record, field, kind, commune, detected_ms FROM conflicts ORDER BY detected_ms, record, field LIMIT \(Int64(clamping: max(0, limit)))"
            ) {
                guard let rid = RecordID(bytes: try r.bytes(0)) else { continue }
                rows.append((rid, try r.string(1), try r.string(2), try r.string(3), try r.u64(4)))
                if views[rid] == nil { views[rid] = try Self.hubView(rid, c) }
            }
            return Self.conflictReports(rows: rows, views: views, communeOf: communeOf)
        }
    }

    public func openQuarantine(origin: String, limit: Int) throws -> [RefusedWrite] {
        try transact(readOnly: true) { c in
            try c.rows(
                """
                SELECT record, field, t, v, hlc, reason FROM quarantine WHERE origin = \(origin) AND status = 'open'
                ORDER BY id DESC LIMIT \(Int64(clamping: max(0, limit)))
                """
            ).compactMap { r in
                guard let rid = RecordID(bytes: try r.bytes(0)) else { return nil }
                let id = WriteID(hlc: HLC(raw: UInt64(bitPattern: try r.int64(4))), origin: OriginID(origin))
                return RefusedWrite(
                    FieldWrite(
                        record: rid, field: try r.string(1), id: id,
                        value: PostgresValues.value(tag: try r.int64(2), try r.optBytes(3))),
                    reason: try r.string(5))
            }
        }
    }

    public func quarantine(limit: Int) throws -> [QuarantineEntry] {
        try transact(readOnly: true) { c in
            try c.rows(
                "SELECT id, changeset, origin, record, field, t, v, reason, created_ms FROM quarantine WHERE status = 'open' ORDER BY id LIMIT \(Int64(clamping: max(0, limit)))"
            ).map { r in
                let v = PostgresValues.value(tag: try r.int64(5), try r.optBytes(6))
                return QuarantineEntry(
                    id: try r.int64(0), changeSet: hex(try r.optBytes(1) ?? []), origin: try r.string(2),
                    record: RecordID(bytes: try r.bytes(3))?.description ?? "?", field: try r.string(4),
                    value: JSONValue(v), valueType: v.typeName, reason: try r.string(7), timeMs: try r.u64(8),
                    status: QuarantineStatus.open)
            }
        }
    }

    public func progress(campaign: CampaignDefinition) throws -> [ProgressRow] {
        let names = Dictionary(try communes().map { ($0.code, $0.name) }, uniquingKeysWith: { a, _ in a })
        let counts = try transact(readOnly: true) { c in
            var out: [String: Int] = [:]
            for r in try c.rows(
                "SELECT commune, count(*) FROM records WHERE form_id = \(campaign.formID) AND NOT deleted GROUP BY commune"
            ) { out[try r.string(0)] = try r.int(1) }
            return out
        }
        return Set(campaign.targets.keys).union(counts.keys).sorted().map {
            ProgressRow(commune: $0, name: names[$0] ?? $0, records: counts[$0] ?? 0, target: campaign.targets[$0] ?? 0)
        }
    }

    public func audit(record: RecordID) throws -> [AuditEntry] {
        try transact(readOnly: true) { c in
            let ids = try c.rows(
                "SELECT DISTINCT changeset FROM leaves WHERE record = \(ByteBuffer(record.bytes)) AND changeset IS NOT NULL"
            ).map { try $0.bytes(0) }
            return try ids.compactMap { id in
                guard
                    let r = try c.one(
                        "SELECT origin, seq_from, seq_to, received_ms, writes, signed FROM changesets WHERE id = \(ByteBuffer(id))"
                    )
                else { return nil }
                let origin = try r.string(0)
                let signed = try r.bytes(5)
                let valid =
                    try Self.agent(c, id: origin, lock: false).flatMap {
                        try? SigningPublicKey(bytes: $0.signPublicKey)
                    }
                    .map { Envelope.verifyAuditRecord(signed, author: $0) } ?? false
                return AuditEntry(
                    changeSet: hex(id), origin: origin, seqFrom: try r.u64(1), seqTo: try r.u64(2),
                    receivedMs: try r.u64(3), writes: try r.int(4), signatureValid: valid)
            }
        }
    }

    public func lag(of agent: AgentInfo) throws -> Int {
        let cur = Int64(clamping: agent.ackedCursor)
        return try transact(readOnly: true) { c in
            let leaves =
                try c.one(
                    "SELECT count(*) FROM leaves WHERE commune = \(agent.commune) AND seq > \(cur) AND origin <> \(agent.id)"
                )?.int(0) ?? 0
            let catalog = try c.one("SELECT count(*) FROM catalog WHERE seq > \(cur)")?.int(0) ?? 0
            return leaves + catalog
        }
    }

    public func totals() throws -> [String: Int] {
        try transact(readOnly: true) { c in
            guard
                let r = try c.one(
                    """
                    SELECT (SELECT count(*) FROM records WHERE NOT deleted), (SELECT count(*) FROM records WHERE deleted),
                      (SELECT count(*) FROM leaves), (SELECT count(*) FROM conflicts),
                      (SELECT count(*) FROM quarantine WHERE status = 'open'), (SELECT count(*) FROM changesets),
                      (SELECT count(*) FROM agents WHERE status = 'active'), (SELECT count(*) FROM agents WHERE status = 'revoked'),
                      (SELECT count(*) FROM agents WHERE cloned_ms IS NOT NULL), (SELECT head FROM stream WHERE id = 1)
                    """)
            else { return [:] }
            let keys = [
                "records", "records_deleted", "leaves", "conflicts", "quarantined", "changesets", "agents",
                "agents_revoked", "agents_cloned", "stream_seq",
            ]
            var out: [String: Int] = [:]
            for (i, k) in keys.enumerated() { out[k] = try r.int(i) }
            return out
        }
    }

    // MARK: the hub stream

    /// ``SQLiteHubStore/changes(for:since:maxBytes:)`` on PostgreSQL, read in
    /// one repeatable-read snapshot: the head and the leaves up to it are one
    /// committed state (positions commit in order, see the type's notes).
    public func changes(for agent: AgentInfo, since: UInt64, maxBytes: Int) throws -> StreamPage {
        try transact(readOnly: true) { c in
            let head = try c.one("SELECT head FROM stream WHERE id = 1")?.u64(0) ?? 0
            guard since <= head else {
                throw HubError(
                    .cursorAhead,
                    "the download cursor \(since) is past this hub's stream head \(head): the hub's store may have been restored from an older backup, or the agent talks to another hub; ask the operator"
                )
            }
            let from = Int64(clamping: since)
            var catalog: [CatalogItem] = []
            var budget = maxBytes
            var cut: UInt64? = nil
            for r in try c.rows("SELECT kind, key, seq, json FROM catalog WHERE seq > \(from) ORDER BY seq") {
                guard let kind = CatalogItem.Kind(rawValue: try r.string(0)) else { continue }
                let item = CatalogItem(kind: kind, key: try r.string(1), seq: try r.u64(2), json: try r.bytes(3))
                catalog.append(item)
                budget -= item.json.count + 32
            }
            var writes: [FieldWrite] = []
            var scopes: [RecordID: RecordScope] = [:]
            var last = since
            var pages = 0
            outer: while pages < 100_000 {
                pages += 1
                let rows = try c.rows(
                    """
                    SELECT \(unescaped: PostgresHubTransaction.leafColumns("l")), l.record, l.seq, r.form_id, r.form_version
                    FROM leaves l JOIN records r ON r.id = l.record
                    WHERE l.commune = \(agent.commune) AND l.seq > \(Int64(clamping: last)) AND l.origin <> \(agent.id)
                    ORDER BY l.seq LIMIT 2000
                    """)
                if rows.isEmpty { break }
                for row in rows {
                    guard let rid = RecordID(bytes: try row.bytes(8)) else { continue }
                    let seq = try row.u64(9)
                    let w = try PostgresHubTransaction.write(rid, row)
                    let size = SQLiteHubStore.estimatedSize(w)
                    if budget - size < 0 && !writes.isEmpty {
                        cut = last
                        break outer
                    }
                    budget -= size
                    writes.append(w)
                    scopes[rid] = RecordScope(
                        formID: try row.string(10), formVersion: Int(try row.int64(11)), commune: agent.commune)
                    last = seq
                }
            }
            let seqTo = cut ?? max(head, since)
            if cut != nil { catalog.removeAll { $0.seq > seqTo } }
            var remaining = 0
            if cut != nil {
                remaining =
                    try c.one(
                        "SELECT count(*) FROM leaves WHERE commune = \(agent.commune) AND seq > \(Int64(clamping: seqTo)) AND origin <> \(agent.id)"
                    )?.int(0) ?? 0
            }
            return StreamPage(
                body: ChangeSetBody(writes: writes, scopes: scopes, catalog: catalog), seqTo: seqTo, more: cut != nil,
                head: max(head, seqTo), remaining: remaining)
        }
    }
}
