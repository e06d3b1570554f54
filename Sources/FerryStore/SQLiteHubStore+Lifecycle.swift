import FerryCore
import FerryProtocol
import Foundation
import GRDB

// Form lifecycle, campaigns and operator actions (issue 11): drafts agents do
// not see, retired versions, record migration, and an audit line per operator
// write naming who did it. Few statements, each small, so another backend
// (PostgreSQL) implements the same methods.
extension SQLiteHubStore {
    static func migrateOperator(_ m: inout DatabaseMigrator) {
        m.registerMigration("v4-operator-lifecycle") { db in
            try db.execute(
                sql: """
                    CREATE TABLE form_drafts(key TEXT PRIMARY KEY, json BLOB NOT NULL, created_ms INTEGER NOT NULL,
                        created_by TEXT NOT NULL);
                    CREATE TABLE operator_actions(id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, by TEXT NOT NULL,
                        action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
                    ALTER TABLE quarantine ADD COLUMN closed_by TEXT;
                    ALTER TABLE quarantine ADD COLUMN closed_ms INTEGER;
                    ALTER TABLE quarantine ADD COLUMN note TEXT;
                    CREATE TABLE csv_imports(digest BLOB PRIMARY KEY, form TEXT NOT NULL, commune TEXT NOT NULL,
                        records INTEGER NOT NULL, at_ms INTEGER NOT NULL, by TEXT NOT NULL);
                    """)
        }
    }

    /// Notes an operator's write in the operator log (`operator_log`), in the caller's transaction.
    static func noteAction(
        _ db: Database, by: String, action: String, target: String, detail: String, at: UInt64, record: String? = nil
    ) throws {
        try logOperatorAction(
            db, OperatorAction(atMs: at, user: by, action: action, record: record, detail: detail, target: target))
    }

    /// Notes an operator action in a transaction of its own.
    public func noteAction(by: String, action: String, target: String, detail: String = "", record: String? = nil)
        throws
    {
        let now = nowMillis()
        try write { db in
            try Self.noteAction(db, by: by, action: action, target: target, detail: detail, at: now, record: record)
        }
    }

    // MARK: forms

    /// Every problem of a form definition as one typed refusal (`invalid_form`), or nil when it may be published.
    public static func formProblems(_ form: FormDefinition) -> HubError? {
        let problems = form.validate()
        guard !problems.isEmpty else { return nil }
        return HubError(
            .invalidForm,
            "form \(form.id) v\(form.version) is not valid (\(problems.count) problem(s)); nothing was published",
            problems: problems.map { ProblemV1(code: $0.code.rawValue, at: $0.field, message: $0.message) })
    }

    /// Validates and publishes a form version: agents receive it at their next sync.
    /// - Throws: ``HubError`` `invalidForm` listing every problem, `formImmutable`.
    public func publish(form: FormDefinition, by: String) throws {
        if let e = Self.formProblems(form) { throw e }
        try publish(form: form)
        try write { db in
            try db.execute(sql: "DELETE FROM form_drafts WHERE key = ?", arguments: ["\(form.id)@\(form.version)"])
        }
        try noteAction(by: by, action: "form.publish", target: "\(form.id)@\(form.version)")
    }

    /// Keeps a validated form version as a draft: agents do not see it until it is published.
    public func saveDraft(form: FormDefinition, by: String) throws {
        if let e = Self.formProblems(form) { throw e }
        let key = "\(form.id)@\(form.version)"
        if try forms().contains(where: { $0.id == form.id && $0.version == form.version }) {
            throw HubError(.formImmutable, "form \(key) is already published: make the draft a new version")
        }
        let now = nowMillis()
        try write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO form_drafts(key, json, created_ms, created_by) VALUES (?, ?, ?, ?)",
                arguments: [key, Data(try Self.json(form)), Int64(clamping: now), by])
            try Self.noteAction(db, by: by, action: "form.draft", target: key, detail: "", at: now)
        }
    }

    /// Form drafts, by id and version.
    public func drafts() throws -> [FormDefinition] {
        try pool.read { db in
            try Data.fetchAll(db, sql: "SELECT json FROM form_drafts ORDER BY key").compactMap {
                try? JSONDecoder().decode(FormDefinition.self, from: $0)
            }
        }
    }

    /// Retires a published version: it stays (its records are kept and still
    /// merge), agents are told by the catalog, and new records take a newer version.
    public func retire(form id: String, version: Int, by: String) throws {
        guard var f = try forms().first(where: { $0.id == id && $0.version == version }) else {
            throw HubError(.notFound, "form \(id) v\(version) is not published")
        }
        if f.retired == true { return }
        f.retired = true
        let now = nowMillis()
        let json = try Self.json(f)
        try write { db in
            // The only change a published version may take: it streams again, retired.
            let seq = try nextSeq(db)
            try db.execute(
                sql: "UPDATE catalog SET seq = ?, json = ? WHERE kind = 'form' AND key = ?",
                arguments: [Int64(clamping: seq), Data(json), "\(id)@\(version)"])
            try Self.noteAction(db, by: by, action: "form.retire", target: "\(id)@\(version)", detail: "", at: now)
        }
    }

    /// Moves the records of `form` v`from` to v`to`: every value is carried,
    /// fields new in `to` stay empty, and values `to` rejects are reported and
    /// kept (never dropped). Their leaves stream again so agents learn the new
    /// version; writes an agent still makes under `from` are accepted (SPEC §7.3.1).
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
        return try write { db in
            let ids = try Data.fetchAll(
                db, sql: "SELECT id FROM records WHERE form_id = ? AND form_version = ? ORDER BY id",
                arguments: [id, from]
            ).compactMap(Columns.record)
            var check = FormMigrationProblems(target: target)
            for rid in ids {
                guard let view = try Self.hubView(rid, db) else { continue }
                check.check(rid, values: view.winners.filter { $0.key != deletedField })
            }
            let (problems, count) = (check.problems, check.count)
            if !dryRun && !ids.isEmpty {
                for rid in ids {
                    try db.execute(
                        sql: "UPDATE records SET form_version = ? WHERE id = ?", arguments: [to, Columns.blob(rid)])
                    // Stream the record again under its new scope (re-delivery is idempotent).
                    let keys = try Row.fetchAll(
                        db, sql: "SELECT field, hlc, origin FROM leaves WHERE record = ?",
                        arguments: [Columns.blob(rid)])
                    for k in keys {
                        let seq = try nextSeq(db)
                        try db.execute(
                            sql: "UPDATE leaves SET seq = ? WHERE record = ? AND field = ? AND hlc = ? AND origin = ?",
                            arguments: [
                                Int64(clamping: seq), Columns.blob(rid), k["field"] as String, k["hlc"] as Int64,
                                k["origin"] as String,
                            ])
                    }
                }
                try Self.noteAction(
                    db, by: by, action: "form.migrate", target: "\(id)@\(from)->\(to)",
                    detail: "\(ids.count) records, \(count) values reported", at: now)
            }
            return MigrationReportV1(
                form: id, from: from, to: to, records: ids.count, dryRun: dryRun, problemCount: count,
                problems: problems)
        }
    }
}

