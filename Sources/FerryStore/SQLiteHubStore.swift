import FerryCore
import FerryCrypto
import FerryProtocol
import Foundation
import GRDB
import Synchronization

/// The hub's store on an embedded SQLite file (DESIGN §8): the default backend.
///
/// Holds every field's leaves with the hub-stream position of its last change,
/// per-agent sequences, the signed change sets (audit trail), quarantined
/// values, open conflicts and the catalog. Ingest is one transaction per
/// change set with `synchronous=FULL`: acknowledged means on disk.
public final class SQLiteHubStore: Sendable {
    public let pool: DatabasePool
    private let wall: any WallClock
    /// How far ahead of the hub's clock a write may be stamped.
    public let futureBoundMillis: UInt64
    private let formCache = Mutex<(key: [Int64], forms: [String: FormDefinition])?>(nil)

    /// The database file.
    public let path: String
    public var location: String { path }
    /// The storage fault of the last write that failed, until a write succeeds (for `/v1/health`).
    let lastFault = Mutex<StoreFault?>(nil)

    public init(path: String, wall: any WallClock = SystemClock(), futureBoundMillis: UInt64 = 600_000) throws {
        self.path = path
        pool = try openPool(path: path)
        self.wall = wall
        self.futureBoundMillis = futureBoundMillis
        do {
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreFault.from(error, path: path) ?? error
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE agents(id TEXT PRIMARY KEY, commune TEXT NOT NULL, sign_pk BLOB NOT NULL, kx_pk BLOB NOT NULL,
                        sign_key_id BLOB NOT NULL UNIQUE, status TEXT NOT NULL, hostname TEXT NOT NULL, enrolled_ms INTEGER NOT NULL,
                        last_seen_ms INTEGER, last_skew_ms INTEGER, applied_seq INTEGER NOT NULL DEFAULT 0,
                        acked_cursor INTEGER NOT NULL DEFAULT 0, last_error TEXT);
                    CREATE TABLE tokens(hash BLOB PRIMARY KEY, commune TEXT NOT NULL, created_ms INTEGER NOT NULL,
                        expires_ms INTEGER NOT NULL, used_by TEXT);
                    CREATE TABLE catalog(kind TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, json BLOB NOT NULL,
                        PRIMARY KEY(kind, key));
                    CREATE INDEX catalog_seq ON catalog(seq);
                    CREATE TABLE records(id BLOB PRIMARY KEY, form_id TEXT NOT NULL, form_version INTEGER NOT NULL,
                        commune TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL) WITHOUT ROWID;
                    CREATE INDEX records_commune ON records(commune, form_id);
                    CREATE TABLE leaves(record BLOB NOT NULL, field TEXT NOT NULL, hlc INTEGER NOT NULL, origin TEXT NOT NULL,
                        t INTEGER NOT NULL, v, prev BLOB, alive BLOB, covers BLOB, seq INTEGER NOT NULL, commune TEXT NOT NULL,
                        changeset BLOB, PRIMARY KEY(record, field, hlc, origin)) WITHOUT ROWID;
                    CREATE INDEX leaves_stream ON leaves(commune, seq);
                    CREATE TABLE changesets(id BLOB PRIMARY KEY, origin TEXT NOT NULL, seq_from INTEGER NOT NULL,
                        seq_to INTEGER NOT NULL, received_ms INTEGER NOT NULL, writes INTEGER NOT NULL, signed BLOB NOT NULL);
                    CREATE INDEX changesets_origin ON changesets(origin, seq_from);
                    CREATE TABLE quarantine(id INTEGER PRIMARY KEY, changeset BLOB, origin TEXT NOT NULL, record BLOB NOT NULL,
                        field TEXT NOT NULL, t INTEGER NOT NULL, v, hlc INTEGER NOT NULL, reason TEXT NOT NULL,
                        created_ms INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'open');
                    CREATE TABLE conflicts(record BLOB NOT NULL, field TEXT NOT NULL, kind TEXT NOT NULL, commune TEXT NOT NULL,
                        detected_ms INTEGER NOT NULL, PRIMARY KEY(record, field, kind)) WITHOUT ROWID;
                    INSERT INTO meta(key, value) VALUES ('stream_seq', '0');
                    """)
        }
        // SPEC §7.2: a digest of each accepted body, to tell a re-delivery
        // (same content) from a cloned replica (same origin and sequence,
        // other content); and the clone refusals per agent.
        m.registerMigration("v2-cloned-replicas") { db in
            try db.execute(
                sql: """
                    ALTER TABLE changesets ADD COLUMN body_digest BLOB;
                    ALTER TABLE agents ADD COLUMN cloned_ms INTEGER;
                    ALTER TABLE agents ADD COLUMN cloned_refusals INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        // One value-tag numbering for wire and storage (ValueTag): v1 stored
        // null 0, bool 1 (v 0/1), int 2, double 3, string 4, date 5, bytes 6.
        m.registerMigration("v3-value-tags") { db in
            for table in ["leaves", "quarantine"] {
                try db.execute(
                    sql: """
                        UPDATE \(table) SET t = CASE t WHEN 1 THEN (CASE WHEN v THEN 2 ELSE 1 END)
                          WHEN 2 THEN 3 WHEN 3 THEN 4 WHEN 4 THEN 5 WHEN 5 THEN 6 WHEN 6 THEN 7 ELSE t END,
                          v = CASE t WHEN 1 THEN NULL ELSE v END
                        """)
            }
        }
        registerOperatorMigrations(&m)
        Self.migrateOperator(&m)
        registerSessionMigrations(&m)
        registerOperatorLogMigration(&m)
        // SPEC §9.13: an agent's conflict list reads its commune's conflicts in key order.
        m.registerMigration("v6-conflicts-by-commune") { db in
            try db.execute(sql: "CREATE INDEX conflicts_commune ON conflicts(commune, record, field, kind)")
        }
        return m
    }

    // MARK: storage faults

    /// One write transaction. A storage failure is thrown as ``StoreFault``
    /// and remembered for `/v1/health` until a write succeeds again.
    func write<T>(_ updates: (Database) throws -> T) throws -> T {
        do {
            let r = try pool.write(updates)
            lastFault.withLock { $0 = nil }
            return r
        } catch {
            guard let f = StoreFault.from(error, path: path) else { throw error }
            lastFault.withLock { $0 = f }
            throw f
        }
    }

    public func fault(_ error: any Error) -> StoreFault? { StoreFault.from(error, path: path) }

    /// Checks the file for damage (`PRAGMA quick_check`), as `ferry hub serve` does at start.
    /// - Throws: ``StoreFault`` `corrupt` with what to do.
    public func verifyIntegrity() throws { try StoreFault.quickCheck(pool, path: path) }

    /// Nil when the store can take writes; otherwise why not (SPEC §9.5, `/v1/health`):
    /// the directory is read-only, under 1 MiB is free, or the last write failed
    /// on the disk and a small probe write still fails.
    public func writeProblem() -> StoreFault? {
        if lastFault.withLock({ $0 }) != nil {
            // A write that changes a page needs space in the WAL: it tells
            // whether the disk takes writes again; success clears the fault.
            _ = try? write { db in
                try db.execute(
                    sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('health_probe_ms', ?)",
                    arguments: [String(wall.nowMillis())])
            }
            if let f = lastFault.withLock({ $0 }) { return f }
        }
        let dir = (path as NSString).deletingLastPathComponent
        let d = dir.isEmpty ? "." : dir
        if !Platform.isWritable(d) || !Platform.isWritable(path) { return StoreFault(.readOnly, path: path) }
        if let free = Platform.freeBytes(d), free < 1 << 20 {
            return StoreFault(.diskFull, path: path, detail: "\(free) bytes free")
        }
        return nil
    }

    // MARK: meta and clock

    public func meta(_ key: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }

    public func setMeta(_ key: String, _ value: String) throws {
        try write { db in try AgentStore.setMeta(db, key, value) }
    }

    func clock(_ db: Database) throws -> HybridLogicalClock {
        let last = try AgentStore.meta(db, "hlc_last").flatMap(UInt64.init) ?? 0
        return HybridLogicalClock(wall: wall, last: HLC(raw: last), futureBoundMillis: futureBoundMillis)
    }

    func save(_ c: HybridLogicalClock, _ db: Database) throws {
        try AgentStore.setMeta(db, "hlc_last", String(c.last.raw))
    }

    /// The next hub-stream position, in one statement (it runs once per merged write).
    func nextSeq(_ db: Database) throws -> UInt64 {
        let v = try Int64.fetchOne(
            try db.cachedStatement(
                sql:
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'stream_seq' RETURNING CAST(value AS INTEGER)"
            ))
        return UInt64(clamping: v ?? 0)
    }

    /// The hub-stream position: the seq of the latest change.
    public func streamSeq() throws -> UInt64 {
        try meta("stream_seq").flatMap(UInt64.init) ?? 0
    }

    /// Hub time in milliseconds.
    public func nowMillis() -> UInt64 { wall.nowMillis() }

    // MARK: catalog

    /// Publishes (or re-publishes) a catalog entry; it streams to every agent.
    /// - Throws: ``HubError`` `formImmutable` when a form version exists with other content.
    public func publish(_ kind: CatalogItem.Kind, key: String, json: [UInt8]) throws {
        try write { db in
            if kind == .form,
                let old = try Data.fetchOne(
                    db, sql: "SELECT json FROM catalog WHERE kind = 'form' AND key = ?", arguments: [key])
            {
                var a = try? JSONDecoder().decode(FormDefinition.self, from: old)
                var b = try? JSONDecoder().decode(FormDefinition.self, from: Data(json))
                // Retiring is the one change a version takes (SQLiteHubStore+Lifecycle).
                a?.retired = nil
                b?.retired = nil
                if a == b { return }
                throw HubError(
                    .formImmutable, "form \(key) is already published with other content: publish it as a new version")
            }
            let seq = try nextSeq(db)
            try db.execute(
                sql: "INSERT OR REPLACE INTO catalog(kind, key, seq, json) VALUES (?, ?, ?, ?)",
                arguments: [kind.rawValue, key, Int64(clamping: seq), Data(json)])
        }
    }

    /// The canonical JSON of a catalog entry (sorted keys), as every backend stores it.
    public static func json(_ v: some Encodable) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return [UInt8](try e.encode(v))
    }

