import FerryCore
import FerryProtocol
import FerryStore
import Foundation
import PostgresNIO

/// ``HubTransaction`` over one PostgreSQL transaction (READ COMMITTED, with
/// the row locks ``PostgresHubStore`` describes).
final class PostgresHubTransaction: HubTransaction {
    let c: PGConnection
    let store: PostgresHubStore
    /// Leaves ``stage(_:changeSet:atMillis:)`` put into `ferry_stage` (and the
    /// records it created), for `persist` of the same records; nil when nothing is staged.
    private var staged: Int?

    init(c: PGConnection, store: PostgresHubStore) {
        self.c = c
        self.store = store
    }

    /// Inside a write transaction the agent's row is locked until commit: the
    /// per-origin serialisation of SPEC §7.2 across every hub process.
    func agent(id: String) throws -> AgentInfo? { try PostgresHubStore.agent(c, id: id, lock: true) }

    func streamHead() throws -> UInt64 { try c.one("SELECT head FROM stream WHERE id = 1")?.u64(0) ?? 0 }

    func storedChangeSet(id: [UInt8]) throws -> StoredChangeSet? {
        try c.one("SELECT seq_from, seq_to, body_digest FROM changesets WHERE id = \(ByteBuffer(id))").map(Self.stored)
    }

    func storedChangeSet(origin: String, seqFrom: UInt64) throws -> StoredChangeSet? {
        try c.one(
            "SELECT seq_from, seq_to, body_digest FROM changesets WHERE origin = \(origin) AND seq_from = \(Int64(clamping: seqFrom)) LIMIT 1"
        ).map(Self.stored)
    }

    static func stored(_ r: PostgresRandomAccessRow) throws -> StoredChangeSet {
        StoredChangeSet(seqFrom: try r.u64(0), seqTo: try r.u64(1), digest: try r.optBytes(2))
    }

    func scopes(of records: [RecordID]) throws -> [RecordID: RecordScope] {
        var out: [RecordID: RecordScope] = [:]
        guard !records.isEmpty else { return out }
        // One round trip per 1,000 records.
        var i = 0
        while i < records.count {
            let chunk = records[i..<min(i + 1000, records.count)]
            i += 1000
            var q = PostgresQuery(unsafeSQL: "")
            var sql = "SELECT id, form_id, form_version, commune FROM records WHERE id IN ("
            for (k, r) in chunk.enumerated() {
                sql += k == 0 ? "$\(k + 1)" : ", $\(k + 1)"
                q.binds.append(ByteBuffer(r.bytes))
            }
            q.sql = sql + ")"
            for row in try c.rows(q) {
                guard let rid = RecordID(bytes: try row.bytes(0)) else { continue }
                out[rid] = RecordScope(
                    formID: try row.string(1), formVersion: Int(try row.int64(2)), commune: try row.string(3))
            }
        }
        return out
    }

    func forms() throws -> [String: FormDefinition] { try store.formsByKey(c) }

    static let leafColumns = leafColumns("")
    static func leafColumns(_ alias: String) -> String {
        let p = alias.isEmpty ? "" : alias + "."
        return ["field", "t", "v", "hlc", "origin", "prev", "alive", "covers"].map { p + $0 }.joined(separator: ", ")
    }

    /// A leaf from a row whose first columns are ``leafColumns``.
    static func write(_ record: RecordID, _ r: PostgresRandomAccessRow) throws -> FieldWrite {
        FieldWrite(
            record: record, field: try r.string(0),
            id: WriteID(hlc: HLC(raw: UInt64(bitPattern: try r.int64(3))), origin: OriginID(try r.string(4))),
            prev: StoredRefs.decode(try r.optBytes(5)),
            value: PostgresValues.value(tag: try r.int64(1), try r.optBytes(2)),
            alive: StoredRefs.decode(try r.optBytes(6)).first, covers: StoredRefs.decode(try r.optBytes(7)))
    }

    static func registers(_ c: PGConnection, of record: RecordID) throws -> [String: LeafRegister] {
        var byField: [String: [FieldWrite]] = [:]
        for r in try c.rows("SELECT \(unescaped: leafColumns) FROM leaves WHERE record = \(ByteBuffer(record.bytes))") {
            let w = try write(record, r)
            byField[w.field, default: []].append(w)
        }
        return byField.mapValues { LeafRegister(leaves: $0) }
    }

