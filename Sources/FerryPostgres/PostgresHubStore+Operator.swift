import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import PostgresNIO

// The operator features on PostgreSQL (issue 11): the same methods, orders and
// cursors as SQLiteHubStore+Lists/Lifecycle/Search and OperatorAccounts.swift.
// Text keys are ordered `COLLATE "C"` (bytewise, as SQLite's BINARY), so a page
// and its cursor mean the same whatever locale the database was created with.

/// Migration 11 ("operators", numbered after the issue; the ingest-speed work
/// may take the numbers below it): accounts, hashed API tokens, console
/// sessions, the operator logs, form drafts, the CSV import ledger, and who
/// closed a quarantine entry.
enum PostgresOperatorSchema {
    static let version: Int64 = 11
    static let statements: [String] = [
        """
        CREATE TABLE operators(name text PRIMARY KEY, role text NOT NULL, password text,
          disabled boolean NOT NULL DEFAULT false, created_ms bigint NOT NULL)
        """,
        """
        CREATE TABLE operator_tokens(hash bytea PRIMARY KEY, name text NOT NULL, label text NOT NULL,
          created_ms bigint NOT NULL, expires_ms bigint NOT NULL)
        """,
        """
        CREATE TABLE operator_sessions(hash bytea PRIMARY KEY, name text NOT NULL, role text NOT NULL,
          csrf text NOT NULL, expires_ms bigint NOT NULL)
        """,
        "CREATE INDEX operator_sessions_expiry ON operator_sessions(expires_ms)",
        """
        CREATE TABLE operator_log(id bigserial PRIMARY KEY, at_ms bigint NOT NULL, name text NOT NULL,
          action text NOT NULL, record text, detail text NOT NULL, target text NOT NULL DEFAULT '')
        """,
        "CREATE INDEX operator_log_record ON operator_log(record, id)",
        """
        CREATE TABLE form_drafts(key text PRIMARY KEY, json bytea NOT NULL, created_ms bigint NOT NULL,
          created_by text NOT NULL)
        """,
        """
        CREATE TABLE csv_imports(digest bytea PRIMARY KEY, form text NOT NULL, commune text NOT NULL,
          records bigint NOT NULL, at_ms bigint NOT NULL, by_user text NOT NULL)
        """,
        "ALTER TABLE quarantine ADD COLUMN closed_by text",
        "ALTER TABLE quarantine ADD COLUMN closed_ms bigint",
        "ALTER TABLE quarantine ADD COLUMN note text",
        "CREATE INDEX quarantine_status ON quarantine(status, id)",
        "CREATE INDEX conflicts_commune ON conflicts(commune)",
    ]
}

/// Builds a query whose clauses are chosen at run time, binding each value.
struct PGQueryBuilder {
    var binds = PostgresBindings()
    /// Binds `value` and returns its placeholder (`$n`).
    mutating func bind<V: PostgresDynamicTypeEncodable>(_ value: V) -> String {
        binds.append(value)
        return "$\(binds.count)"
    }
    func query(_ sql: String) -> PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
    static func whereSQL(_ clauses: [String]) -> String {
        clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
    }
}

extension PostgresHubStore {
    // MARK: pages

    /// The smallest UUIDv7 id of millisecond `ms` (ids sort by time, bytewise).
    static func idBound(_ ms: UInt64) -> ByteBuffer {
        let m = min(ms, (UInt64(1) << 48) - 1)
        return ByteBuffer(
            (0..<6).map { UInt8(truncatingIfNeeded: m >> (8 * (5 - $0))) } + [UInt8](repeating: 0, count: 10))
    }

