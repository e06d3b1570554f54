import FerryCore
import FerryProtocol
import Foundation
import GRDB
import GRDBSQLite

extension SQLiteHubStore: HubServiceStore {
    public func transaction<T>(_ body: (any HubTransaction) throws -> T) throws -> T {
        try write { db in try body(SQLiteHubTransaction(db: db, store: self)) }
    }

    public func noteClonedReplica(agent: String) throws {
        try write { db in
            try db.execute(
                sql: "UPDATE agents SET cloned_ms = ?, cloned_refusals = cloned_refusals + 1 WHERE id = ?",
                arguments: [Int64(clamping: nowMillis()), agent])
        }
    }
}

/// ``HubTransaction`` over one GRDB write transaction: cached statements,
/// rows read by column index, one statement per leaf written.
final class SQLiteHubTransaction: HubTransaction {
    let db: Database
    let store: SQLiteHubStore

    init(db: Database, store: SQLiteHubStore) {
        self.db = db
        self.store = store
    }

    func agent(id: String) throws -> AgentInfo? { try SQLiteHubStore.agent(db, id: id) }

    func streamHead() throws -> UInt64 {
        try AgentStore.meta(db, "stream_seq").flatMap(UInt64.init) ?? 0
    }

    func storedChangeSet(id: [UInt8]) throws -> StoredChangeSet? {
        try Row.fetchOne(
            try db.cachedStatement(sql: "SELECT seq_from, seq_to, body_digest FROM changesets WHERE id = ?"),
            arguments: [Data(id)]
        ).map(Self.stored)
    }

    func storedChangeSet(origin: String, seqFrom: UInt64) throws -> StoredChangeSet? {
        try Row.fetchOne(
            try db.cachedStatement(
                sql: "SELECT seq_from, seq_to, body_digest FROM changesets WHERE origin = ? AND seq_from = ?"),
            arguments: [origin, Int64(clamping: seqFrom)]
        ).map(Self.stored)
    }

    static func stored(_ row: Row) -> StoredChangeSet {
        StoredChangeSet(
            seqFrom: UInt64(clamping: row[0] as Int64), seqTo: UInt64(clamping: row[1] as Int64),
            digest: (row[2] as Data?).map { [UInt8]($0) })
    }

    func scopes(of records: [RecordID]) throws -> [RecordID: RecordScope] {
        let stmt = try db.cachedStatement(sql: "SELECT form_id, form_version, commune FROM records WHERE id = ?")
        var out: [RecordID: RecordScope] = [:]
        for r in records {
            if let row = try Row.fetchOne(stmt, arguments: [Columns.blob(r)]) {
                out[r] = RecordScope(formID: row[0], formVersion: row[1], commune: row[2])
            }
        }
        return out
    }

    func forms() throws -> [String: FormDefinition] { try store.formsByKey(db) }

    func registers(of records: [RecordID]) throws -> [RecordID: [String: LeafRegister]] {
        let stmt = try db.cachedStatement(
            sql: "SELECT field, t, v, hlc, origin, prev, alive, covers FROM leaves WHERE record = ?")
        var out: [RecordID: [String: LeafRegister]] = [:]
        for record in records where out[record] == nil {
            var byField: [String: [FieldWrite]] = [:]
            let rows = try Row.fetchCursor(stmt, arguments: [Columns.blob(record)])
            while let row = try rows.next() {
                let w = FieldWrite(record: record, indexedRow: row)
                byField[w.field, default: []].append(w)
            }
            if !byField.isEmpty { out[record] = byField.mapValues { LeafRegister(leaves: $0) } }
        }
        return out
    }

    func clock() throws -> HybridLogicalClock { try store.clock(db) }

    func save(clock: HybridLogicalClock) throws { try store.save(clock, db) }

    func reserveStream(_ count: Int) throws -> UInt64 {
        let head = try Int64.fetchOne(
            try db.cachedStatement(
                sql:
                    "UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'stream_seq' RETURNING CAST(value AS INTEGER)"
            ), arguments: [count])
        return UInt64(clamping: (head ?? 0) - Int64(count) + 1)
    }

