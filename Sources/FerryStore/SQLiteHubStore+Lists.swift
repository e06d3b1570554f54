import FerryCore
import FerryCrypto
import FerryProtocol
import Foundation
import GRDB

/// What `GET conflicts` may filter on (SPEC §9.6).
public struct ConflictFilter: Sendable, Equatable {
    public var commune: String?
    public var form: String?
    public var field: String?
    /// Only conflicts detected at least this long ago.
    public var olderThanMillis: UInt64?
    public init(commune: String? = nil, form: String? = nil, field: String? = nil, olderThanMillis: UInt64? = nil) {
        self.commune = commune
        self.form = form
        self.field = field
        self.olderThanMillis = olderThanMillis
    }
}

/// Where a page of conflicts ends: the primary key of its last conflict.
public struct ConflictKey: Sendable, Equatable {
    public var record: RecordID
    public var field: String
    public var kind: String
    public init(record: RecordID, field: String, kind: String) {
        self.record = record
        self.field = field
        self.kind = kind
    }
}

/// A page read from the store: the items and how many match after them.
public struct StorePage<Item: Sendable>: Sendable {
    public var items: [Item]
    public var remaining: Int
    public init(items: [Item], remaining: Int) {
        self.items = items
        self.remaining = remaining
    }
}

// Keyset pages (never OFFSET, so a page is as cheap at the end of a list as at
// its start): each list is ordered by its primary key, the cursor is the last
// key shown, and `remaining` counts the same filter after the page.
extension SQLiteHubStore {
    /// Builds `WHERE a AND b ...` from optional clauses.
    private static func whereSQL(_ clauses: [(String, [any DatabaseValueConvertible])]) -> (
        String, StatementArguments
    ) {
        guard !clauses.isEmpty else { return ("", []) }
        var args: [any DatabaseValueConvertible] = []
        for c in clauses { args += c.1 }
        return (" WHERE " + clauses.map(\.0).joined(separator: " AND "), StatementArguments(args))
    }

    /// Record ids newest first (ids are UUIDv7, so by creation time).
    /// - Parameter createdIn: only records whose id (UUIDv7) time lies in [start, end) ms.
    public func recordPage(
        commune: String?, form: String?, includeDeleted: Bool, after: RecordID?, limit: Int,
        createdIn: (start: UInt64, end: UInt64)? = nil
    ) throws -> StorePage<RecordID> {
        try pool.read { db in
            var c: [(String, [any DatabaseValueConvertible])] = []
            if let r = createdIn {
                c.append(("id >= ? AND id < ?", [Self.idBound(r.start), Self.idBound(r.end)]))
            }
            if let commune { c.append(("commune = ?", [commune])) }
            if let form { c.append(("form_id = ?", [form])) }
            if !includeDeleted { c.append(("deleted = 0", [])) }
            let filters = c
            if let after { c.append(("id < ?", [Columns.blob(after)])) }
            let (w, args) = Self.whereSQL(c)
            let ids = try Data.fetchAll(
                db, sql: "SELECT id FROM records\(w) ORDER BY id DESC LIMIT ?", arguments: args + [limit]
            ).compactMap(Columns.record)
            guard let last = ids.last else { return StorePage(items: [], remaining: 0) }
            let (w2, args2) = Self.whereSQL(filters + [("id < ?", [Columns.blob(last)])])
            let rest = try Int.fetchOne(db, sql: "SELECT count(*) FROM records\(w2)", arguments: args2) ?? 0
            return StorePage(items: ids, remaining: rest)
        }
    }

    /// Open conflicts in key order (record ids are time-ordered), filtered.
    public func conflictPage(_ f: ConflictFilter, after: ConflictKey?, limit: Int) throws -> StorePage<ConflictReport> {
        let now = nowMillis()
        return try pool.read { db in
            var c: [(String, [any DatabaseValueConvertible])] = []
            if let commune = f.commune { c.append(("c.commune = ?", [commune])) }
            if let form = f.form { c.append(("r.form_id = ?", [form])) }
            if let field = f.field { c.append(("c.field = ?", [field])) }
            if let age = f.olderThanMillis {
                c.append(("c.detected_ms <= ?", [Int64(clamping: now >= age ? now - age : 0)]))
            }
            let filters = c
            func afterKey(_ k: ConflictKey) -> (String, [any DatabaseValueConvertible]) {
                (
                    "(c.record > ? OR (c.record = ? AND (c.field > ? OR (c.field = ? AND c.kind > ?))))",
                    [Columns.blob(k.record), Columns.blob(k.record), k.field, k.field, k.kind]
                )
            }
            if let k = after { c.append(afterKey(k)) }
            let from = " FROM conflicts c JOIN records r ON r.id = c.record"
            let (w, args) = Self.whereSQL(c)
            let rows = try Row.fetchAll(
                db, sql: "SELECT c.*\(from)\(w) ORDER BY c.record, c.field, c.kind LIMIT ?", arguments: args + [limit])
            let agents = try Self.agentCommunes(db)
            var out: [ConflictReport] = []
            var lastKey: ConflictKey?
            for row in rows {
                guard let rid = Columns.record(row["record"]) else { continue }
                lastKey = ConflictKey(record: rid, field: row["field"], kind: row["kind"])
                if let r = try Self.conflictReport(row, db: db, agents: agents) { out.append(r) }
            }
            guard let lastKey else { return StorePage(items: [], remaining: 0) }
            let (w2, args2) = Self.whereSQL(filters + [afterKey(lastKey)])
            let rest = try Int.fetchOne(db, sql: "SELECT count(*)\(from)\(w2)", arguments: args2) ?? 0
            return StorePage(items: out, remaining: rest)
        }
    }