    public func recordPage(
        commune: String?, form: String?, includeDeleted: Bool, after: RecordID?, limit: Int,
        createdIn: (start: UInt64, end: UInt64)? = nil
    ) throws -> StorePage<RecordID> {
        func filters(_ b: inout PGQueryBuilder) -> [String] {
            var c: [String] = []
            if let r = createdIn {
                c.append("id >= \(b.bind(Self.idBound(r.start))) AND id < \(b.bind(Self.idBound(r.end)))")
            }
            if let commune { c.append("commune = \(b.bind(commune))") }
            if let form { c.append("form_id = \(b.bind(form))") }
            if !includeDeleted { c.append("NOT deleted") }
            return c
        }
        return try transact(readOnly: true) { conn in
            var b = PGQueryBuilder()
            var c = filters(&b)
            if let after { c.append("id < \(b.bind(ByteBuffer(after.bytes)))") }
            let lim = b.bind(Int64(clamping: max(0, limit)))
            let ids = try conn.rows(
                b.query("SELECT id FROM records\(PGQueryBuilder.whereSQL(c)) ORDER BY id DESC LIMIT \(lim)")
            ).compactMap { RecordID(bytes: try $0.bytes(0)) }
            guard let last = ids.last else { return StorePage(items: [], remaining: 0) }
            var b2 = PGQueryBuilder()
            let c2 = filters(&b2) + ["id < \(b2.bind(ByteBuffer(last.bytes)))"]
            let rest = try conn.one(b2.query("SELECT count(*) FROM records\(PGQueryBuilder.whereSQL(c2))"))?.int(0) ?? 0
            return StorePage(items: ids, remaining: rest)
        }
    }

    public func conflictPage(_ f: ConflictFilter, after: ConflictKey?, limit: Int) throws -> StorePage<ConflictReport> {
        let now = nowMillis()
        func filters(_ b: inout PGQueryBuilder) -> [String] {
            var c: [String] = []
            if let commune = f.commune { c.append("c.commune = \(b.bind(commune))") }
            if let form = f.form { c.append("r.form_id = \(b.bind(form))") }
            if let field = f.field { c.append("c.field = \(b.bind(field))") }
            if let age = f.olderThanMillis {
                c.append("c.detected_ms <= \(b.bind(Int64(clamping: now >= age ? now - age : 0)))")
            }
            return c
        }
        func afterKey(_ k: ConflictKey, _ b: inout PGQueryBuilder) -> String {
            let r = b.bind(ByteBuffer(k.record.bytes))
            let fl = b.bind(k.field)
            let kd = b.bind(k.kind)
            return
                "(c.record > \(r) OR (c.record = \(r) AND (c.field COLLATE \"C\" > \(fl) OR (c.field = \(fl) AND c.kind COLLATE \"C\" > \(kd)))))"
        }
        let from = " FROM conflicts c JOIN records r ON r.id = c.record"
        return try transact(readOnly: true) { conn in
            var b = PGQueryBuilder()
            var c = filters(&b)
            if let k = after { c.append(afterKey(k, &b)) }
            let lim = b.bind(Int64(clamping: max(0, limit)))
            let found = try conn.rows(
                b.query(
                    "SELECT c.record, c.field, c.kind, c.commune, c.detected_ms\(from)\(PGQueryBuilder.whereSQL(c)) ORDER BY c.record, c.field COLLATE \"C\", c.kind COLLATE \"C\" LIMIT \(lim)"
                ))
            var rows: [(RecordID, String, String, String, UInt64)] = []
            var views: [RecordID: HubRecordView] = [:]
            var lastKey: ConflictKey?
            for r in found {
                guard let rid = RecordID(bytes: try r.bytes(0)) else { continue }
                let row = (rid, try r.string(1), try r.string(2), try r.string(3), try r.u64(4))
                lastKey = ConflictKey(record: rid, field: row.1, kind: row.2)
                rows.append(row)
                if views[rid] == nil { views[rid] = try Self.hubView(rid, conn) }
            }
            guard let lastKey else { return StorePage(items: [], remaining: 0) }
            var communeOf: [String: String] = [:]
            for r in try conn.rows("SELECT id, commune FROM agents") { communeOf[try r.string(0)] = try r.string(1) }
            var b2 = PGQueryBuilder()
            let c2 = filters(&b2) + [afterKey(lastKey, &b2)]
            let rest =
                try conn.one(b2.query("SELECT count(*)\(from)\(PGQueryBuilder.whereSQL(c2))"))?.int(0) ?? 0
            return StorePage(
                items: Self.conflictReports(rows: rows, views: views, communeOf: communeOf), remaining: rest)
        }
    }