    /// One round trip per 1,000 records.
    func registers(of records: [RecordID]) throws -> [RecordID: [String: LeafRegister]] {
        var byRecord: [RecordID: [String: [FieldWrite]]] = [:]
        var i = 0
        while i < records.count {
            let chunk = records[i..<min(i + 1000, records.count)]
            i += 1000
            var q = PostgresQuery(unsafeSQL: "")
            q.sql =
                "SELECT \(Self.leafColumns), record FROM leaves WHERE record IN ("
                + chunk.indices.map { "$\($0 - chunk.startIndex + 1)" }.joined(separator: ", ") + ")"
            for r in chunk { q.binds.append(ByteBuffer(r.bytes)) }
            for row in try c.rows(q) {
                guard let rid = RecordID(bytes: try row.bytes(8)) else { continue }
                let w = try Self.write(rid, row)
                byRecord[rid, default: [:]][w.field, default: []].append(w)
            }
        }
        return byRecord.mapValues { $0.mapValues { LeafRegister(leaves: $0) } }
    }

    func clock() throws -> HybridLogicalClock {
        let last = try c.one("SELECT last FROM hub_clock WHERE id = 1")?.int64(0) ?? 0
        return HybridLogicalClock(
            wall: SystemClockProxy(store: store), last: HLC(raw: UInt64(bitPattern: last)),
            futureBoundMillis: store.futureBoundMillis)
    }

    /// Two hubs observe clocks concurrently: the stored clock only moves forward.
    func save(clock: HybridLogicalClock) throws {
        try c.exec(
            "UPDATE hub_clock SET last = greatest(last, \(Int64(bitPattern: clock.last.raw))) WHERE id = 1")
    }

    static func reserve(_ c: PGConnection, _ count: Int) throws -> UInt64 {
        // The row lock this UPDATE takes is held to commit: see PostgresHubStore.
        let head =
            try c.one("UPDATE stream SET head = head + \(Int64(count)) WHERE id = 1 RETURNING head")?.int64(0) ?? 0
        return UInt64(clamping: head - Int64(count) + 1)
    }

    func reserveStream(_ count: Int) throws -> UInt64 { try Self.reserve(c, count) }

    /// Before the stream row is locked: creates the new records, drops the
    /// removed leaves and copies the added leaves, in order, into this
    /// connection's temporary `ferry_stage` table (one `unnest` statement per
    /// 5,000 leaves). `persist` then moves them into `leaves` with their stream
    /// positions in one server-side `INSERT … SELECT`, so the lock every hub
    /// process's ingest waits on is held for that statement and the commit only.
    func stage(_ records: [MergedRecord], changeSet: [UInt8]?, atMillis: UInt64) throws {
        guard store.stagesLeaves else { return }
        try insertRecords(records, atMillis: atMillis)
        try deleteRemoved(records)
        // Dropped at the end of the session; emptied at every commit.
        try c.exec(
            """
            CREATE TEMP TABLE IF NOT EXISTS ferry_stage(ord bigint NOT NULL, record bytea NOT NULL, field text NOT NULL,
              t bigint NOT NULL, v bytea, hlc bigint NOT NULL, origin text NOT NULL, prev bytea, alive bytea, covers bytea,
              commune text NOT NULL) ON COMMIT DELETE ROWS
            """)
        // Empty at a transaction's start (emptied at commit, or rolled back);
        // rows stay only when one transaction merges twice (operator writes).
        try c.exec("DELETE FROM ferry_stage")
        var rows: [(RecordID, String, FieldWrite)] = []
        for r in records {
            for w in r.merge.added { rows.append((r.batch.record, r.batch.scope.commune, w)) }
        }
        var start = 0
        while start < rows.count {
            let chunk = rows[start..<min(start + 5000, rows.count)]
            var ord: [Int64] = []
            var rec: [ByteBuffer] = []
            var field: [String] = []
            var t: [Int64] = []
            var v: [ByteBuffer] = []
            var vnull: [Bool] = []
            var hlc: [Int64] = []
            var origin: [String] = []
            var prev: [ByteBuffer] = []
            var alive: [ByteBuffer] = []
            var covers: [ByteBuffer] = []
            var commune: [String] = []
            for (k, (record, comm, w)) in zip(chunk.indices, chunk) {
                ord.append(Int64(k))
                rec.append(ByteBuffer(record.bytes))
                field.append(w.field)
                t.append(Int64(ValueTag(of: w.value).rawValue))
                let bytes = PostgresValues.bytes(w.value)
                v.append(ByteBuffer(bytes ?? []))
                vnull.append(bytes == nil)
                hlc.append(Int64(bitPattern: w.id.hlc.raw))
                origin.append(w.id.origin.rawValue)
                prev.append(ByteBuffer(StoredRefs.encode(w.prev)))
                alive.append(ByteBuffer(StoredRefs.encode(w.alive.map { [$0] } ?? [])))
                covers.append(ByteBuffer(StoredRefs.encode(w.covers)))
                commune.append(comm)
            }
            start += chunk.count
            try c.exec(
                """
                INSERT INTO ferry_stage(ord, record, field, t, v, hlc, origin, prev, alive, covers, commune)
                SELECT u.ord, u.record, u.field, u.t, CASE WHEN u.vnull THEN NULL ELSE u.v END, u.hlc, u.origin, u.prev,
                  u.alive, u.covers, u.commune
                FROM unnest(\(ord)::bigint[], \(rec)::bytea[], \(field)::text[], \(t)::bigint[], \(v)::bytea[],
                  \(vnull)::bool[], \(hlc)::bigint[], \(origin)::text[], \(prev)::bytea[], \(alive)::bytea[],
                  \(covers)::bytea[], \(commune)::text[])
                  AS u(ord, record, field, t, v, vnull, hlc, origin, prev, alive, covers, commune)
                """)
        }
        staged = rows.count
    }