extension SQLiteHubStore {
    // MARK: quarantine closed by a person

    /// One quarantine entry, whatever its status.
    public func quarantineEntry(id: Int64) throws -> QuarantineEntry? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM quarantine WHERE id = ?", arguments: [id]).map(
                Self.quarantineEntry)
        }
    }

    /// Marks an open entry fixed or released, by whom and why, with an audit line.
    /// - Throws: ``HubError`` `wrongState` when it is no longer open.
    public func closeQuarantine(id: Int64, status: String, by: String, note: String) throws {
        let now = nowMillis()
        try write { db in
            try db.execute(
                sql:
                    "UPDATE quarantine SET status = ?, closed_by = ?, closed_ms = ?, note = ? WHERE id = ? AND status = 'open'",
                arguments: [status, by, Int64(clamping: now), note, id])
            guard db.changesCount == 1 else {
                throw HubError(.wrongState, "quarantine entry #\(id) is not open (another operator closed it?)")
            }
            let record = try Row.fetchOne(db, sql: "SELECT * FROM quarantine WHERE id = ?", arguments: [id])
                .map { Self.quarantineEntry($0).record }
            try Self.noteAction(
                db, by: by, action: "quarantine.\(status)", target: "#\(id)", detail: note, at: now, record: record)
        }
    }
}

extension SQLiteHubStore {
    // MARK: CSV import at the hub

    /// When and by whom a file with this digest was imported, if it was.
    public func csvImport(digest: [UInt8]) throws -> (atMs: UInt64, by: String, records: Int)? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM csv_imports WHERE digest = ?", arguments: [Data(digest)]).map {
                (UInt64(clamping: $0["at_ms"] as Int64), $0["by"], $0["records"])
            }
        }
    }

    /// Creates every row as a record of `commune` in one transaction (all or
    /// none), and notes the file's digest so a second import is refused.
    public func importRecords(
        form: FormDefinition, commune: String, rows: [[String: Value]], digest: [UInt8], by: String, again: Bool
    ) throws -> [RecordID] {
        let now = nowMillis()
        return try write { db in
            // Inside the write transaction: SQLite runs one writer at a time.
            if !again,
                let seen = try Row.fetchOne(
                    db, sql: "SELECT * FROM csv_imports WHERE digest = ?", arguments: [Data(digest)])
            {
                throw CSVImportError.alreadyImported(
                    by: seen["by"], records: seen["records"], atMs: UInt64(clamping: seen["at_ms"] as Int64))
            }
            let tx = SQLiteHubTransaction(db: db, store: self)
            var c = try tx.clock()
            let batches = RecordBatch.hubCreated(rows, form: form, commune: commune, clock: &c)
            _ = try tx.merge(batches, changeSet: nil, atMillis: now)
            try tx.save(clock: c)
            try db.execute(
                // OR REPLACE: an import made again on purpose (`--again`) notes the latest one.
                sql:
                    "INSERT OR REPLACE INTO csv_imports(digest, form, commune, records, at_ms, by) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [Data(digest), "\(form.id)@\(form.version)", commune, rows.count, Int64(clamping: now), by])
            try Self.noteAction(
                db, by: by, action: "records.import", target: "\(form.id)@\(form.version) \(commune)",
                detail: "\(rows.count) records", at: now)
            return batches.map(\.record)
        }
    }
}