    static let quarantineColumns =
        "id, changeset, origin, record, field, t, v, reason, created_ms, status, closed_by, closed_ms, note"

    static func quarantineEntry(_ r: PostgresRandomAccessRow) throws -> QuarantineEntry {
        let v = PostgresValues.value(tag: try r.int64(5), try r.optBytes(6))
        return QuarantineEntry(
            id: try r.int64(0), changeSet: hex(try r.optBytes(1) ?? []), origin: try r.string(2),
            record: RecordID(bytes: try r.bytes(3))?.description ?? "?", field: try r.string(4), value: JSONValue(v),
            valueType: v.typeName, reason: try r.string(7), timeMs: try r.u64(8), status: try r.string(9),
            closedBy: try r.optString(10), closedMs: try r.optInt64(11).map { UInt64(clamping: $0) },
            note: try r.optString(12))
    }

    public func quarantinePage(status: String? = QuarantineStatus.open, after: Int64?, limit: Int) throws -> StorePage<
        QuarantineEntry
    > {
        func filters(_ b: inout PGQueryBuilder) -> [String] {
            status.map { ["status = \(b.bind($0))"] } ?? []
        }
        return try transact(readOnly: true) { conn in
            var b = PGQueryBuilder()
            var c = filters(&b)
            if let after { c.append("id > \(b.bind(after))") }
            let lim = b.bind(Int64(clamping: max(0, limit)))
            let items = try conn.rows(
                b.query(
                    "SELECT \(Self.quarantineColumns) FROM quarantine\(PGQueryBuilder.whereSQL(c)) ORDER BY id LIMIT \(lim)"
                )
            ).map(Self.quarantineEntry)
            guard let last = items.last else { return StorePage(items: [], remaining: 0) }
            var b2 = PGQueryBuilder()
            let c2 = filters(&b2) + ["id > \(b2.bind(last.id))"]
            let rest =
                try conn.one(b2.query("SELECT count(*) FROM quarantine\(PGQueryBuilder.whereSQL(c2))"))?.int(0) ?? 0
            return StorePage(items: items, remaining: rest)
        }
    }

    public func openConflicts(record: RecordID) throws -> [(field: String, kind: String)] {
        try transact(readOnly: true) { c in
            try c.rows(
                "SELECT field, kind FROM conflicts WHERE record = \(ByteBuffer(record.bytes)) ORDER BY field COLLATE \"C\", kind COLLATE \"C\""
            ).map { (try $0.string(0), try $0.string(1)) }
        }
    }

    public func openItemsByCommune() throws -> (conflicts: [String: Int], quarantined: [String: Int]) {
        try transact(readOnly: true) { c in
            func counts(_ q: PostgresQuery) throws -> [String: Int] {
                var out: [String: Int] = [:]
                for r in try c.rows(q) {
                    if let k = try r.optString(0) { out[k, default: 0] += try r.int(1) }
                }
                return out
            }
            return (
                try counts("SELECT commune, count(*) FROM conflicts GROUP BY commune"),
                try counts(
                    """
                    SELECT coalesce(r.commune, a.commune), count(*) FROM quarantine q
                    LEFT JOIN records r ON r.id = q.record LEFT JOIN agents a ON a.id = q.origin
                    WHERE q.status = 'open' GROUP BY 1
                    """)
            )
        }
    }

    /// ``SQLiteHubStore/searchRecords(text:commune:limit:)`` with `ILIKE`: case-insensitive
    /// (beyond ASCII too, by the database's character classes), a scan of the text leaves.
    public func searchRecords(text: String, commune: String?, limit: Int) throws -> [RecordID] {
        let limit = max(1, min(limit, 1000))
        guard let pattern = Self.likePattern(text) else { return try recordIDs(commune: commune, limit: limit) }
        let tag = Int64(ValueTag.string.rawValue)
        return try transact(readOnly: true) { c in
            try c.rows(
                """
                SELECT DISTINCT record FROM leaves WHERE t = \(tag) AND convert_from(v, 'UTF8') ILIKE \(pattern) ESCAPE '\\'
                AND (\(commune)::text IS NULL OR commune = \(commune)) ORDER BY record DESC LIMIT \(Int64(limit))
                """
            ).compactMap { RecordID(bytes: try $0.bytes(0)) }
        }
    }