    /// New records, one statement per 1,000 (a record another hub created meanwhile is kept).
    private func insertRecords(_ records: [MergedRecord], atMillis: UInt64) throws {
        let created = Int64(clamping: atMillis)
        let new = records.filter(\.batch.isNew).map(\.batch)
        var i = 0
        while i < new.count {
            let chunk = new[i..<min(i + 1000, new.count)]
            i += 1000
            var q = PostgresQuery(unsafeSQL: "")
            var parts: [String] = []
            for (k, b) in chunk.enumerated() {
                let n = k * 5
                parts.append("($\(n + 1), $\(n + 2), $\(n + 3), $\(n + 4), $\(n + 5))")
                q.binds.append(ByteBuffer(b.record.bytes))
                q.binds.append(b.scope.formID)
                q.binds.append(Int64(b.scope.formVersion))
                q.binds.append(b.scope.commune)
                q.binds.append(created)
            }
            q.sql =
                "INSERT INTO records(id, form_id, form_version, commune, created_ms) VALUES "
                + parts.joined(separator: ", ") + " ON CONFLICT (id) DO NOTHING"
            try c.exec(q)
        }
    }

    private func deleteRemoved(_ records: [MergedRecord]) throws {
        for r in records {
            let rid = ByteBuffer(r.batch.record.bytes)
            for (field, id) in r.merge.removed {
                try c.exec(
                    "DELETE FROM leaves WHERE record = \(rid) AND field = \(field) AND hlc = \(Int64(bitPattern: id.hlc.raw)) AND origin = \(id.origin.rawValue)"
                )
            }
        }
    }

    func persist(_ records: [MergedRecord], firstSeq: UInt64, changeSet: [UInt8]?, atMillis: UInt64) throws {
        let created = Int64(clamping: atMillis)
        let added = records.reduce(0) { $0 + $1.merge.added.count }
        if let n = staged, n == added {
            // The staged leaves at positions firstSeq + ord: the order `persist` documents.
            staged = nil
            let cs = changeSet.map { ByteBuffer($0) }
            let moved = try c.exec(
                """
                INSERT INTO leaves(record, field, t, v, hlc, origin, prev, alive, covers, seq, commune, changeset)
                SELECT record, field, t, v, hlc, origin, prev, alive, covers, \(Int64(clamping: firstSeq)) + ord, commune, \(cs)
                FROM ferry_stage
                """)
            guard moved == added else {
                throw StoreFault(
                    .databaseUnavailable, path: store.location,
                    detail: "staged \(added) leaves but \(moved) reached the leaves table")
            }
            try finish(records, created: created)
            return
        }
        staged = nil
        // Nothing staged: new records first, then removed leaves, then every added leaf.
        try insertRecords(records, atMillis: atMillis)
        try deleteRemoved(records)
        var rows: [(RecordID, String, FieldWrite, UInt64)] = []
        var seq = firstSeq
        for r in records {
            for w in r.merge.added {
                rows.append((r.batch.record, r.batch.scope.commune, w, seq))
                seq += 1
            }
        }
        try insertLeaves(rows, changeSet: changeSet)
        try finish(records, created: created)
    }