    public func catalogJSON(_ kind: CatalogItem.Kind) throws -> [[UInt8]] {
        try pool.read { db in
            try Data.fetchAll(
                db, sql: "SELECT json FROM catalog WHERE kind = ? ORDER BY key", arguments: [kind.rawValue]
            ).map { [UInt8]($0) }
        }
    }

    // MARK: enrollment

    /// Issues a one-time enrollment token for `commune`; only its hash is kept.
    public func issueToken(commune: String, ttlMillis: UInt64) throws -> [UInt8] {
        guard try communes().contains(where: { $0.code == commune }) else {
            throw HubError(.notFound, "commune \(commune) is not in this hub's list: see `ferry hub communes`")
        }
        let secret = randomBytes(16)
        let now = wall.nowMillis()
        try write { db in
            try db.execute(
                sql: "INSERT INTO tokens(hash, commune, created_ms, expires_ms) VALUES (?, ?, ?, ?)",
                arguments: [Data(keyID(of: secret)), commune, Int64(clamping: now), Int64(clamping: now + ttlMillis)])
        }
        return secret
    }

    /// Redeems a token and registers the agent's keys.
    /// - Throws: ``HubError`` `badToken` when unknown, used, expired or for another commune.
    public func enroll(
        secret: [UInt8], commune: String, signKey: SigningPublicKey, kxKey: KXPublicKey, hostname: String
    ) throws -> AgentInfo {
        let now = wall.nowMillis()
        return try write { db in
            guard
                let t = try Row.fetchOne(
                    db, sql: "SELECT * FROM tokens WHERE hash = ?", arguments: [Data(keyID(of: secret))])
            else {
                throw HubError(
                    .badToken, "this enrollment token is not known to this hub: ask the operator for a new one")
            }
            if let used: String = t["used_by"] {
                throw HubError(
                    .badToken,
                    "this enrollment token was already used (by agent \(used)): ask the operator for a new one")
            }
            if UInt64(clamping: t["expires_ms"] as Int64) < now {
                throw HubError(.badToken, "this enrollment token has expired: ask the operator for a new one")
            }
            guard (t["commune"] as String) == commune else {
                throw HubError(.badToken, "this token is for another commune")
            }
            if try Int.fetchOne(
                db, sql: "SELECT count(*) FROM agents WHERE sign_key_id = ?", arguments: [Data(signKey.id)]) ?? 0 > 0
            {
                throw HubError(.badToken, "this signing key is already enrolled")
            }
            let id = "a-\(commune)-\(hex(randomBytes(4)))"
            try db.execute(
                sql: """
                    INSERT INTO agents(id, commune, sign_pk, kx_pk, sign_key_id, status, hostname, enrolled_ms)
                    VALUES (?, ?, ?, ?, ?, 'active', ?, ?)
                    """,
                arguments: [
                    id, commune, Data(signKey.bytes), Data(kxKey.bytes), Data(signKey.id), hostname,
                    Int64(clamping: now),
                ])
            try db.execute(
                sql: "UPDATE tokens SET used_by = ? WHERE hash = ?", arguments: [id, Data(keyID(of: secret))])
            guard let info = try Self.agent(db, id: id) else { throw HubError(.notFound, "agent vanished") }
            return info
        }
    }