    // MARK: the operator trail

    /// One row of the operator log, in the caller's transaction (SQLite: `SQLiteHubStore.noteAction`).
    static func noteAction(
        _ c: PGConnection, by: String, action: String, target: String, detail: String, at: UInt64,
        record: String? = nil
    ) throws {
        try c.exec(
            "INSERT INTO operator_log(at_ms, name, action, record, detail, target) VALUES (\(Int64(clamping: at)), \(by), \(action), \(record), \(detail), \(target))"
        )
    }

    public func noteAction(by: String, action: String, target: String, detail: String = "", record: String? = nil)
        throws
    {
        let now = nowMillis()
        try transact { c in
            try Self.noteAction(c, by: by, action: action, target: target, detail: detail, at: now, record: record)
        }
    }

    // MARK: forms

    public func publish(form: FormDefinition, by: String) throws {
        if let e = SQLiteHubStore.formProblems(form) { throw e }
        try publish(form: form)
        let now = nowMillis()
        let key = "\(form.id)@\(form.version)"
        try transact { c in
            try c.exec("DELETE FROM form_drafts WHERE key = \(key)")
            try Self.noteAction(c, by: by, action: "form.publish", target: key, detail: "", at: now)
        }
    }

    public func saveDraft(form: FormDefinition, by: String) throws {
        if let e = SQLiteHubStore.formProblems(form) { throw e }
        let key = "\(form.id)@\(form.version)"
        if try forms().contains(where: { $0.id == form.id && $0.version == form.version }) {
            throw HubError(.formImmutable, "form \(key) is already published: make the draft a new version")
        }
        let now = nowMillis()
        let json = ByteBuffer(try SQLiteHubStore.json(form))
        try transact { c in
            try c.exec(
                """
                INSERT INTO form_drafts(key, json, created_ms, created_by) VALUES (\(key), \(json), \(Int64(clamping: now)), \(by))
                ON CONFLICT (key) DO UPDATE SET json = excluded.json, created_ms = excluded.created_ms, created_by = excluded.created_by
                """)
            try Self.noteAction(c, by: by, action: "form.draft", target: key, detail: "", at: now)
        }
    }

    public func drafts() throws -> [FormDefinition] {
        try transact(readOnly: true) { c in
            try c.rows("SELECT json FROM form_drafts ORDER BY key COLLATE \"C\"").compactMap {
                try? JSONDecoder().decode(FormDefinition.self, from: Data(try $0.bytes(0)))
            }
        }
    }

    public func retire(form id: String, version: Int, by: String) throws {
        guard var f = try forms().first(where: { $0.id == id && $0.version == version }) else {
            throw HubError(.notFound, "form \(id) v\(version) is not published")
        }
        if f.retired == true { return }
        f.retired = true
        let now = nowMillis()
        let json = ByteBuffer(try SQLiteHubStore.json(f))
        let key = "\(id)@\(version)"
        try transact { c in
            // The only change a published version may take: it streams again, retired.
            let seq = try PostgresHubTransaction.reserve(c, 1)
            try c.exec(
                "UPDATE catalog SET seq = \(Int64(clamping: seq)), json = \(json) WHERE kind = 'form' AND key = \(key)")
            try Self.noteAction(c, by: by, action: "form.retire", target: key, detail: "", at: now)
        }
    }