    /// Each record's deleted flag and conflicts, when its merge changed them.
    private func finish(_ records: [MergedRecord], created: Int64) throws {
        for r in records {
            let m = r.merge
            let rid = ByteBuffer(r.batch.record.bytes)
            if m.isDeleted != m.wasDeleted {
                try c.exec("UPDATE records SET deleted = \(m.isDeleted) WHERE id = \(rid)")
            }
            guard m.conflictsChanged else { continue }
            for k in m.conflictsBefore.subtracting(m.conflictsAfter).sorted() {
                try c.exec(
                    "DELETE FROM conflicts WHERE record = \(rid) AND field = \(k.field) AND kind = \(k.kind.rawValue)")
            }
            for k in m.conflictsAfter.subtracting(m.conflictsBefore).sorted() {
                try c.exec(
                    """
                    INSERT INTO conflicts(record, field, kind, commune, detected_ms)
                    VALUES (\(rid), \(k.field), \(k.kind.rawValue), \(r.batch.scope.commune), \(created)) ON CONFLICT DO NOTHING
                    """)
            }
        }
    }

    /// Many leaves per statement: one round trip per 400 rows.
    private func insertLeaves(_ rows: [(RecordID, String, FieldWrite, UInt64)], changeSet: [UInt8]?) throws {
        let cs = changeSet.map { ByteBuffer($0) }
        var start = 0
        while start < rows.count {
            let chunk = rows[start..<min(start + 400, rows.count)]
            start += 400
            var q = PostgresQuery(unsafeSQL: "")
            var parts: [String] = []
            for (k, (record, commune, w, seq)) in chunk.enumerated() {
                let n = k * 12
                parts.append("(" + (1...12).map { "$\(n + $0)" }.joined(separator: ",") + ")")
                q.binds.append(ByteBuffer(record.bytes))
                q.binds.append(w.field)
                q.binds.append(Int64(ValueTag(of: w.value).rawValue))
                q.binds.append(PostgresValues.bytes(w.value).map { ByteBuffer($0) })
                q.binds.append(Int64(bitPattern: w.id.hlc.raw))
                q.binds.append(w.id.origin.rawValue)
                q.binds.append(ByteBuffer(StoredRefs.encode(w.prev)))
                q.binds.append(ByteBuffer(StoredRefs.encode(w.alive.map { [$0] } ?? [])))
                q.binds.append(ByteBuffer(StoredRefs.encode(w.covers)))
                q.binds.append(Int64(clamping: seq))
                q.binds.append(commune)
                q.binds.append(cs)
            }
            q.sql =
                "INSERT INTO leaves(record, field, t, v, hlc, origin, prev, alive, covers, seq, commune, changeset) VALUES "
                + parts.joined(separator: ", ")
            try c.exec(q)
        }
    }

    func quarantine(_ writes: [RefusedWrite], changeSet: [UInt8]?, atMillis: UInt64) throws {
        let cs = changeSet.map { ByteBuffer($0) }
        for r in writes {
            let w = r.write
            try c.exec(
                """
                INSERT INTO quarantine(changeset, origin, record, field, t, v, hlc, reason, created_ms)
                VALUES (\(cs), \(w.id.origin.rawValue), \(ByteBuffer(w.record.bytes)), \(w.field),
                  \(Int64(ValueTag(of: w.value).rawValue)), \(PostgresValues.bytes(w.value).map { ByteBuffer($0) }),
                  \(Int64(bitPattern: w.id.hlc.raw)), \(r.reason), \(Int64(clamping: atMillis)))
                """)
        }
    }

