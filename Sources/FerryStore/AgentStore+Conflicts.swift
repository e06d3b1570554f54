import FerryCore
import FerryProtocol
import Foundation
import GRDB

/// An open conflict on one of this commune's records, as the hub last listed
/// it (SPEC §9.13): the hub operator chooses the value; staff see it here.
public struct LocalConflict: Sendable, Codable, Equatable {
    /// One competing value.
    public struct Side: Sendable, Codable, Equatable {
        /// The field the value is for: the conflict's, or `_deleted` (a deletion).
        public var field: String
        /// As a person reads it.
        public var value: String
        /// Who wrote it: an agent id, or `hub` for the hub operator.
        public var origin: String
        public var timeMs: UInt64
    }
    public var record: String
    public var field: String
    /// `concurrent_writes` or `edit_vs_delete` (SPEC §8.6).
    public var kind: String
    public var detectedMs: UInt64
    /// Highest write first: `sides[0]` is the value the hub shows until resolved.
    public var sides: [Side]

    public init(_ c: ConflictReport) {
        record = c.record
        field = c.field
        kind = c.kind
        detectedMs = c.detectedMs
        sides = c.sides.map { Side(field: $0.field, value: $0.value.description, origin: $0.origin, timeMs: $0.timeMs) }
    }
}

extension AgentStore {
    static func migrateConflicts(_ m: inout DatabaseMigrator) {
        m.registerMigration("v3-hub-conflicts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE hub_conflicts(record TEXT NOT NULL, field TEXT NOT NULL, kind TEXT NOT NULL,
                        detected_ms INTEGER NOT NULL, json BLOB NOT NULL, PRIMARY KEY(record, field, kind)) WITHOUT ROWID;
                    """)
        }
    }

    /// Replaces the hub's list of open conflicts on this commune (SPEC §9.13)
    /// and its count, in one transaction.
    public func replaceHubConflicts(_ answer: CommuneConflictsV1, atMillis: UInt64) throws {
        let encoder = JSONEncoder()
        try write { db in
            try db.execute(sql: "DELETE FROM hub_conflicts")
            for c in answer.conflicts {
                try db.execute(
                    sql:
                        "INSERT OR REPLACE INTO hub_conflicts(record, field, kind, detected_ms, json) VALUES (?, ?, ?, ?, ?)",
                    arguments: [
                        c.record, c.field, c.kind, Int64(clamping: c.detectedMs),
                        try encoder.encode(LocalConflict(c)),
                    ])
            }
            for (k, v) in [
                "commune_conflicts_open": String(max(0, answer.open)), "commune_conflicts_ms": String(atMillis),
            ] {
                try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [k, v])
            }
        }
    }

    /// The open conflicts on this commune's records as the hub last listed them,
    /// oldest first; with `record`, only that record's.
    public func hubConflicts(record: RecordID? = nil, limit: Int = CommuneConflictsV1.maxListed) throws
        -> [LocalConflict]
    {
        let decoder = JSONDecoder()
        return try pool.read { db in
            let rows =
                if let record {
                    try Data.fetchAll(
                        db, sql: "SELECT json FROM hub_conflicts WHERE record = ? ORDER BY detected_ms LIMIT ?",
                        arguments: [record.description, max(0, limit)])
                } else {
                    try Data.fetchAll(
                        db, sql: "SELECT json FROM hub_conflicts ORDER BY detected_ms, record LIMIT ?",
                        arguments: [max(0, limit)])
                }
            return rows.compactMap { try? decoder.decode(LocalConflict.self, from: $0) }
        }
    }
}