    public func migrate(form id: String, from: Int, to: Int, dryRun: Bool, by: String) throws -> MigrationReportV1 {
        let forms = try self.forms()
        guard forms.contains(where: { $0.id == id && $0.version == from }) else {
            throw HubError(.notFound, "form \(id) v\(from) is not published")
        }
        guard let target = forms.first(where: { $0.id == id && $0.version == to }) else {
            throw HubError(.notFound, "form \(id) v\(to) is not published: publish it first")
        }
        guard to > from else {
            throw HubError(.badRequest, "records move to a newer version only: --to \(to) must be above --from \(from)")
        }
        let now = nowMillis()
        let (f64, t64) = (Int64(from), Int64(to))
        return try transact { c in
            // The stream row first, as every writer takes it: no record of v`from`
            // is created or written while its records move.
            if !dryRun { try c.exec("SELECT head FROM stream WHERE id = 1 FOR UPDATE") }
            let ids = try c.rows(
                "SELECT id FROM records WHERE form_id = \(id) AND form_version = \(f64) ORDER BY id"
            ).compactMap { RecordID(bytes: try $0.bytes(0)) }
            var check = FormMigrationProblems(target: target)
            for rid in ids {
                guard let view = try Self.hubView(rid, c) else { continue }
                check.check(rid, values: view.winners.filter { $0.key != deletedField })
            }
            let (problems, count) = (check.problems, check.count)
            if !dryRun && !ids.isEmpty {
                let mine = "SELECT id FROM records WHERE form_id = $1 AND form_version = $2"
                let n =
                    try c.one(
                        "SELECT count(*) FROM leaves WHERE record IN (SELECT id FROM records WHERE form_id = \(id) AND form_version = \(f64))"
                    )?
                    .int64(0) ?? 0
                if n > 0 {
                    // Stream every leaf again under the record's new scope (re-delivery is idempotent).
                    let first = Int64(clamping: try PostgresHubTransaction.reserve(c, Int(n)))
                    var b = PostgresBindings()
                    b.append(id)
                    b.append(f64)
                    b.append(first)
                    try c.exec(
                        PostgresQuery(
                            unsafeSQL: """
                                UPDATE leaves l SET seq = $3 - 1 + n.rn FROM (
                                  SELECT record, field, hlc, origin,
                                    row_number() OVER (ORDER BY record, field COLLATE "C", hlc, origin COLLATE "C") AS rn
                                  FROM leaves WHERE record IN (\(mine))) n
                                WHERE l.record = n.record AND l.field = n.field AND l.hlc = n.hlc AND l.origin = n.origin
                                """, binds: b))
                }
                try c.exec("UPDATE records SET form_version = \(t64) WHERE form_id = \(id) AND form_version = \(f64)")
                try Self.noteAction(
                    c, by: by, action: "form.migrate", target: "\(id)@\(from)->\(to)",
                    detail: "\(ids.count) records, \(count) values reported", at: now)
            }
            return MigrationReportV1(
                form: id, from: from, to: to, records: ids.count, dryRun: dryRun, problemCount: count,
                problems: problems)
        }
    }

    // MARK: quarantine closed by a person

    public func quarantineEntry(id: Int64) throws -> QuarantineEntry? {
        try transact(readOnly: true) { c in
            try c.one("SELECT \(unescaped: Self.quarantineColumns) FROM quarantine WHERE id = \(id)").map(
                Self.quarantineEntry)
        }
    }

    public func closeQuarantine(id: Int64, status: String, by: String, note: String) throws {
        let now = nowMillis()
        try transact { c in
            let n = try c.exec(
                """
                UPDATE quarantine SET status = \(status), closed_by = \(by), closed_ms = \(Int64(clamping: now)), note = \(note)
                WHERE id = \(id) AND status = 'open'
                """)
            guard n == 1 else {
                throw HubError(.wrongState, "quarantine entry #\(id) is not open (another operator closed it?)")
            }
            let record = try c.one("SELECT \(unescaped: Self.quarantineColumns) FROM quarantine WHERE id = \(id)")
                .map(Self.quarantineEntry)?.record
            try Self.noteAction(
                c, by: by, action: "quarantine.\(status)", target: "#\(id)", detail: note, at: now, record: record)
        }
    }

    // MARK: CSV import at the hub

    public func csvImport(digest: [UInt8]) throws -> (atMs: UInt64, by: String, records: Int)? {
        try transact(readOnly: true) { c in
            try c.one("SELECT at_ms, by_user, records FROM csv_imports WHERE digest = \(ByteBuffer(digest))").map {
                (try $0.u64(0), try $0.string(1), try $0.int(2))
            }
        }
    }

