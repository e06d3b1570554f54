import FerryCore
import FerryProtocol
import Foundation
import GRDB

/// A record as a replica shows it: the winner of every field.
public struct RecordView: Sendable, Equatable {
    public var id: RecordID
    public var scope: RecordScope
    public var fields: [String: FieldWrite]

    /// Winner values, without `_deleted`.
    public var values: [String: Value] {
        fields.filter { $0.key != deletedField }.mapValues(\.value)
    }

    /// True when the `_deleted` winner is `true`.
    public var isDeleted: Bool { fields[deletedField]?.value == .bool(true) }
}

/// A frozen, sealed change set waiting for the hub's acknowledgement.
public struct InFlight: Sendable {
    public var seqFrom: UInt64
    public var seqTo: UInt64
    public var id: [UInt8]
    public var envelope: [UInt8]
    public var attempts: Int
}

/// What a change set being frozen needs from the store, read in its transaction.
public struct FreezeContext: Sendable {
    public var seqFrom: UInt64
    public var seqTo: UInt64
    /// A fresh clock reading for the header.
    public var now: HLC
    /// The hub-stream cursor, sent as the header's ack.
    public var hubCursor: UInt64
}

/// What the agent's replica knows about its own state, for `ferry status`.
public struct ReplicaCounts: Sendable, Codable, Equatable {
    public var records: Int
    public var deleted: Int
    public var pendingWrites: Int
    public var inFlightWrites: Int
    public var hubCursor: UInt64
    public var lastSeq: UInt64
}

/// The agent's local replica (DESIGN §7): one store API used by every front
/// end (CLI, local HTTP API, CSV import, the sync loop).
///
/// Keeps each field's winner (compaction), an outbox of local writes that
/// coalesces several offline edits of one field into one write, the sealed
/// change set in flight, and the hub cursor. Every method is one SQLite
/// transaction with `synchronous=FULL`, so a power cut loses nothing that was
/// acknowledged and applies nothing twice.
public final class AgentStore: Sendable {
    public let pool: DatabasePool
    public let origin: OriginID
    private let wall: any WallClock