    /// Revokes an agent: its key is refused from now on.
    public func revoke(agent id: String) throws {
        try write { db in
            try db.execute(sql: "UPDATE agents SET status = 'revoked' WHERE id = ?", arguments: [id])
            if db.changesCount == 0 { throw HubError(.notFound, "no agent \(id): see `ferry hub agents`") }
        }
    }

    public func agent(id: String) throws -> AgentInfo? {
        try pool.read { db in try Self.agent(db, id: id) }
    }

    public func agents() throws -> [AgentInfo] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM agents ORDER BY commune, id").compactMap {
                try Self.agent(db, id: $0)
            }
        }
    }

    static func agent(_ db: Database, id: String) throws -> AgentInfo? {
        try Row.fetchOne(db, sql: "SELECT * FROM agents WHERE id = ?", arguments: [id]).map { r in
            AgentInfo(
                id: r["id"], commune: r["commune"], signPublicKey: [UInt8](r["sign_pk"] as Data),
                kxPublicKey: [UInt8](r["kx_pk"] as Data), status: r["status"], hostname: r["hostname"],
                enrolledMs: UInt64(clamping: r["enrolled_ms"] as Int64),
                lastSeenMs: (r["last_seen_ms"] as Int64?).map { UInt64(clamping: $0) },
                lastSkewMs: r["last_skew_ms"], appliedSeq: UInt64(clamping: r["applied_seq"] as Int64),
                ackedCursor: UInt64(clamping: r["acked_cursor"] as Int64), lastError: r["last_error"],
                clonedMs: (r["cloned_ms"] as Int64?).map { UInt64(clamping: $0) },
                clonedRefusals: r["cloned_refusals"] ?? 0)
        }
    }

    /// Records a contact from an agent (pull or upload), its clock skew and its cursor.
    public func noteContact(agent id: String, skewMs: Int64?, ackedCursor: UInt64?, error: String?) throws {
        try write { db in
            try db.execute(
                sql: """
                    UPDATE agents SET last_seen_ms = ?, last_skew_ms = coalesce(?, last_skew_ms),
                      acked_cursor = max(acked_cursor, coalesce(?, acked_cursor)), last_error = ? WHERE id = ?
                    """,
                arguments: [
                    Int64(clamping: wall.nowMillis()), skewMs, ackedCursor.map { Int64(clamping: $0) }, error, id,
                ])
        }
    }

    // MARK: forms, cached for ingest

    /// Published forms by `"<id>@<version>"`, decoded once per catalog change
    /// (ingest reads them for every change set).
    func formsByKey(_ db: Database) throws -> [String: FormDefinition] {
        let stamp = try Row.fetchOne(
            try db.cachedStatement(sql: "SELECT max(seq), count(*) FROM catalog WHERE kind = 'form'"))
        let key = [(stamp?[0] as Int64?) ?? 0, (stamp?[1] as Int64?) ?? 0]
        if let hit = formCache.withLock({ $0?.key == key ? $0?.forms : nil }) { return hit }
        let forms = Dictionary(
            try Self.formsIn(db).map { ("\($0.id)@\($0.version)", $0) }, uniquingKeysWith: { a, _ in a })
        formCache.withLock { $0 = (key, forms) }
        return forms
    }

    static func formsIn(_ db: Database) throws -> [FormDefinition] {
        try Data.fetchAll(db, sql: "SELECT json FROM catalog WHERE kind = 'form'").compactMap {
            try? JSONDecoder().decode(FormDefinition.self, from: $0)
        }
    }

    static func openConflictCount(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM conflicts") ?? 0
    }

    // MARK: reading

    public func record(_ id: RecordID) throws -> HubRecordView? {
        try pool.read { db in try Self.hubView(id, db) }
    }

    static func hubView(_ id: RecordID, _ db: Database) throws -> HubRecordView? {
        guard
            let r = try Row.fetchOne(
                db, sql: "SELECT form_id, form_version, commune FROM records WHERE id = ?",
                arguments: [Columns.blob(id)])
        else { return nil }
        var byField: [String: [FieldWrite]] = [:]
        for row in try Row.fetchAll(
            db, sql: "SELECT \(Columns.leaf) FROM leaves WHERE record = ?", arguments: [Columns.blob(id)])
        {
            if let w = FieldWrite(row: row) { byField[w.field, default: []].append(w) }
        }
        return HubRecordView(
            id: id, scope: RecordScope(formID: r["form_id"], formVersion: r["form_version"], commune: r["commune"]),
            leaves: byField.mapValues { LeafRegister(leaves: $0) })
    }

    /// Record ids, newest first, optionally of one commune.
    public func recordIDs(commune: String?, limit: Int) throws -> [RecordID] {
        try pool.read { db in
            let sql =
                commune == nil
                ? "SELECT id FROM records ORDER BY id DESC LIMIT ?"
                : "SELECT id FROM records WHERE commune = ? ORDER BY id DESC LIMIT ?"
            let args: StatementArguments = commune.map { [$0, limit] } ?? [limit]
            return try Data.fetchAll(db, sql: sql, arguments: args).compactMap(Columns.record)
        }
    }

    /// Winners of every record of `commune` (convergence checks).
    public func winners(commune: String) throws -> [RecordID: [String: Value]] {
        try pool.read { db in
            var all: [RecordID: [String: FieldWrite]] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT \(Columns.leaf) FROM leaves WHERE commune = ?", arguments: [commune])
            {
                guard let w = FieldWrite(row: row) else { continue }
                if let have = all[w.record]?[w.field], have.id > w.id { continue }
                all[w.record, default: [:]][w.field] = w
            }
            return all.mapValues { $0.mapValues(\.value) }
        }
    }

    /// Open conflicts with provenance, oldest first (the first page; see ``conflictPage(_:after:limit:)``).
    public func conflicts(limit: Int) throws -> [ConflictReport] {
        try pool.read { db in
            let agents = try Self.agentCommunes(db)
            return try Row.fetchAll(
                db, sql: "SELECT * FROM conflicts ORDER BY detected_ms, record, field LIMIT ?", arguments: [limit]
            ).compactMap { try Self.conflictReport($0, db: db, agents: agents) }
        }
    }

    /// Open quarantine entries, oldest first (the first page; see ``quarantinePage(status:after:limit:)``).
    public func quarantine(limit: Int) throws -> [QuarantineEntry] {
        try quarantinePage(after: nil, limit: limit).items
    }

    public func openQuarantine(origin: String, limit: Int) throws -> [RefusedWrite] {
        try pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT record, field, t, v, hlc, reason FROM quarantine WHERE origin = ? AND status = 'open'
                    ORDER BY id DESC LIMIT ?
                    """, arguments: [origin, max(0, limit)]
            ).compactMap { r in
                guard let rid = Columns.record(r["record"]) else { return nil }
                let id = WriteID(hlc: Columns.hlc(r["hlc"]), origin: OriginID(origin))
                return RefusedWrite(
                    FieldWrite(
                        record: rid, field: r["field"], id: id,
                        value: Columns.value(tag: r["t"], r["v"] as DatabaseValue)),
                    reason: r["reason"])
            }
        }
    }

    /// Campaign progress per commune: live records of the campaign's form
    /// created in its period (a record's UUIDv7 id carries its creation time,
    /// so the period is a range of ids).
    public func progress(campaign: CampaignDefinition) throws -> [ProgressRow] {
        let names = Dictionary(try communes().map { ($0.code, $0.name) }, uniquingKeysWith: { a, _ in a })
        let period = campaign.periodMillis ?? (0, UInt64(1) << 48)
        return try pool.read { db in
            let counts = Dictionary(
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT commune, count(*) AS n FROM records WHERE form_id = ? AND deleted = 0
                        AND id >= ? AND id < ? GROUP BY commune
                        """,
                    arguments: [campaign.formID, Self.idBound(period.start), Self.idBound(period.end)]
                ).map { ($0["commune"] as String, $0["n"] as Int) }, uniquingKeysWith: { a, _ in a })
            return Set(campaign.targets.keys).union(counts.keys).sorted().map {
                ProgressRow(
                    commune: $0, name: names[$0] ?? $0, records: counts[$0] ?? 0, target: campaign.targets[$0] ?? 0)
            }
        }
    }

    /// The signed change sets that wrote the current leaves of a record.
    public func audit(record: RecordID) throws -> [AuditEntry] {
        try pool.read { db in
            let ids = try Data.fetchAll(
                db, sql: "SELECT DISTINCT changeset FROM leaves WHERE record = ? AND changeset IS NOT NULL",
                arguments: [Columns.blob(record)])
            return try ids.compactMap { id in
                guard let r = try Row.fetchOne(db, sql: "SELECT * FROM changesets WHERE id = ?", arguments: [id]) else {
                    return nil
                }
                let origin: String = r["origin"]
                let valid =
                    try Self.agent(db, id: origin).flatMap { try? SigningPublicKey(bytes: $0.signPublicKey) }.map {
                        Envelope.verifyAuditRecord([UInt8](r["signed"] as Data), author: $0)
                    } ?? false
                return AuditEntry(
                    changeSet: hex([UInt8](id)), origin: origin, seqFrom: UInt64(clamping: r["seq_from"] as Int64),
                    seqTo: UInt64(clamping: r["seq_to"] as Int64),
                    receivedMs: UInt64(clamping: r["received_ms"] as Int64),
                    writes: r["writes"],
                    signatureValid: valid)
            }
        }
    }

    /// Changes waiting for an agent: its commune's leaves by others and catalog
    /// entries after the cursor it last acknowledged.
    public func lag(of agent: AgentInfo) throws -> Int {
        try pool.read { db in
            let c = Int64(clamping: agent.ackedCursor)
            let leaves =
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM leaves WHERE commune = ? AND seq > ? AND origin != ?",
                    arguments: [agent.commune, c, agent.id]) ?? 0
            let catalog = try Int.fetchOne(db, sql: "SELECT count(*) FROM catalog WHERE seq > ?", arguments: [c]) ?? 0
            return leaves + catalog
        }
    }

    /// Totals for `ferry status` at the hub and for metrics.
    public func totals() throws -> [String: Int] {
        try pool.read { db in
            var out: [String: Int] = [:]
            for (k, sql) in [
                ("records", "SELECT count(*) FROM records WHERE deleted = 0"),
                ("records_deleted", "SELECT count(*) FROM records WHERE deleted = 1"),
                ("leaves", "SELECT count(*) FROM leaves"), ("conflicts", "SELECT count(*) FROM conflicts"),
                ("quarantined", "SELECT count(*) FROM quarantine WHERE status = 'open'"),
                ("changesets", "SELECT count(*) FROM changesets"),
                ("agents", "SELECT count(*) FROM agents WHERE status = 'active'"),
                ("agents_revoked", "SELECT count(*) FROM agents WHERE status = 'revoked'"),
                ("agents_cloned", "SELECT count(*) FROM agents WHERE cloned_ms IS NOT NULL"),
            ] {
                out[k] = try Int.fetchOne(db, sql: sql) ?? 0
            }
            out["stream_seq"] = Int(try AgentStore.meta(db, "stream_seq").flatMap(Int.init) ?? 0)
            return out
        }
    }

    // MARK: the hub stream

    /// Changes for one agent's commune after `since`, within about `maxBytes`
    /// (DESIGN §4, compaction): the current leaves changed after the cursor,
    /// except the agent's own writes (it has them), plus catalog entries.
    /// `maxBytes` is in the units of ``estimatedSize(_:)``; the caller scales it
    /// to sealed bytes with a measured ratio (HubService).
    /// - Returns: the body, the cursor it reaches, whether more wait, the
    ///   stream head, and, when more wait, how many of this agent's changes lie
    ///   after the cursor reached.
    public func changes(for agent: AgentInfo, since: UInt64, maxBytes: Int) throws -> StreamPage {
        try pool.read { db in
            let head = try AgentStore.meta(db, "stream_seq").flatMap(UInt64.init) ?? 0
            // SPEC §9.4: a cursor past the head is not a position this hub gave out.
            guard since <= head else {
                throw HubError(
                    .cursorAhead,
                    "the download cursor \(since) is past this hub's stream head \(head): the hub's store may have been restored from an older backup, or the agent talks to another hub; ask the operator"
                )
            }
            var catalog: [CatalogItem] = []
            var budget = maxBytes
            var cut: UInt64? = nil
            for r in try Row.fetchAll(
                db, sql: "SELECT * FROM catalog WHERE seq > ? ORDER BY seq", arguments: [Int64(clamping: since)])
            {
                guard let kind = CatalogItem.Kind(rawValue: r["kind"]) else { continue }
                let item = CatalogItem(
                    kind: kind, key: r["key"], seq: UInt64(clamping: r["seq"] as Int64),
                    json: [UInt8](r["json"] as Data))
                catalog.append(item)
                budget -= item.json.count + 32
            }
            var writes: [FieldWrite] = []
            var scopes: [RecordID: RecordScope] = [:]
            var last = since
            let stmt = try db.cachedStatement(
                sql: """
                    SELECT l.record, l.field, l.t, l.v, l.hlc, l.origin, l.prev, l.alive, l.covers, l.seq,
                        r.form_id, r.form_version FROM leaves l JOIN records r ON r.id = l.record
                    WHERE l.commune = ? AND l.seq > ? AND l.origin != ? ORDER BY l.seq LIMIT 2000
                    """)
            outer: while true {
                let rows = try Row.fetchAll(stmt, arguments: [agent.commune, Int64(clamping: last), agent.id])
                if rows.isEmpty { break }
                for row in rows {
                    let seq = UInt64(clamping: row[9] as Int64)
                    guard let w = FieldWrite(row: row) else { continue }
                    let size = Self.estimatedSize(w)
                    if budget - size < 0 && !writes.isEmpty {
                        cut = last
                        break outer
                    }
                    budget -= size
                    writes.append(w)
                    scopes[w.record] = RecordScope(
                        formID: row[10], formVersion: row[11], commune: agent.commune)
                    last = seq
                }
            }
            let seqTo = cut ?? max(head, since)
            if cut != nil { catalog.removeAll { $0.seq > seqTo } }
            var remaining = 0
            if cut != nil {
                // For `ferry status` at the agent ("N changes behind"): one range
                // scan of the stream index, only while the agent is behind.
                remaining =
                    try Int.fetchOne(
                        db,
                        sql: "SELECT count(*) FROM leaves WHERE commune = ? AND seq > ? AND origin != ?",
                        arguments: [agent.commune, Int64(clamping: seqTo), agent.id]) ?? 0
            }
            return StreamPage(
                body: ChangeSetBody(writes: writes, scopes: scopes, catalog: catalog), seqTo: seqTo, more: cut != nil,
                head: max(head, seqTo), remaining: remaining)
        }
    }

    /// The stream's size estimate of one write, before encoding and compression.
    public static func estimatedSize(_ w: FieldWrite) -> Int {
        40 + w.field.utf8.count + approxSize(w.value) + 12 * (w.prev.count + w.covers.count)
    }

    /// The estimate of a whole body, in the units `changes(for:since:maxBytes:)` budgets in.
    public static func estimatedSize(_ body: ChangeSetBody) -> Int {
        body.writes.reduce(0) { $0 + estimatedSize($1) } + body.catalog.reduce(0) { $0 + $1.json.count + 32 }
    }

    static func approxSize(_ v: Value) -> Int {
        switch v {
        case .text(let s): s.utf8.count
        case .bytes(let b): b.count
        default: 8
        }
    }
}