    public func importRecords(
        form: FormDefinition, commune: String, rows: [[String: Value]], digest: [UInt8], by: String, again: Bool
    ) throws -> [RecordID] {
        let now = nowMillis()
        let key = "\(form.id)@\(form.version)"
        return try transact { c in
            // Stream row, then clock row: the order every stamping writer takes them in.
            try c.exec("SELECT head FROM stream WHERE id = 1 FOR UPDATE")
            try c.exec("SELECT last FROM hub_clock WHERE id = 1 FOR UPDATE")
            // Under the stream lock, so another process's import of the same file
            // has committed (and is seen here) or has not started.
            if !again,
                let seen = try c.one(
                    "SELECT at_ms, by_user, records FROM csv_imports WHERE digest = \(ByteBuffer(digest))")
            {
                throw CSVImportError.alreadyImported(
                    by: try seen.string(1), records: try seen.int(2), atMs: try seen.u64(0))
            }
            let tx = PostgresHubTransaction(c: c, store: self)
            var clock = try tx.clock()
            let batches = RecordBatch.hubCreated(rows, form: form, commune: commune, clock: &clock)
            _ = try tx.merge(batches, changeSet: nil, atMillis: now)
            try tx.save(clock: clock)
            // An import made again on purpose (`--again`) notes the latest one.
            try c.exec(
                """
                INSERT INTO csv_imports(digest, form, commune, records, at_ms, by_user)
                VALUES (\(ByteBuffer(digest)), \(key), \(commune), \(Int64(rows.count)), \(Int64(clamping: now)), \(by))
                ON CONFLICT (digest) DO UPDATE SET form = excluded.form, commune = excluded.commune,
                  records = excluded.records, at_ms = excluded.at_ms, by_user = excluded.by_user
                """)
            try Self.noteAction(
                c, by: by, action: "records.import", target: "\(key) \(commune)", detail: "\(rows.count) records",
                at: now)
            return batches.map(\.record)
        }
    }
}

extension PostgresHubStore {
    // MARK: operator accounts (OperatorAccountStore)

    static func account(_ r: PostgresRandomAccessRow) throws -> OperatorAccount {
        OperatorAccount(
            name: try r.string(0), role: OperatorRole(rawValue: try r.string(1)) ?? .viewer,
            disabled: try r[3].decode(Bool.self), createdMs: try r.u64(4), passwordHash: try r.optString(2))
    }
    static let accountColumns = "name, role, password, disabled, created_ms"

    public func addOperator(_ a: OperatorAccount) throws {
        try transact { c in
            let n = try c.exec(
                """
                INSERT INTO operators(name, role, password, disabled, created_ms)
                VALUES (\(a.name), \(a.role.rawValue), \(a.passwordHash), \(a.disabled), \(Int64(clamping: a.createdMs)))
                ON CONFLICT (name) DO NOTHING
                """)
            if n == 0 { throw HubError(.conflict, "user \(a.name) exists already: pick another name") }
        }
    }

    public func operatorAccounts() throws -> [OperatorAccount] {
        try transact(readOnly: true) { c in
            try c.rows("SELECT \(unescaped: Self.accountColumns) FROM operators ORDER BY name COLLATE \"C\"").map(
                Self.account)
        }
    }

    public func operatorAccount(name: String) throws -> OperatorAccount? {
        try transact(readOnly: true) { c in
            try c.one("SELECT \(unescaped: Self.accountColumns) FROM operators WHERE name = \(name)").map(Self.account)
        }
    }

    public func setOperatorDisabled(name: String, disabled: Bool) throws {
        try transact { c in
            if try c.exec("UPDATE operators SET disabled = \(disabled) WHERE name = \(name)") == 0 {
                throw HubError(.notFound, "there is no user \(name): see `ferry hub users list`")
            }
        }
    }

    public func addOperatorToken(name: String, tokenHash: [UInt8], label: String, expiresMs: UInt64) throws {
        try transact { c in
            try c.exec(
                """
                INSERT INTO operator_tokens(hash, name, label, created_ms, expires_ms)
                VALUES (\(ByteBuffer(tokenHash)), \(name), \(label), \(Int64(clamping: nowMillis())), \(Int64(clamping: expiresMs)))
                """)
        }
    }