    /// Opens (creating and migrating) the replica at `path`.
    public init(path: String, origin: OriginID, wall: any WallClock = SystemClock()) throws {
        pool = try openPool(path: path)
        self.origin = origin
        self.wall = wall
        try Self.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE catalog(kind TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, json BLOB NOT NULL,
                        PRIMARY KEY(kind, key));
                    CREATE TABLE records(id BLOB PRIMARY KEY, form_id TEXT NOT NULL, form_version INTEGER NOT NULL,
                        commune TEXT NOT NULL) WITHOUT ROWID;
                    CREATE TABLE fields(record BLOB NOT NULL, field TEXT NOT NULL, t INTEGER NOT NULL, v, hlc INTEGER NOT NULL,
                        origin TEXT NOT NULL, prev BLOB, alive BLOB, covers BLOB, PRIMARY KEY(record, field)) WITHOUT ROWID;
                    CREATE TABLE outbox(record BLOB NOT NULL, field TEXT NOT NULL, batch INTEGER NOT NULL, t INTEGER NOT NULL, v,
                        hlc INTEGER NOT NULL, origin TEXT NOT NULL, prev BLOB, alive BLOB, covers BLOB,
                        PRIMARY KEY(record, field, batch)) WITHOUT ROWID;
                    CREATE TABLE inflight(seq_from INTEGER PRIMARY KEY, seq_to INTEGER NOT NULL, id BLOB NOT NULL,
                        envelope BLOB NOT NULL, created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
                    """)
        }
        return m
    }

    // MARK: meta

    /// A value of the meta table.
    public func meta(_ key: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }

    /// Sets (or with nil, clears) meta values in one transaction.
    public func setMeta(_ values: [String: String?]) throws {
        try pool.write { db in
            for (k, v) in values {
                if let v {
                    try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [k, v])
                } else {
                    try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [k])
                }
            }
        }
    }

    static func meta(_ db: Database, _ key: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
    }

    static func setMeta(_ db: Database, _ key: String, _ value: String) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [key, value])
    }

    /// The replica's clock, restored from the last reading persisted in `db`
    /// (so readings stay monotonic across processes and restarts).
    func clock(_ db: Database) throws -> HybridLogicalClock {
        let last = try Self.meta(db, "hlc_last").flatMap(UInt64.init) ?? 0
        let offset = try Self.meta(db, "clock_offset_ms").flatMap(Int64.init) ?? 0
        return HybridLogicalClock(wall: wall, last: HLC(raw: last), offsetMillis: offset)
    }

    func save(_ clock: HybridLogicalClock, _ db: Database) throws {
        try Self.setMeta(db, "hlc_last", String(clock.last.raw))
    }

    /// The current corrected time of the replica's clock.
    public func now() throws -> HLC {
        try pool.write { db in
            var c = try clock(db)
            let h = c.now()
            try save(c, db)
            return h
        }
    }

    // MARK: catalog

    /// Stores catalog items (communes, forms, campaigns) received from the hub.
    public func putCatalog(_ items: [CatalogItem]) throws {
        try pool.write { db in try Self.putCatalog(items, db) }
    }

    static func putCatalog(_ items: [CatalogItem], _ db: Database) throws {
        for i in items {
            try db.execute(
                sql: "INSERT OR REPLACE INTO catalog(kind, key, seq, json) VALUES (?, ?, ?, ?)",
                arguments: [i.kind.rawValue, i.key, Int64(i.seq), Data(i.json)])
        }
    }

    /// Every form version known here, newest version first per id.
    public func forms() throws -> [FormDefinition] {
        try pool.read { db in try Self.forms(db) }
    }

    static func forms(_ db: Database) throws -> [FormDefinition] {
        let rows = try Data.fetchAll(db, sql: "SELECT json FROM catalog WHERE kind = 'form'")
        return rows.compactMap { try? JSONDecoder().decode(FormDefinition.self, from: $0) }
            .sorted { ($0.id, -$0.version) < ($1.id, -$1.version) }
    }

    /// Catalog entries of one kind, decoded.
    public func catalog<T: Decodable>(_ kind: CatalogItem.Kind, as: T.Type) throws -> [T] {
        try pool.read { db in
            try Data.fetchAll(db, sql: "SELECT json FROM catalog WHERE kind = ? ORDER BY key", arguments: [kind.rawValue])
                .compactMap { try? JSONDecoder().decode(T.self, from: $0) }
        }
    }

    /// The form `id` at `version`, or its newest version when `version` is nil.
    public func form(_ id: String, version: Int? = nil) throws -> FormDefinition? {
        try forms().first { $0.id == id && (version == nil || $0.version == version) }
    }

    // MARK: local writes

    /// Creates a record of `form` in `commune` with `values`, validated against the form.
    /// - Throws: ``FormError`` naming the first bad or missing field; nothing is written.
    @discardableResult
    public func create(form: FormDefinition, commune: String, values: [String: Value], id: RecordID? = nil) throws -> RecordID {
        let values = values.mapValues(Self.normalized)
        let missing = form.missingRequired(in: values)
        if !missing.isEmpty { throw FormError("required field(s) missing: \(missing.joined(separator: ", "))") }
        for (f, v) in values.sorted(by: { $0.key < $1.key }) {
            if let why = form.violation(field: f, value: v) { throw FormError(why) }
        }
        return try pool.write { db in
            var c = try clock(db)
            let h = c.now()
            var rng = SystemRandomNumberGenerator()
            let rid = id ?? RecordID.v7(millis: h.millis, using: &rng)
            try db.execute(
                sql: "INSERT INTO records(id, form_id, form_version, commune) VALUES (?, ?, ?, ?)",
                arguments: [Columns.blob(rid), form.id, form.version, commune])
            for (f, v) in values where !v.isNull {
                let w = FieldWrite(record: rid, field: f, id: WriteID(hlc: h, origin: origin), value: v)
                try Self.putLocal(w, db)
            }
            try save(c, db)
            return rid
        }
    }

    /// Creates many records in one transaction (CSV import, benchmarks);
    /// each value must already be valid. Returns their ids in order.
    public func createMany(
        form: FormDefinition, commune: String, rows: [[String: Value]], validate: Bool = true
    ) throws -> [RecordID] {
        if validate {
            for (i, values) in rows.enumerated() {
                let missing = form.missingRequired(in: values)
                if !missing.isEmpty { throw FormError("row \(i + 1): required field(s) missing: \(missing.joined(separator: ", "))") }
                for (f, v) in values.sorted(by: { $0.key < $1.key }) {
                    if let why = form.violation(field: f, value: v) { throw FormError("row \(i + 1): \(why)") }
                }
            }
        }
        return try pool.write { db in
            var c = try clock(db)
            var rng = SystemRandomNumberGenerator()
            var ids: [RecordID] = []
            ids.reserveCapacity(rows.count)
            let rec = try db.cachedStatement(sql: "INSERT INTO records(id, form_id, form_version, commune) VALUES (?, ?, ?, ?)")
            for values in rows {
                let h = c.now()
                let rid = RecordID.v7(millis: h.millis, using: &rng)
                try rec.execute(arguments: [Columns.blob(rid), form.id, form.version, commune])
                for (f, v) in values where !v.isNull {
                    try Self.putLocal(FieldWrite(record: rid, field: f, id: WriteID(hlc: h, origin: origin), value: Self.normalized(v)), db)
                }
                ids.append(rid)
            }
            try save(c, db)
            return ids
        }
    }

    /// Writes new values for fields of an existing record.
    /// - Throws: ``StoreError`` if the record is unknown or deleted; ``FormError`` for a bad value.
    public func update(_ record: RecordID, values: [String: Value]) throws {
        let values = values.mapValues(Self.normalized)
        try pool.write { db in
            let view = try Self.view(record, db)
            guard let view else { throw StoreError("record \(record) does not exist here") }
            if view.isDeleted { throw StoreError("record \(record) is deleted: undelete it first (ferry records undelete \(record))") }
            let form = try Self.forms(db).first { $0.id == view.scope.formID && $0.version == view.scope.formVersion }
            for (f, v) in values.sorted(by: { $0.key < $1.key }) {
                if let form, let why = form.violation(field: f, value: v) { throw FormError(why) }
            }
            var c = try clock(db)
            let h = c.now()
            for (f, v) in values {
                try writeLocal(record: record, field: f, value: v, id: WriteID(hlc: h, origin: origin), view: view, db)
            }
            try save(c, db)
        }
    }

    /// Several updates in one transaction (benchmarks, CSV import of edits).
    public func updateMany(_ edits: [(RecordID, [String: Value])]) throws {
        try pool.write { db in
            var c = try clock(db)
            for (record, values) in edits {
                guard let view = try Self.view(record, db) else { throw StoreError("record \(record) does not exist here") }
                let h = c.now()
                for (f, v) in values {
                    try writeLocal(record: record, field: f, value: Self.normalized(v), id: WriteID(hlc: h, origin: origin), view: view, db)
                }
            }
            try save(c, db)
        }
    }

    /// Marks records deleted (a `_deleted` = true write covering every field seen).
    public func delete(_ records: [RecordID]) throws {
        try setDeleted(records, true)
    }

    /// Undeletes a record.
    public func undelete(_ record: RecordID) throws {
        try setDeleted([record], false)
    }

    private func setDeleted(_ records: [RecordID], _ deleted: Bool) throws {
        try pool.write { db in
            var c = try clock(db)
            for record in records {
                guard let view = try Self.view(record, db) else { throw StoreError("record \(record) does not exist here") }
                if view.isDeleted == deleted {
                    throw StoreError("record \(record) is already \(deleted ? "deleted" : "not deleted")")
                }
                let h = c.now()
                try writeLocal(record: record, field: deletedField, value: .bool(deleted), id: WriteID(hlc: h, origin: origin), view: view, db)
            }
            try save(c, db)
        }
    }

    private func writeLocal(record: RecordID, field: String, value: Value, id: WriteID, view: RecordView, _ db: Database) throws {
        let pending = try Row.fetchOne(
            db, sql: "SELECT * FROM outbox WHERE record = ? AND field = ? AND batch = 0",
            arguments: [Columns.blob(record), field]
        ).flatMap(FieldWrite.init(row:))
        let covers = field == deletedField ? view.fields.filter { $0.key != deletedField }.map(\.value.id) : []
        let w = WriteRules.local(
            record: record, field: field, value: value, id: id, winner: view.fields[field], pending: pending,
            deletedWinner: view.fields[deletedField], covers: covers)
        try Self.putLocal(w, db)
    }

    static func putLocal(_ w: FieldWrite, _ db: Database) throws {
        try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO fields(record, field, t, v, hlc, origin, prev, alive, covers) VALUES (?,?,?,?,?,?,?,?,?)"
        ).execute(arguments: w.columnArguments)
        try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO outbox(record, field, t, v, hlc, origin, prev, alive, covers, batch) VALUES (?,?,?,?,?,?,?,?,?,0)"
        ).execute(arguments: w.columnArguments)
    }

    static func normalized(_ v: Value) -> Value {
        if case .text(let s) = v { return .string(s) }
        return v
    }

    // MARK: reading

    /// One record, or nil.
    public func record(_ id: RecordID) throws -> RecordView? {
        try pool.read { db in try Self.view(id, db) }
    }

    static func view(_ id: RecordID, _ db: Database) throws -> RecordView? {
        guard
            let r = try Row.fetchOne(
                db, sql: "SELECT form_id, form_version, commune FROM records WHERE id = ?", arguments: [Columns.blob(id)])
        else { return nil }
        let scope = RecordScope(formID: r["form_id"], formVersion: r["form_version"], commune: r["commune"])
        var fields: [String: FieldWrite] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT * FROM fields WHERE record = ?", arguments: [Columns.blob(id)]) {
            if let w = FieldWrite(row: row) { fields[w.field] = w }
        }
        return RecordView(id: id, scope: scope, fields: fields)
    }

    /// Records, newest first (UUIDv7 order), optionally including deleted ones.
    public func records(limit: Int = 50, includeDeleted: Bool = false) throws -> [RecordView] {
        try pool.read { db in
            let ids = try Data.fetchAll(db, sql: "SELECT id FROM records ORDER BY id DESC").compactMap(Columns.record)
            var out: [RecordView] = []
            for id in ids {
                guard out.count < limit else { break }
                if let v = try Self.view(id, db), includeDeleted || !v.isDeleted { out.append(v) }
            }
            return out
        }
    }

    /// Every record's winners, keyed by id (for convergence checks).
    public func fullState() throws -> [RecordID: [String: Value]] {
        try pool.read { db in
            var out: [RecordID: [String: Value]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT record, field, t, v FROM fields") {
                guard let r = Columns.record(row["record"]) else { continue }
                out[r, default: [:]][row["field"]] = Columns.value(tag: row["t"], row["v"] as DatabaseValue)
            }
            for r in try Data.fetchAll(db, sql: "SELECT id FROM records").compactMap(Columns.record) where out[r] == nil {
                out[r] = [:]
            }
            return out
        }
    }

    /// Counts for status displays.
    public func counts() throws -> ReplicaCounts {
        try pool.read { db in
            let records = try Int.fetchOne(db, sql: "SELECT count(*) FROM records") ?? 0
            let deleted =
                try Int.fetchOne(db, sql: "SELECT count(*) FROM fields WHERE field = ? AND t = 1 AND v = 1", arguments: [deletedField]) ?? 0
            let pending = try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE batch = 0") ?? 0
            let inflight = try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE batch > 0") ?? 0
            return ReplicaCounts(
                records: records, deleted: deleted, pendingWrites: pending, inFlightWrites: inflight,
                hubCursor: try Self.meta(db, "hub_cursor").flatMap(UInt64.init) ?? 0,
                lastSeq: try Self.meta(db, "last_seq").flatMap(UInt64.init) ?? 0)
        }
    }

    // MARK: sync: upload

    /// The change set in flight, if one was frozen and not yet acknowledged.
    public func inFlight() throws -> InFlight? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM inflight ORDER BY seq_from LIMIT 1").map {
                InFlight(
                    seqFrom: UInt64($0["seq_from"] as Int64), seqTo: UInt64($0["seq_to"] as Int64),
                    id: [UInt8]($0["id"] as Data), envelope: [UInt8]($0["envelope"] as Data), attempts: $0["attempts"])
            }
        }
    }

    /// Freezes up to `maxWrites` pending writes into the next change set and
    /// stores the sealed bytes, so a retry re-sends exactly the same bytes.
    /// Does nothing and returns the existing one when a change set is already in flight.
    /// - Parameter seal: seals the body into an envelope and returns (id, bytes).
    ///   It runs inside the store's transaction and must not call the store.
    public func freeze(
        maxWrites: Int, seal: (ChangeSetBody, FreezeContext) throws -> (id: [UInt8], envelope: [UInt8])
    ) throws -> InFlight? {
        try pool.write { db in
            if let existing = try Row.fetchOne(db, sql: "SELECT * FROM inflight ORDER BY seq_from LIMIT 1") {
                return InFlight(
                    seqFrom: UInt64(existing["seq_from"] as Int64), seqTo: UInt64(existing["seq_to"] as Int64),
                    id: [UInt8](existing["id"] as Data), envelope: [UInt8](existing["envelope"] as Data),
                    attempts: existing["attempts"])
            }
            let rows = try Row.fetchAll(
                db, sql: "SELECT * FROM outbox WHERE batch = 0 ORDER BY record, field LIMIT ?", arguments: [maxWrites])
            guard !rows.isEmpty else { return nil }
            let writes = rows.compactMap(FieldWrite.init(row:))
            var scopes: [RecordID: RecordScope] = [:]
            for r in Set(writes.map(\.record)) {
                if let s = try Row.fetchOne(
                    db, sql: "SELECT form_id, form_version, commune FROM records WHERE id = ?", arguments: [Columns.blob(r)])
                {
                    scopes[r] = RecordScope(formID: s["form_id"], formVersion: s["form_version"], commune: s["commune"])
                }
            }
            let last = try Self.meta(db, "last_seq").flatMap(UInt64.init) ?? 0
            let from = last + 1
            let to = last + UInt64(writes.count)
            var c = try clock(db)
            let context = FreezeContext(
                seqFrom: from, seqTo: to, now: c.now(),
                hubCursor: try Self.meta(db, "hub_cursor").flatMap(UInt64.init) ?? 0)
            try save(c, db)
            let sealed = try seal(ChangeSetBody(writes: writes, scopes: scopes), context)
            let move = try db.cachedStatement(sql: "UPDATE outbox SET batch = ? WHERE record = ? AND field = ? AND batch = 0")
            for w in writes {
                try move.execute(arguments: [Int64(from), Columns.blob(w.record), w.field])
            }
            try db.execute(
                sql: "INSERT INTO inflight(seq_from, seq_to, id, envelope, created_ms) VALUES (?, ?, ?, ?, ?)",
                arguments: [Int64(from), Int64(to), Data(sealed.id), Data(sealed.envelope), Int64(wall.nowMillis())])
            try Self.setMeta(db, "last_seq", String(to))
            return InFlight(seqFrom: from, seqTo: to, id: sealed.id, envelope: sealed.envelope, attempts: 0)
        }
    }

    /// Counts one more send attempt of the change set in flight.
    public func noteAttempt(seqFrom: UInt64) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE inflight SET attempts = attempts + 1 WHERE seq_from = ?", arguments: [Int64(seqFrom)])
        }
    }

    /// The hub acknowledged everything up to `cursor`: drop what it covers.
    public func acknowledge(upTo cursor: UInt64) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM outbox WHERE batch > 0 AND batch <= ?", arguments: [Int64(cursor)])
            try db.execute(sql: "DELETE FROM inflight WHERE seq_to <= ?", arguments: [Int64(cursor)])
        }
    }

    /// Drops the change set in flight and returns its writes to the outbox,
    /// when the hub refused it for a reason that re-sealing fixes. The
    /// sequence numbers are reused, so the hub sees no gap.
    ///
    /// With `restamp` (the hub refused timestamps from a clock that ran
    /// ahead), the clock is wound back to the newest timestamp anyone else has
    /// seen, and every queued write gets a fresh one from the hub-corrected
    /// clock. That is safe because no other replica ever accepted them.
    public func unfreeze(restamp: Bool) throws {
        try pool.write { db in
            if let f = try Row.fetchOne(db, sql: "SELECT seq_from FROM inflight ORDER BY seq_from LIMIT 1") {
                let from: Int64 = f["seq_from"]
                for row in try Row.fetchAll(db, sql: "SELECT * FROM outbox WHERE batch = ?", arguments: [from]) {
                    guard let w = FieldWrite(row: row) else { continue }
                    try db.execute(
                        sql: "DELETE FROM outbox WHERE record = ? AND field = ? AND batch = ?",
                        arguments: [Columns.blob(w.record), w.field, from])
                    // A newer local edit of the same field already supersedes it.
                    let newer = try Int.fetchOne(
                        db, sql: "SELECT count(*) FROM outbox WHERE record = ? AND field = ? AND batch = 0",
                        arguments: [Columns.blob(w.record), w.field]) ?? 0
                    if newer == 0 {
                        try db.cachedStatement(
                            sql: "INSERT INTO outbox(record, field, t, v, hlc, origin, prev, alive, covers, batch) VALUES (?,?,?,?,?,?,?,?,?,0)"
                        ).execute(arguments: w.columnArguments)
                    }
                }
                try db.execute(sql: "DELETE FROM inflight WHERE seq_from = ?", arguments: [from])
                try Self.setMeta(db, "last_seq", String(from - 1))
            }
            guard restamp else { return }
            let seen = try Int64.fetchOne(
                db,
                sql: """
                    SELECT max(hlc) FROM fields f WHERE NOT EXISTS
                      (SELECT 1 FROM outbox o WHERE o.record = f.record AND o.field = f.field)
                    """) ?? 0
            let queued = try Row.fetchAll(db, sql: "SELECT * FROM outbox WHERE batch = 0 ORDER BY hlc").compactMap(FieldWrite.init(row:))
            let queuedIDs = Set(queued.map(\.id))
            // Every write a queued write names must stay older than it.
            var floor = Columns.hlc(seen)
            for w in queued {
                for r in w.prev + w.covers + (w.alive.map { [$0] } ?? []) where !queuedIDs.contains(r) && r.hlc > floor {
                    floor = r.hlc
                }
            }
            var c = HybridLogicalClock(
                wall: wall, last: floor, offsetMillis: try Self.meta(db, "clock_offset_ms").flatMap(Int64.init) ?? 0)
            for var w in queued {
                let old = w.id
                w.id = WriteID(hlc: c.now(), origin: origin)
                try db.execute(
                    sql: "UPDATE outbox SET hlc = ? WHERE record = ? AND field = ? AND batch = 0",
                    arguments: [Columns.int64(w.id.hlc), Columns.blob(w.record), w.field])
                try db.execute(
                    sql: "UPDATE fields SET hlc = ? WHERE record = ? AND field = ? AND hlc = ? AND origin = ?",
                    arguments: [Columns.int64(w.id.hlc), Columns.blob(w.record), w.field, Columns.int64(old.hlc), origin.rawValue])
            }
            try save(c, db)
        }
    }

    // MARK: sync: download

    /// Applies writes received from a peer (the hub's stream, or another
    /// replica in benchmarks) and advances the hub cursor, in one transaction.
    /// Re-delivery is harmless: a write only replaces a lower winner.
    /// - Returns: the number of fields whose winner changed.
    @discardableResult
    public func applyRemote(_ body: ChangeSetBody, cursor: UInt64? = nil) throws -> Int {
        try pool.write { db in
            var c = try clock(db)
            var maxSeen = c.last
            try Self.putCatalog(body.catalog, db)
            let insertRecord = try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO records(id, form_id, form_version, commune) VALUES (?, ?, ?, ?)")
            for (rid, s) in body.scopes {
                try insertRecord.execute(arguments: [Columns.blob(rid), s.formID, s.formVersion, s.commune])
            }
            let current = try db.cachedStatement(sql: "SELECT hlc, origin FROM fields WHERE record = ? AND field = ?")
            let put = try db.cachedStatement(
                sql: "INSERT OR REPLACE INTO fields(record, field, t, v, hlc, origin, prev, alive, covers) VALUES (?,?,?,?,?,?,?,?,?)")
            var changed = 0
            for w in body.writes {
                if w.id.hlc > maxSeen { maxSeen = w.id.hlc }
                if let row = try Row.fetchOne(current, arguments: [Columns.blob(w.record), w.field]) {
                    let have = WriteID(hlc: Columns.hlc(row[0]), origin: OriginID(row[1]))
                    if w.id <= have { continue }
                }
                try put.execute(arguments: w.columnArguments)
                changed += 1
            }
            // Observe without the future bound: the hub already enforced it, and
            // refusing here would wedge the replica.
            if maxSeen > c.last { c = HybridLogicalClock(wall: wall, last: maxSeen, offsetMillis: c.offsetMillis) }
            try save(c, db)
            if let cursor { try Self.setMeta(db, "hub_cursor", String(cursor)) }
            return changed
        }
    }
}