    func persist(_ records: [MergedRecord], firstSeq: UInt64, changeSet: [UInt8]?, atMillis: UInt64) throws {
        var seq = firstSeq
        for r in records {
            if r.batch.isNew { try createRecord(r.batch.record, scope: r.batch.scope, atMillis: atMillis) }
            try persist(
                r.merge, record: r.batch.record, commune: r.batch.scope.commune, firstSeq: seq, changeSet: changeSet,
                atMillis: atMillis)
            seq += UInt64(r.merge.added.count)
        }
    }

    private func createRecord(_ id: RecordID, scope: RecordScope, atMillis: UInt64) throws {
        try db.cachedStatement(
            sql: "INSERT OR IGNORE INTO records(id, form_id, form_version, commune, created_ms) VALUES (?, ?, ?, ?, ?)"
        ).execute(arguments: [
            Columns.blob(id), scope.formID, scope.formVersion, scope.commune, Int64(clamping: atMillis),
        ])
    }

    private func persist(
        _ m: RecordMerge, record: RecordID, commune: String, firstSeq: UInt64, changeSet: [UInt8]?, atMillis: UInt64
    ) throws {
        let rid = Columns.blob(record)
        if !m.removed.isEmpty {
            let del = try db.cachedStatement(
                sql: "DELETE FROM leaves WHERE record = ? AND field = ? AND hlc = ? AND origin = ?")
            for (field, id) in m.removed {
                try del.execute(arguments: [rid, field, Columns.int64(id.hlc), id.origin.rawValue])
            }
        }
        let insert = try LeafInsert(
            db.cachedStatement(
                sql:
                    "INSERT INTO leaves(record, field, t, v, hlc, origin, prev, alive, covers, seq, commune, changeset) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
            ), db)
        var seq = firstSeq
        for w in m.added {
            try insert.run(w, record: record, seq: seq, commune: commune, changeSet: changeSet)
            seq += 1
        }
        if m.isDeleted != m.wasDeleted {
            try db.cachedStatement(sql: "UPDATE records SET deleted = ? WHERE id = ?").execute(arguments: [
                m.isDeleted ? 1 : 0, rid,
            ])
        }
        if m.conflictsChanged {
            let del = try db.cachedStatement(sql: "DELETE FROM conflicts WHERE record = ? AND field = ? AND kind = ?")
            for c in m.conflictsBefore.subtracting(m.conflictsAfter).sorted() {
                try del.execute(arguments: [rid, c.field, c.kind.rawValue])
            }
            let ins = try db.cachedStatement(
                sql:
                    "INSERT OR IGNORE INTO conflicts(record, field, kind, commune, detected_ms) VALUES (?, ?, ?, ?, ?)")
            for c in m.conflictsAfter.subtracting(m.conflictsBefore).sorted() {
                try ins.execute(arguments: [rid, c.field, c.kind.rawValue, commune, Int64(clamping: atMillis)])
            }
        }
    }