    public func operatorAccount(tokenHash: [UInt8]) throws -> OperatorAccount? {
        try transact(readOnly: true) { c in
            try c.one(
                """
                SELECT o.name, o.role, o.password, o.disabled, o.created_ms FROM operator_tokens t JOIN operators o ON o.name = t.name
                WHERE t.hash = \(ByteBuffer(tokenHash)) AND t.expires_ms > \(Int64(clamping: nowMillis())) AND NOT o.disabled
                """
            ).map(Self.account)
        }
    }

    public func logOperatorAction(_ a: OperatorAction) throws {
        try transact { c in
            try c.exec(
                "INSERT INTO operator_log(at_ms, name, action, record, detail, target) VALUES (\(Int64(clamping: a.atMs)), \(a.user), \(a.action), \(a.record), \(a.detail), \(a.target))"
            )
        }
    }

    public func operatorActions(record: String?, limit: Int) throws -> [OperatorAction] {
        let lim = Int64(clamping: max(0, limit))
        return try transact(readOnly: true) { c in
            let rows =
                try record.map {
                    try c.rows(
                        "SELECT at_ms, name, action, record, detail, target FROM operator_log WHERE record = \($0) ORDER BY id DESC LIMIT \(lim)"
                    )
                }
                ?? c.rows(
                    "SELECT at_ms, name, action, record, detail, target FROM operator_log ORDER BY id DESC LIMIT \(lim)"
                )
            return try rows.map {
                OperatorAction(
                    atMs: try $0.u64(0), user: try $0.string(1), action: try $0.string(2), record: try $0.optString(3),
                    detail: try $0.string(4), target: try $0.string(5))
            }
        }
    }

    public func addOperatorSession(_ s: OperatorSession, keep: Int) throws {
        let now = Int64(clamping: nowMillis())
        try transact { c in
            try c.exec("DELETE FROM operator_sessions WHERE expires_ms <= \(now)")
            let live = try c.one("SELECT count(*) FROM operator_sessions")?.int64(0) ?? 0
            if live >= Int64(keep) {
                try c.exec(
                    """
                    DELETE FROM operator_sessions WHERE hash IN
                    (SELECT hash FROM operator_sessions ORDER BY expires_ms LIMIT \(live - Int64(keep) + 1))
                    """)
            }
            try c.exec(
                """
                INSERT INTO operator_sessions(hash, name, role, csrf, expires_ms)
                VALUES (\(ByteBuffer(s.idHash)), \(s.name), \(s.role.rawValue), \(s.csrf), \(Int64(clamping: s.expiresMs)))
                ON CONFLICT (hash) DO UPDATE SET name = excluded.name, role = excluded.role, csrf = excluded.csrf,
                  expires_ms = excluded.expires_ms
                """)
        }
    }

    public func operatorSession(idHash: [UInt8]) throws -> OperatorSession? {
        try transact(readOnly: true) { c in
            try c.one(
                """
                SELECT name, role, csrf, expires_ms FROM operator_sessions
                WHERE hash = \(ByteBuffer(idHash)) AND expires_ms > \(Int64(clamping: nowMillis()))
                """
            ).map {
                OperatorSession(
                    idHash: idHash, name: try $0.string(0), role: OperatorRole(rawValue: try $0.string(1)) ?? .viewer,
                    csrf: try $0.string(2), expiresMs: try $0.u64(3))
            }
        }
    }

    public func deleteOperatorSession(idHash: [UInt8]) throws {
        try transact { c in try c.exec("DELETE FROM operator_sessions WHERE hash = \(ByteBuffer(idHash))") }
    }

    public func takeOperatorSession(idHash: [UInt8]) throws -> OperatorSession? {
        // DELETE … RETURNING: of two hub processes taking it at once, the second
        // waits on the row lock and then finds nothing.
        try transact { c in
            try c.one(
                """
                DELETE FROM operator_sessions WHERE hash = \(ByteBuffer(idHash))
                RETURNING name, role, csrf, expires_ms
                """
            ).flatMap { row -> OperatorSession? in
                let s = OperatorSession(
                    idHash: idHash, name: try row.string(0), role: OperatorRole(rawValue: try row.string(1)) ?? .viewer,
                    csrf: try row.string(2), expiresMs: try row.u64(3))
                return s.expiresMs > nowMillis() ? s : nil
            }
        }
    }
}