    /// Quarantined values oldest first; `status` nil means every entry.
    public func quarantinePage(status: String? = "open", after: Int64?, limit: Int) throws -> StorePage<
        QuarantineEntry
    > {
        try pool.read { db in
            var c: [(String, [any DatabaseValueConvertible])] = []
            if let status { c.append(("status = ?", [status])) }
            let filters = c
            if let after { c.append(("id > ?", [after])) }
            let (w, args) = Self.whereSQL(c)
            let items = try Row.fetchAll(
                db, sql: "SELECT * FROM quarantine\(w) ORDER BY id LIMIT ?", arguments: args + [limit]
            ).map(Self.quarantineEntry)
            guard let last = items.last else { return StorePage(items: [], remaining: 0) }
            let (w2, args2) = Self.whereSQL(filters + [("id > ?", [last.id])])
            let rest = try Int.fetchOne(db, sql: "SELECT count(*) FROM quarantine\(w2)", arguments: args2) ?? 0
            return StorePage(items: items, remaining: rest)
        }
    }

    /// The smallest UUIDv7 id of millisecond `ms` (ids sort by time, bytewise).
    static func idBound(_ ms: UInt64) -> Data {
        let m = min(ms, (UInt64(1) << 48) - 1)
        return Data((0..<6).map { UInt8(truncatingIfNeeded: m >> (8 * (5 - $0))) } + [UInt8](repeating: 0, count: 10))
    }

    static func agentCommunes(_ db: Database) throws -> [String: String] {
        Dictionary(
            try Row.fetchAll(db, sql: "SELECT id, commune FROM agents").map {
                ($0["id"] as String, $0["commune"] as String)
            },
            uniquingKeysWith: { a, _ in a })
    }

    /// One open conflict row with every side's provenance; nil when the record is gone.
    static func conflictReport(_ row: Row, db: Database, agents: [String: String]) throws -> ConflictReport? {
        guard let rid = Columns.record(row["record"]), let view = try Self.hubView(rid, db) else { return nil }
        let field: String = row["field"]
        let kind: String = row["kind"]
        let all = ConflictRules.conflicts(record: rid, registers: view.leaves).filter {
            $0.field == field && $0.kind.rawValue == kind
        }
        var writes: [FieldWrite] = []
        for c in all { for w in c.writes where !writes.contains(w) { writes.append(w) } }
        let sides = writes.map { w in
            ConflictReport.Side(
                write: w.id.description, origin: w.id.origin.rawValue,
                commune: w.id.origin == .hub ? nil : agents[w.id.origin.rawValue], timeMs: w.id.hlc.millis,
                field: w.field, value: JSONValue(w.value), valueType: w.value.typeName)
        }
        return ConflictReport(
            record: rid.description, field: field, kind: kind, commune: row["commune"],
            detectedMs: UInt64(clamping: row["detected_ms"] as Int64), sides: sides)
    }

    static func quarantineEntry(_ r: Row) -> QuarantineEntry {
        let v = Columns.value(tag: r["t"], r["v"] as DatabaseValue)
        return QuarantineEntry(
            id: r["id"], changeSet: hex([UInt8]((r["changeset"] as Data?) ?? Data())), origin: r["origin"],
            record: Columns.record(r["record"])?.description ?? "?", field: r["field"], value: JSONValue(v),
            valueType: v.typeName, reason: r["reason"], timeMs: UInt64(clamping: r["created_ms"] as Int64),
            status: r["status"], closedBy: r["closed_by"],
            closedMs: (r["closed_ms"] as Int64?).map { UInt64(clamping: $0) }, note: r["note"])
    }
}

extension SQLiteHubStore {
    /// The open conflicts of one record: (field, kind) pairs.
    public func openConflicts(record: RecordID) throws -> [(field: String, kind: String)] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT field, kind FROM conflicts WHERE record = ? ORDER BY field, kind",
                arguments: [Columns.blob(record)]
            ).map { ($0["field"], $0["kind"]) }
        }
    }

    /// Open conflicts and open quarantine entries per commune (for `ferry status --at-hub`).
    /// A quarantined write of a record the hub never created counts for its agent's commune.
    public func openItemsByCommune() throws -> (conflicts: [String: Int], quarantined: [String: Int]) {
        try pool.read { db in
            func counts(_ sql: String) throws -> [String: Int] {
                Dictionary(
                    try Row.fetchAll(db, sql: sql).compactMap { r in
                        (r[0] as String?).map { ($0, r[1] as Int) }
                    }, uniquingKeysWith: +)
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
}
