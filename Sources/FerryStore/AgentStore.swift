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

    // One row per record (its field winners, encoded by RecordCodec) and one
    // outbox row per record and batch (its pending writes): a record is read
    // and written as a unit, which keeps local writes and merges cheap.

    /// Opens (creating and migrating) the replica at `path`.
    public init(path: String, origin: OriginID, wall: any WallClock = SystemClock()) throws {
        self.path = path
        pool = try openPool(path: path)
        self.origin = origin
        self.wall = wall
        do {
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreFault.from(error, path: path) ?? error
        }
    }

    /// The replica's database file.
    public let path: String

    /// One write transaction; a storage failure is thrown as ``StoreFault``
    /// (disk full, read-only, damaged) naming the replica file.
    func write<T>(_ updates: (Database) throws -> T) throws -> T {
        do {
            return try pool.write(updates)
        } catch {
            throw StoreFault.from(error, path: path) ?? error
        }
    }

    /// Checks the file for damage (`PRAGMA quick_check`), as the agent does at start.
    /// - Throws: ``StoreFault`` `corrupt` with what to do.
    public func verifyIntegrity() throws { try StoreFault.quickCheck(pool, path: path) }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE catalog(kind TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, json BLOB NOT NULL,
                        PRIMARY KEY(kind, key));
                    CREATE TABLE records(id BLOB PRIMARY KEY, form_id TEXT NOT NULL, form_version INTEGER NOT NULL,
                        commune TEXT NOT NULL, state BLOB NOT NULL, deleted INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
                    CREATE TABLE outbox(record BLOB NOT NULL, batch INTEGER NOT NULL, writes BLOB NOT NULL, n INTEGER NOT NULL,
                        PRIMARY KEY(record, batch)) WITHOUT ROWID;
                    CREATE TABLE inflight(seq_from INTEGER PRIMARY KEY, seq_to INTEGER NOT NULL, id BLOB NOT NULL,
                        envelope BLOB NOT NULL, created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
                    """)
        }
        migrateQuarantine(&m)
        migrateConflicts(&m)
        return m
    }

    /// The store's wall clock, for extensions in other files.
    func wallMillis() -> UInt64 { wall.nowMillis() }

    // MARK: meta

    /// A value of the meta table.
    public func meta(_ key: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }

    /// Sets (or with nil, clears) meta values in one transaction.
    public func setMeta(_ values: [String: String?]) throws {
        try write { db in
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
        try write { db in
            var c = try clock(db)
            let h = c.now()
            try save(c, db)
            return h
        }
    }

    // MARK: catalog

    /// Stores catalog items (communes, forms, campaigns) received from the hub.
    public func putCatalog(_ items: [CatalogItem]) throws {
        try write { db in try Self.putCatalog(items, db) }
    }

    static func putCatalog(_ items: [CatalogItem], _ db: Database) throws {
        for i in items {
            try db.execute(
                sql: "INSERT OR REPLACE INTO catalog(kind, key, seq, json) VALUES (?, ?, ?, ?)",
                arguments: [i.kind.rawValue, i.key, Int64(clamping: i.seq), Data(i.json)])
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
            try Data.fetchAll(
                db, sql: "SELECT json FROM catalog WHERE kind = ? ORDER BY key", arguments: [kind.rawValue]
            )
            .compactMap { try? JSONDecoder().decode(T.self, from: $0) }
        }
    }

    /// The form `id` at `version`, or when `version` is nil its newest version
    /// that is not retired (new records take it; SPEC §9.6).
    public func form(_ id: String, version: Int? = nil) throws -> FormDefinition? {
        let all = try forms().filter { $0.id == id }
        if let version { return all.first { $0.version == version } }
        return all.filter { $0.retired != true }.max { $0.version < $1.version }
    }

    // MARK: record rows

    /// A record's stored row: scope and field winners.
    struct Stored {
        var scope: RecordScope
        var fields: [String: FieldWrite]
    }

    static func load(_ id: RecordID, _ db: Database) throws -> Stored? {
        guard
            let r = try Row.fetchOne(
                try db.cachedStatement(sql: "SELECT form_id, form_version, commune, state FROM records WHERE id = ?"),
                arguments: [Columns.blob(id)])
        else { return nil }
        var fields: [String: FieldWrite] = [:]
        for w in try RecordCodec.decode(r["state"], record: id) { fields[w.field] = w }
        return Stored(
            scope: RecordScope(formID: r["form_id"], formVersion: r["form_version"], commune: r["commune"]),
            fields: fields)
    }

    static func store(_ id: RecordID, _ s: Stored, _ db: Database) throws {
        let deleted = s.fields[deletedField]?.value == .bool(true)
        try db.cachedStatement(
            sql:
                "INSERT OR REPLACE INTO records(id, form_id, form_version, commune, state, deleted) VALUES (?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [
            Columns.blob(id), s.scope.formID, s.scope.formVersion, s.scope.commune,
            RecordCodec.encode(s.fields.values.sorted { $0.field < $1.field }), deleted ? 1 : 0,
        ])
    }

    static func pending(_ id: RecordID, batch: Int64, _ db: Database) throws -> [String: FieldWrite] {
        guard
            let d = try Data.fetchOne(
                try db.cachedStatement(sql: "SELECT writes FROM outbox WHERE record = ? AND batch = ?"),
                arguments: [Columns.blob(id), batch])
        else { return [:] }
        var out: [String: FieldWrite] = [:]
        for w in try RecordCodec.decode(d, record: id) { out[w.field] = w }
        return out
    }

    static func storePending(_ id: RecordID, batch: Int64, _ writes: [String: FieldWrite], _ db: Database) throws {
        if writes.isEmpty {
            try db.execute(
                sql: "DELETE FROM outbox WHERE record = ? AND batch = ?", arguments: [Columns.blob(id), batch])
            return
        }
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO outbox(record, batch, writes, n) VALUES (?, ?, ?, ?)")
            .execute(
                arguments: [
                    Columns.blob(id), batch, RecordCodec.encode(writes.values.sorted { $0.field < $1.field }),
                    writes.count,
                ])
    }

    // MARK: local writes

    /// Creates a record of `form` in `commune` with `values`, validated against the form.
    /// - Throws: ``FormError`` naming the first bad or missing field; nothing is written.
    @discardableResult
    public func create(form: FormDefinition, commune: String, values: [String: Value], id: RecordID? = nil) throws
        -> RecordID
    {
        try createMany(form: form, commune: commune, rows: [values], ids: id.map { [$0] }).first
            ?? RecordID(high: 0, low: 0)
    }

    /// Creates many records in one transaction (CSV import, benchmarks); all
    /// rows are validated first and nothing is written if one is bad.
    /// Returns their ids in order.
    @discardableResult
    public func createMany(
        form: FormDefinition, commune: String, rows: [[String: Value]], ids: [RecordID]? = nil, validate: Bool = true
    ) throws -> [RecordID] {
        let rows = rows.map { $0.mapValues(Self.normalized) }
        if validate {
            for (i, values) in rows.enumerated() {
                let at = rows.count > 1 ? "row \(i + 1): " : ""
                let missing = form.missingRequired(in: values)
                if !missing.isEmpty {
                    throw FormError("\(at)required field(s) missing: \(missing.joined(separator: ", "))")
                }
                for (f, v) in values.sorted(by: { $0.key < $1.key }) {
                    if let why = form.violation(field: f, value: v) { throw FormError(at + why) }
                }
            }
        }
        return try write { db in
            var c = try clock(db)
            var rng = SystemRandomNumberGenerator()
            var made: [RecordID] = []
            made.reserveCapacity(rows.count)
            let insertRecord = try db.cachedStatement(
                sql: "INSERT INTO records(id, form_id, form_version, commune, state, deleted) VALUES (?, ?, ?, ?, ?, ?)"
            )
            let insertPending = try db.cachedStatement(
                sql: "INSERT INTO outbox(record, batch, writes, n) VALUES (?, ?, ?, ?)")
            for (i, values) in rows.enumerated() {
                let h = c.now()
                let rid = ids?[i] ?? RecordID.v7(millis: h.millis, using: &rng)
                let writes = values.filter { !$0.value.isNull }.sorted { $0.key < $1.key }.map { f, v in
                    FieldWrite(record: rid, field: f, id: WriteID(hlc: h, origin: origin), value: v)
                }
                // The new record's winners and its pending writes are the same
                // writes: encode once. A plain INSERT refuses an existing id.
                let blob = RecordCodec.encode(writes)
                do {
                    try insertRecord.execute(arguments: [
                        Columns.blob(rid), form.id, form.version, commune, blob,
                        values[deletedField] == .bool(true) ? 1 : 0,
                    ])
                } catch let e as DatabaseError where e.resultCode == .SQLITE_CONSTRAINT {
                    throw StoreError("record \(rid) already exists")
                }
                try insertPending.execute(arguments: [Columns.blob(rid), 0, blob, writes.count])
                made.append(rid)
            }
            try save(c, db)
            return made
        }
    }

    /// Writes new values for fields of an existing record.
    /// - Throws: ``StoreError`` if the record is unknown or deleted; ``FormError`` for a bad value.
    public func update(_ record: RecordID, values: [String: Value]) throws {
        try updateMany([(record, values)])
    }

    /// Several updates in one transaction (benchmarks, CSV import of edits).
    /// Nothing is written if one of them is refused.
    public func updateMany(_ edits: [(RecordID, [String: Value])]) throws {
        try write { db in
            var c = try clock(db)
            var forms: [String: FormDefinition] = [:]
            for f in try Self.forms(db) { forms["\(f.id)@\(f.version)"] = f }
            for (record, values) in edits {
                guard let stored = try Self.load(record, db) else {
                    throw StoreError("record \(record) does not exist here")
                }
                if stored.fields[deletedField]?.value == .bool(true) {
                    throw StoreError(
                        "record \(record) is deleted: undelete it first (ferry records undelete \(record))")
                }
                let values = values.mapValues(Self.normalized)
                if let form = forms["\(stored.scope.formID)@\(stored.scope.formVersion)"] {
                    for (f, v) in values.sorted(by: { $0.key < $1.key }) {
                        if f == deletedField { throw FormError("use delete or undelete to change \(deletedField)") }
                        if let why = form.violation(field: f, value: v) { throw FormError(why) }
                    }
                }
                try writeLocal(record, stored, values, id: WriteID(hlc: c.now(), origin: origin), db)
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
        try write { db in
            var c = try clock(db)
            for record in records {
                guard let stored = try Self.load(record, db) else {
                    throw StoreError("record \(record) does not exist here")
                }
                if (stored.fields[deletedField]?.value == .bool(true)) == deleted {
                    throw StoreError("record \(record) is already \(deleted ? "deleted" : "not deleted")")
                }
                try writeLocal(
                    record, stored, [deletedField: .bool(deleted)], id: WriteID(hlc: c.now(), origin: origin), db)
            }
            try save(c, db)
        }
    }

    /// Applies local writes to a record's winners and its pending writes
    /// (coalescing with what is already pending, WriteRules.local).
    private func writeLocal(
        _ record: RecordID, _ stored: Stored, _ values: [String: Value], id: WriteID, _ db: Database
    ) throws {
        var stored = stored
        var pending = try Self.pending(record, batch: 0, db)
        let seen = stored.fields.mapValues { [$0.id] }
        for (f, v) in values.sorted(by: { $0.key < $1.key }) {
            let w = WriteRules.local(
                record: record, field: f, value: v, id: id, winner: stored.fields[f], pending: pending[f],
                deletedWinner: stored.fields[deletedField], covers: WriteRules.covers(field: f, value: v, seen: seen))
            stored.fields[f] = w
            pending[f] = w
        }
        try Self.store(record, stored, db)
        try Self.storePending(record, batch: 0, pending, db)
    }

    /// A value as the store keeps it (text in NFC).
    public static func normalized(_ v: Value) -> Value {
        if case .text(let s) = v { return .string(s) }
        return v
    }

    // MARK: reading

    /// One record, or nil.
    public func record(_ id: RecordID) throws -> RecordView? {
        try pool.read { db in try Self.load(id, db).map { RecordView(id: id, scope: $0.scope, fields: $0.fields) } }
    }

    /// Records, newest first (UUIDv7 order), optionally including deleted ones.
    public func records(limit: Int = 50, includeDeleted: Bool = false) throws -> [RecordView] {
        try pool.read { db in
            let sql = "SELECT id FROM records \(includeDeleted ? "" : "WHERE deleted = 0 ") ORDER BY id DESC LIMIT ?"
            return try Data.fetchAll(db, sql: sql, arguments: [limit]).compactMap(Columns.record).compactMap { id in
                try Self.load(id, db).map { RecordView(id: id, scope: $0.scope, fields: $0.fields) }
            }
        }
    }

    /// Every record's winners, keyed by id (for convergence checks).
    public func fullState() throws -> [RecordID: [String: Value]] {
        try pool.read { db in
            var out: [RecordID: [String: Value]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, state FROM records") {
                guard let id = Columns.record(row["id"]) else { continue }
                var fields: [String: Value] = [:]
                for w in try RecordCodec.decode(row["state"], record: id) { fields[w.field] = w.value }
                out[id] = fields
            }
            return out
        }
    }

    /// Counts for status displays.
    public func counts() throws -> ReplicaCounts {
        try pool.read { db in
            let records = try Int.fetchOne(db, sql: "SELECT count(*) FROM records") ?? 0
            let deleted = try Int.fetchOne(db, sql: "SELECT count(*) FROM records WHERE deleted = 1") ?? 0
            let pending = try Int.fetchOne(db, sql: "SELECT coalesce(sum(n), 0) FROM outbox WHERE batch = 0") ?? 0
            let inflight = try Int.fetchOne(db, sql: "SELECT coalesce(sum(n), 0) FROM outbox WHERE batch > 0") ?? 0
            return ReplicaCounts(
                records: records, deleted: deleted, pendingWrites: pending, inFlightWrites: inflight,
                hubCursor: try Self.meta(db, "hub_cursor").flatMap(UInt64.init) ?? 0,
                lastSeq: try Self.meta(db, "last_seq").flatMap(UInt64.init) ?? 0)
        }
    }

    // MARK: sync: upload

    static func inflight(_ row: Row) -> InFlight {
        InFlight(
            seqFrom: UInt64(clamping: row["seq_from"] as Int64), seqTo: UInt64(clamping: row["seq_to"] as Int64),
            id: [UInt8](row["id"] as Data),
            envelope: [UInt8](row["envelope"] as Data), attempts: row["attempts"])
    }

    /// The change set in flight, if one was frozen and not yet acknowledged.
    public func inFlight() throws -> InFlight? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM inflight ORDER BY seq_from LIMIT 1").map(Self.inflight)
        }
    }

    /// Freezes pending writes (whole records, up to about `maxWrites`) into the
    /// next change set and stores the sealed bytes, so a retry re-sends exactly
    /// the same bytes. Returns the existing one when a change set is already in flight.
    /// - Parameter seal: seals the body into an envelope and returns (id, bytes).
    ///   It runs inside the store's transaction and must not call the store.
    /// - Parameter alongside: freeze the next change set even when others are in
    ///   flight (an offline bundle carries every pending write, SPEC §12); they
    ///   are sent, and acknowledged, in sequence.
    public func freeze(
        maxWrites: Int, alongside: Bool = false,
        seal: (ChangeSetBody, FreezeContext) throws -> (id: [UInt8], envelope: [UInt8])
    ) throws -> InFlight? {
        try write { db in
            if !alongside, let existing = try Row.fetchOne(db, sql: "SELECT * FROM inflight ORDER BY seq_from LIMIT 1")
            {
                return Self.inflight(existing)
            }
            var writes: [FieldWrite] = []
            var scopes: [RecordID: RecordScope] = [:]
            var taken: [RecordID] = []
            let rows = try Row.fetchCursor(
                db,
                sql:
                    "SELECT o.record, o.writes, r.form_id, r.form_version, r.commune FROM outbox o JOIN records r ON r.id = o.record WHERE o.batch = 0 ORDER BY o.record"
            )
            while let row = try rows.next() {
                guard let id = Columns.record(row["record"]) else { continue }
                let ws = try RecordCodec.decode(row["writes"], record: id)
                if !writes.isEmpty && writes.count + ws.count > maxWrites { break }
                writes += ws
                scopes[id] = RecordScope(
                    formID: row["form_id"], formVersion: row["form_version"], commune: row["commune"])
                taken.append(id)
            }
            guard !writes.isEmpty else { return nil }
            let last = try Self.meta(db, "last_seq").flatMap(UInt64.init) ?? 0
            let from = last + 1
            let to = last + UInt64(writes.count)
            var c = try clock(db)
            let context = FreezeContext(
                seqFrom: from, seqTo: to, now: c.now(),
                hubCursor: try Self.meta(db, "hub_cursor").flatMap(UInt64.init) ?? 0)
            try save(c, db)
            let sealed = try seal(ChangeSetBody(writes: writes, scopes: scopes), context)
            let move = try db.cachedStatement(sql: "UPDATE outbox SET batch = ? WHERE record = ? AND batch = 0")
            for id in taken { try move.execute(arguments: [Int64(clamping: from), Columns.blob(id)]) }
            try db.execute(
                sql: "INSERT INTO inflight(seq_from, seq_to, id, envelope, created_ms) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    Int64(clamping: from), Int64(clamping: to), Data(sealed.id), Data(sealed.envelope),
                    Int64(clamping: wall.nowMillis()),
                ])
            try Self.setMeta(db, "last_seq", String(to))
            return InFlight(seqFrom: from, seqTo: to, id: sealed.id, envelope: sealed.envelope, attempts: 0)
        }
    }

    /// Counts one more send attempt of the change set in flight.
    public func noteAttempt(seqFrom: UInt64) throws {
        try write { db in
            try db.execute(
                sql: "UPDATE inflight SET attempts = attempts + 1 WHERE seq_from = ?",
                arguments: [Int64(clamping: seqFrom)])
        }
    }

    /// The hub acknowledged everything up to `cursor`: drop what it covers.
    public func acknowledge(upTo cursor: UInt64) throws {
        try write { db in
            try db.execute(
                sql: "DELETE FROM outbox WHERE batch > 0 AND batch <= ?", arguments: [Int64(clamping: cursor)])
            try db.execute(sql: "DELETE FROM inflight WHERE seq_to <= ?", arguments: [Int64(clamping: cursor)])
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
        try write { db in
            // Every change set in flight goes back (an offline bundle may have
            // frozen several), newest first, so the numbers are reused from the
            // oldest and a newer frozen or local edit of a field supersedes an older one.
            let froms = try Int64.fetchAll(db, sql: "SELECT seq_from FROM inflight ORDER BY seq_from DESC")
            for from in froms {
                for d in try Data.fetchAll(db, sql: "SELECT record FROM outbox WHERE batch = ?", arguments: [from]) {
                    guard let id = Columns.record(d) else { continue }
                    var merged = try Self.pending(id, batch: from, db)
                    // A newer local edit of a field supersedes the frozen one.
                    for (f, w) in try Self.pending(id, batch: 0, db) { merged[f] = w }
                    try Self.storePending(id, batch: from, [:], db)
                    try Self.storePending(id, batch: 0, merged, db)
                }
                try db.execute(sql: "DELETE FROM inflight WHERE seq_from = ?", arguments: [from])
                try Self.setMeta(db, "last_seq", String(from - 1))
            }
            guard restamp else { return }
            // Streamed a record at a time, so memory stays bounded whatever the
            // backlog: holding every queued write, every winner and the set of
            // their ids at once took ~140 MB for a month of queued land records
            // (the soak test's final catch-up). Write ids never cross records
            // (every local edit stamps each record with its own `c.now()`), so
            // excluding a record's own queued writes from its references and
            // winners gives the same floor as excluding all of them at once.
            var floor = HLC.zero
            let everyRecord = try Row.fetchCursor(
                db,
                sql:
                    "SELECT r.id, r.state, o.writes FROM records r LEFT JOIN outbox o ON o.record = r.id AND o.batch = 0"
            )
            while let row = try everyRecord.next() {
                guard let id = Columns.record(row["id"]) else { continue }
                let queued = try (row["writes"] as Data?).map { try RecordCodec.decode($0, record: id) } ?? []
                let held = try RecordCodec.decode(row["state"], record: id).map(\.id)
                floor = max(floor, WriteRules.restampFloor(queued: queued, held: held))
            }
            // Queued writes of a record this replica holds no row for (never
            // frozen, but their references count as before).
            let orphans = try Row.fetchCursor(
                db,
                sql:
                    "SELECT o.record, o.writes FROM outbox o WHERE o.batch = 0 AND NOT EXISTS (SELECT 1 FROM records r WHERE r.id = o.record)"
            )
            while let row = try orphans.next() {
                guard let id = Columns.record(row["record"]) else { continue }
                let queued = try RecordCodec.decode(row["writes"], record: id)
                floor = max(floor, WriteRules.restampFloor(queued: queued, held: []))
            }
            var c = HybridLogicalClock(
                wall: wall, last: floor, offsetMillis: try Self.meta(db, "clock_offset_ms").flatMap(Int64.init) ?? 0)
            // In record order (the blob's byte order is RecordID's), a page of ids at a time.
            var after: Data? = nil
            while true {
                let page =
                    try after.map {
                        try Data.fetchAll(
                            db,
                            sql: "SELECT record FROM outbox WHERE batch = 0 AND record > ? ORDER BY record LIMIT 256",
                            arguments: [$0])
                    }
                    ?? Data.fetchAll(db, sql: "SELECT record FROM outbox WHERE batch = 0 ORDER BY record LIMIT 256")
                guard let last = page.last else { break }
                after = last
                for d in page {
                    guard let id = Columns.record(d), var stored = try Self.load(id, db) else { continue }
                    let pending = try Self.pending(id, batch: 0, db)
                    let r = WriteRules.restamp(
                        pending: pending, winners: stored.fields, as: WriteID(hlc: c.now(), origin: origin))
                    stored.fields = r.winners
                    try Self.store(id, stored, db)
                    try Self.storePending(id, batch: 0, r.pending, db)
                }
            }
            try save(c, db)
        }
    }

    // MARK: re-enrollment

    /// Moves every write the hub has not acknowledged to `newOrigin`, in one
    /// transaction (SPEC §7.2: a cloned replica is enrolled as its own agent).
    ///
    /// Change sets in flight go back to the outbox (the hub refused or never
    /// saw them), every queued write and every reference to it (`prev`,
    /// `covers`, `alive`, the record's winner) takes the new origin with its
    /// timestamp unchanged, the sequence restarts at 1 and the hub cursor at 0,
    /// so the next sync sends each of them once under the new agent and
    /// downloads what the other PC wrote under the old one. Writes the hub
    /// acknowledged stay as they are: the hub has them.
    /// - Returns: the number of writes queued under the new origin.
    @discardableResult
    public func reorigin(to newOrigin: OriginID) throws -> Int {
        let old = origin
        return try write { db in
            // Oldest batch first, the unfrozen outbox (batch 0) last: a newer
            // local edit of a field supersedes a frozen one.
            var queued: [RecordID: [String: FieldWrite]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT record, batch FROM outbox ORDER BY batch = 0, batch") {
                guard let id = Columns.record(row["record"]) else { continue }
                let batch: Int64 = row["batch"]
                for (f, w) in try Self.pending(id, batch: batch, db) { queued[id, default: [:]][f] = w }
            }
            var moved: [WriteID: WriteID] = [:]
            for w in queued.values.flatMap(\.values) where w.id.origin == old {
                moved[w.id] = WriteID(hlc: w.id.hlc, origin: newOrigin)
            }
            func remap(_ w: FieldWrite) -> FieldWrite {
                var w = w
                w.id = moved[w.id] ?? w.id
                w.prev = w.prev.map { moved[$0] ?? $0 }.sorted()
                w.covers = w.covers.map { moved[$0] ?? $0 }.sorted()
                w.alive = w.alive.map { moved[$0] ?? $0 }
                return w
            }
            try db.execute(sql: "DELETE FROM outbox")
            try db.execute(sql: "DELETE FROM inflight")
            var count = 0
            for (id, writes) in queued.sorted(by: { $0.key < $1.key }) {
                try Self.storePending(id, batch: 0, writes.mapValues(remap), db)
                count += writes.count
            }
            if !moved.isEmpty {
                for row in try Row.fetchAll(db, sql: "SELECT id FROM records") {
                    guard let id = Columns.record(row["id"]), var stored = try Self.load(id, db) else { continue }
                    let fresh = stored.fields.mapValues(remap)
                    guard fresh != stored.fields else { continue }
                    stored.fields = fresh
                    try Self.store(id, stored, db)
                }
            }
            try Self.setMeta(db, "last_seq", "0")
            try Self.setMeta(db, "hub_cursor", "0")
            try Self.setMeta(db, "previous_origin", old.rawValue)
            try db.execute(
                sql:
                    "DELETE FROM meta WHERE key IN ('cloned_replica', 'cloned_replica_ms', 'last_error', 'last_error_ms')"
            )
            return count
        }
    }

    // MARK: sync: download

    /// Applies writes received from a peer (the hub's stream, or another
    /// replica in benchmarks) and advances the hub cursor, in one transaction.
    /// Re-delivery is harmless: a write only replaces a lower winner.
    /// - Returns: the number of fields whose winner changed.
    @discardableResult
    public func applyRemote(_ body: ChangeSetBody, cursor: UInt64? = nil) throws -> Int {
        try write { db in
            var c = try clock(db)
            var maxSeen = c.last
            try Self.putCatalog(body.catalog, db)
            var byRecord: [RecordID: [FieldWrite]] = [:]
            for w in body.writes { byRecord[w.record, default: []].append(w) }
            var changed = 0
            for (id, writes) in byRecord.sorted(by: { $0.key < $1.key }) {
                var stored: Stored
                if var s = try Self.load(id, db) {
                    // The hub migrated the record to a newer version of its form (SPEC §7.3.1).
                    if let scope = body.scopes[id], scope.formID == s.scope.formID, scope.commune == s.scope.commune,
                        scope.formVersion > s.scope.formVersion
                    {
                        s.scope = scope
                        try Self.store(id, s, db)
                    }
                    stored = s
                } else {
                    guard let scope = body.scopes[id] else { continue }
                    stored = Stored(scope: scope, fields: [:])
                }
                var dirty = false
                for w in writes {
                    if w.id.hlc > maxSeen { maxSeen = w.id.hlc }
                    var reg = WinnerRegister(winner: stored.fields[w.field])
                    if reg.apply(w) {
                        stored.fields[w.field] = w
                        dirty = true
                        changed += 1
                    }
                }
                if dirty { try Self.store(id, stored, db) }
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