    func quarantine(_ writes: [RefusedWrite], changeSet: [UInt8]?, atMillis: UInt64) throws {
        let stmt = try db.cachedStatement(
            sql: """
                INSERT INTO quarantine(changeset, origin, record, field, t, v, hlc, reason, created_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let cs = changeSet.map { Data($0) }
        for r in writes {
            let w = r.write
            try stmt.execute(arguments: [
                cs, w.id.origin.rawValue, Columns.blob(w.record), w.field, Columns.tag(w.value),
                Columns.sqlValue(w.value), Columns.int64(w.id.hlc), r.reason, Int64(clamping: atMillis),
            ])
        }
    }

    func recordChangeSet(_ cs: OpenedChangeSet, agent: String, digest: [UInt8], atMillis: UInt64) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO changesets(id, origin, seq_from, seq_to, received_ms, writes, signed, body_digest)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            Data(cs.header.id), agent, Int64(clamping: cs.header.seqFrom), Int64(clamping: cs.header.seqTo),
            Int64(clamping: atMillis), cs.body.writes.count, Data(cs.signedRecord), Data(digest),
        ])
    }

    func advance(agent: String, appliedSeq: UInt64, ack: UInt64, skewMs: Int64, atMillis: UInt64) throws {
        try db.cachedStatement(
            sql: """
                UPDATE agents SET applied_seq = ?, acked_cursor = max(acked_cursor, ?), last_seen_ms = ?,
                  last_skew_ms = ?, last_error = NULL WHERE id = ?
                """
        ).execute(arguments: [
            Int64(clamping: appliedSeq), Int64(clamping: ack), Int64(clamping: atMillis), skewMs, agent,
        ])
    }

    func openConflictCount() throws -> Int { try SQLiteHubStore.openConflictCount(db) }
}

/// The leaf insert through SQLite's C API. It runs once per field write, and
/// binding through GRDB's `StatementArguments` (an array of boxed values per
/// row) cost more CPU than SQLite's own insert (perf of W2 ingest: 20 % of
/// the hub in `persist`, most of it argument boxing, retain/release and
/// metadata lookups). The statement is GRDB's cached one; this only binds,
/// steps and resets it, and reports failures as GRDB's `DatabaseError`, so
/// storage faults are classified as everywhere else (``StoreFault``).
struct LeafInsert {
    let stmt: OpaquePointer
    let db: Database
    static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ statement: Statement, _ db: Database) {
        stmt = statement.sqliteStatement
        self.db = db
    }

    func run(_ w: FieldWrite, record: RecordID, seq: UInt64, commune: String, changeSet: [UInt8]?) throws {
        defer {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
        }
        bind(1, record.bytes)
        bind(2, w.field)
        sqlite3_bind_int64(stmt, 3, Columns.tag(w.value))
        switch w.value {
        case .null, .bool: sqlite3_bind_null(stmt, 4)
        case .int(let i): sqlite3_bind_int64(stmt, 4, i)
        case .double(let d): sqlite3_bind_double(stmt, 4, d)
        case .text(let t): bind(4, t)
        case .date(let d): sqlite3_bind_int64(stmt, 4, Int64(d))
        case .bytes(let b): bind(4, b)
        }
        sqlite3_bind_int64(stmt, 5, Columns.int64(w.id.hlc))
        bind(6, w.id.origin.rawValue)
        bind(7, [UInt8](Columns.encodeRefs(w.prev)))
        bind(8, [UInt8](Columns.encodeRefs(w.alive.map { [$0] } ?? [])))
        bind(9, [UInt8](Columns.encodeRefs(w.covers)))
        sqlite3_bind_int64(stmt, 10, Int64(clamping: seq))
        bind(11, commune)
        if let cs = changeSet { bind(12, cs) } else { sqlite3_bind_null(stmt, 12) }
        let rc = sqlite3_step(stmt)
        guard rc == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(db.sqliteConnection)),
                sql: "INSERT INTO leaves …")
        }
    }

    private func bind(_ i: Int32, _ bytes: [UInt8]) {
        // A zero-length blob, as GRDB binds empty Data (never NULL).
        guard !bytes.isEmpty else {
            sqlite3_bind_zeroblob(stmt, i, 0)
            return
        }
        // Lengths are bounded by the envelope limits, far below Int32.max.
        bytes.withUnsafeBytes {
            _ = sqlite3_bind_blob(stmt, i, $0.baseAddress, Int32(clamping: $0.count), Self.transient)
        }
    }

    private func bind(_ i: Int32, _ text: String) {
        // An empty string is '' (a nil pointer would bind NULL).
        guard !text.isEmpty else {
            _ = "".withCString { sqlite3_bind_text(stmt, i, $0, 0, Self.transient) }
            return
        }
        var text = text
        text.withUTF8 { u in
            _ = u.withMemoryRebound(to: CChar.self) {
                sqlite3_bind_text(stmt, i, $0.baseAddress, Int32(clamping: $0.count), Self.transient)
            }
        }
    }
}

extension FieldWrite {
    /// Reads a leaf from a row whose columns are, by index: field, t, v, hlc, origin, prev, alive, covers.
    init(record: RecordID, indexedRow row: Row) {
        self.init(
            record: record, field: row[0],
            id: WriteID(hlc: Columns.hlc(row[3]), origin: OriginID(row[4] as String)),
            prev: Columns.decodeRefs(row[5]),
            value: Columns.value(tag: row[1], row[2] as DatabaseValue),
            alive: Columns.decodeRefs(row[6]).first, covers: Columns.decodeRefs(row[7]))
    }
}
