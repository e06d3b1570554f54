import FerryCore
import FerryProtocol
import Foundation
import GRDB

/// A value this agent wrote that the hub quarantined, with the hub's reason.
public struct LocalQuarantine: Sendable, Codable, Equatable {
    public var record: String
    public var field: String
    public var value: String
    public var reason: String
    public var timeMs: UInt64
}

extension AgentStore {
    static func migrateQuarantine(_ m: inout DatabaseMigrator) {
        m.registerMigration("v2-quarantine") { db in
            try db.execute(
                sql: """
                    CREATE TABLE quarantined(record BLOB NOT NULL, field TEXT NOT NULL, write TEXT NOT NULL,
                        value TEXT NOT NULL, reason TEXT NOT NULL, created_ms INTEGER NOT NULL,
                        PRIMARY KEY(record, field, write)) WITHOUT ROWID;
                    """)
        }
    }

    /// Applies the hub's notices about this agent's quarantined writes (SPEC §8.9),
    /// in one transaction: where the replica still shows a refused value, it takes
    /// the hub's accepted winner instead, or drops the field when the hub holds
    /// none; every refusal is kept with its reason for `ferry status`.
    /// - Returns: the number of fields corrected.
    @discardableResult
    public func applyQuarantine(_ notices: [QuarantineNotice]) throws -> Int {
        let now = Int64(clamping: wallMillis())
        return try pool.write { db in
            var corrected = 0
            for n in notices {
                let w = n.refused
                var stored = try Self.load(w.record, db)
                let shown = stored?.fields[w.field].flatMap { $0.id == w.id ? $0.value : nil } ?? w.value
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO quarantined(record, field, write, value, reason, created_ms)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        Columns.blob(w.record), w.field, QuarantineAuth.text(w.id), shown.display, n.reason, now,
                    ])
                guard var s = stored, s.fields[w.field]?.id == w.id else { continue }
                s.fields[w.field] = n.accepted
                try Self.store(w.record, s, db)
                stored = s
                corrected += 1
            }
            return corrected
        }
    }

    /// Values of this agent the hub quarantined and nobody has corrected yet, newest first.
    public func quarantined(limit: Int = 100) throws -> [LocalQuarantine] {
        try pool.read { db in
            // Refusals are few; the cap bounds a replica that collected many.
            try Row.fetchAll(db, sql: "SELECT * FROM quarantined ORDER BY created_ms DESC LIMIT 10000")
                .filter { try Self.stillOpen($0, db) }.prefix(max(0, limit)).map { r in
                    LocalQuarantine(
                        record: Columns.record(r["record"])?.description ?? "?", field: r["field"],
                        value: r["value"], reason: r["reason"], timeMs: UInt64(clamping: r["created_ms"] as Int64))
                }
        }
    }

    /// A refusal is settled once the field holds a later write than the refused
    /// one: the hub operator's fix (`ferry quarantine fix`, the console) or the
    /// clerk's new entry. Until then the PC keeps showing it with its reason.
    static func stillOpen(_ r: Row, _ db: Database) throws -> Bool {
        guard let refused = QuarantineAuth.writeID(r["write"]), let rid = Columns.record(r["record"]) else {
            return true
        }
        guard let current = try load(rid, db)?.fields[r["field"] as String] else { return true }
        return current.id <= refused
    }
}

extension AgentStore {
    /// The refusals the hub reported for one record and nobody corrected yet, newest first per field.
    public func quarantined(record: RecordID) throws -> [LocalQuarantine] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM quarantined WHERE record = ? ORDER BY created_ms DESC",
                arguments: [Columns.blob(record)]
            ).filter { try Self.stillOpen($0, db) }.map { r in
                LocalQuarantine(
                    record: record.description, field: r["field"], value: r["value"], reason: r["reason"],
                    timeMs: UInt64(clamping: r["created_ms"] as Int64))
            }
        }
    }
}