    func recordChangeSet(_ cs: OpenedChangeSet, agent: String, digest: [UInt8], atMillis: UInt64) throws {
        try c.exec(
            """
            INSERT INTO changesets(id, origin, seq_from, seq_to, received_ms, writes, signed, body_digest)
            VALUES (\(ByteBuffer(cs.header.id)), \(agent), \(Int64(clamping: cs.header.seqFrom)), \(Int64(clamping: cs.header.seqTo)),
              \(Int64(clamping: atMillis)), \(Int64(cs.body.writes.count)), \(ByteBuffer(cs.signedRecord)), \(ByteBuffer(digest)))
            """)
    }

    func advance(agent: String, appliedSeq: UInt64, ack: UInt64, skewMs: Int64, atMillis: UInt64) throws {
        try c.exec(
            """
            UPDATE agents SET applied_seq = \(Int64(clamping: appliedSeq)), acked_cursor = greatest(acked_cursor, \(Int64(clamping: ack))),
              last_seen_ms = \(Int64(clamping: atMillis)), last_skew_ms = \(skewMs), last_error = NULL WHERE id = \(agent)
            """)
    }

    func openConflictCount() throws -> Int { try c.one("SELECT count(*) FROM conflicts")?.int(0) ?? 0 }
}

/// The store's wall clock, for the HLC of one transaction.
struct SystemClockProxy: WallClock {
    let store: PostgresHubStore
    func nowMillis() -> UInt64 { store.nowMillis() }
}

/// How a value is kept in PostgreSQL: its ``ValueTag`` in `t` and its bytes
/// in `v` (big-endian integers, IEEE 754 bits, UTF-8; null for null and bools).
enum PostgresValues {
    static func bytes(_ v: Value) -> [UInt8]? {
        switch v {
        case .null, .bool: nil
        case .int(let i): be(UInt64(bitPattern: i), 8)
        case .double(let d): be(d.bitPattern, 8)
        case .text(let s): Array(s.utf8)
        case .date(let d): be(UInt64(UInt32(bitPattern: d)), 4)
        case .bytes(let b): b
        }
    }

    static func be(_ x: UInt64, _ n: Int) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: x >> (8 * (n - 1 - $0))) }
    }

    static func un(_ b: [UInt8]) -> UInt64 { b.reduce(0) { $0 << 8 | UInt64($1) } }

    /// A row that does not match its tag reads as null (only on damage: the store wrote it).
    static func value(tag: Int64, _ b: [UInt8]?) -> Value {
        switch (UInt8(exactly: tag).flatMap(ValueTag.init(rawValue:)), b) {
        case (.falseValue, _): .bool(false)
        case (.trueValue, _): .bool(true)
        case (.int, .some(let b)) where b.count == 8: .int(Int64(bitPattern: un(b)))
        case (.double, .some(let b)) where b.count == 8: .double(Double(bitPattern: un(b)))
        case (.string, .some(let b)): .text(String(decoding: b, as: UTF8.self))
        case (.date, .some(let b)) where b.count == 4: .date(Int32(bitPattern: UInt32(truncatingIfNeeded: un(b))))
        case (.bytes, .some(let b)): .bytes(b)
        default: .null
        }
    }
}

/// The schema, versioned: each migration runs once, in order, under an
/// advisory lock, so hub processes starting together migrate once.
enum PostgresSchema {
    static let lockKey: Int64 = 0x4665_7272_7900_0001  // "Ferry" + 1

    static let migrations: [(Int64, [String])] = [
        (
            1,
            [
                "CREATE TABLE meta(key text PRIMARY KEY, value text NOT NULL)",
                "CREATE TABLE stream(id int PRIMARY KEY CHECK (id = 1), head bigint NOT NULL)",
                "INSERT INTO stream(id, head) VALUES (1, 0)",
                "CREATE TABLE hub_clock(id int PRIMARY KEY CHECK (id = 1), last bigint NOT NULL)",
                "INSERT INTO hub_clock(id, last) VALUES (1, 0)",
                """
                CREATE TABLE agents(id text PRIMARY KEY, commune text NOT NULL, sign_pk bytea NOT NULL, kx_pk bytea NOT NULL,
                  sign_key_id bytea NOT NULL UNIQUE, status text NOT NULL, hostname text NOT NULL, enrolled_ms bigint NOT NULL,
                  last_seen_ms bigint, last_skew_ms bigint, applied_seq bigint NOT NULL DEFAULT 0,
                  acked_cursor bigint NOT NULL DEFAULT 0, last_error text, cloned_ms bigint,
                  cloned_refusals bigint NOT NULL DEFAULT 0)
                """,
                """
                CREATE TABLE tokens(hash bytea PRIMARY KEY, commune text NOT NULL, created_ms bigint NOT NULL,
                  expires_ms bigint NOT NULL, used_by text)
                """,
                """
                CREATE TABLE catalog(kind text NOT NULL, key text NOT NULL, seq bigint NOT NULL, json bytea NOT NULL,
                  PRIMARY KEY(kind, key))
                """,
                "CREATE INDEX catalog_seq ON catalog(seq)",
                """
                CREATE TABLE records(id bytea PRIMARY KEY, form_id text NOT NULL, form_version bigint NOT NULL,
                  commune text NOT NULL, deleted boolean NOT NULL DEFAULT false, created_ms bigint NOT NULL)
                """,
                "CREATE INDEX records_commune ON records(commune, form_id)",
                """
                CREATE TABLE leaves(record bytea NOT NULL, field text NOT NULL, hlc bigint NOT NULL, origin text NOT NULL,
                  t bigint NOT NULL, v bytea, prev bytea, alive bytea, covers bytea, seq bigint NOT NULL, commune text NOT NULL,
                  changeset bytea, PRIMARY KEY(record, field, hlc, origin))
                """,
                "CREATE INDEX leaves_stream ON leaves(commune, seq)",
                """
                CREATE TABLE changesets(id bytea PRIMARY KEY, origin text NOT NULL, seq_from bigint NOT NULL,
                  seq_to bigint NOT NULL, received_ms bigint NOT NULL, writes bigint NOT NULL, signed bytea NOT NULL,
                  body_digest bytea)
                """,
                "CREATE INDEX changesets_origin ON changesets(origin, seq_from)",
                """
                CREATE TABLE quarantine(id bigserial PRIMARY KEY, changeset bytea, origin text NOT NULL, record bytea NOT NULL,
                  field text NOT NULL, t bigint NOT NULL, v bytea, hlc bigint NOT NULL, reason text NOT NULL,
                  created_ms bigint NOT NULL, status text NOT NULL DEFAULT 'open')
                """,
                """
                CREATE TABLE conflicts(record bytea NOT NULL, field text NOT NULL, kind text NOT NULL, commune text NOT NULL,
                  detected_ms bigint NOT NULL, PRIMARY KEY(record, field, kind))
                """,
            ]
        ),
        (PostgresOperatorSchema.version, PostgresOperatorSchema.statements),
    ]

    /// The newest schema version this build knows.
    static var current: Int64 { migrations.last?.0 ?? 0 }

    static func migrate(_ pool: PostgresConnectionPool) throws {
        do {
            try pool.with { c in
                try c.exec("BEGIN")
                do {
                    try c.exec("SELECT pg_advisory_xact_lock(\(lockKey))")
                    try c.exec(
                        "CREATE TABLE IF NOT EXISTS ferry_schema(version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                    )
                    let have = try c.one("SELECT coalesce(max(version), 0) FROM ferry_schema")?.int64(0) ?? 0
                    // Every version not applied yet runs, in order, even one numbered below
                    // the highest applied (migrations of separate features take separate numbers).
                    let applied = Set(try c.rows("SELECT version FROM ferry_schema").map { try $0.int64(0) })
                    guard have <= current else {
                        throw HubError(
                            .conflict,
                            "the database's Ferry schema is version \(have), newer than this ferry knows (\(current)): upgrade ferry on this hub"
                        )
                    }
                    for (v, statements) in migrations.sorted(by: { $0.0 < $1.0 }) where !applied.contains(v) {
                        for s in statements { try c.exec(PostgresQuery(unsafeSQL: s)) }
                        try c.exec("INSERT INTO ferry_schema(version) VALUES (\(v))")
                    }
                    try c.exec("COMMIT")
                } catch {
                    _ = try? c.exec("ROLLBACK")
                    throw error
                }
            }
        } catch let e as PSQLError {
            throw StoreFault(.databaseUnavailable, path: pool.url.description, detail: PostgresFailure.describe(e))
        }
    }
}
