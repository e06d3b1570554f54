import FerryCore
import Foundation
import GRDB

extension AgentStore {
    /// One page of records, newest first (UUIDv7 order), strictly older than
    /// `before` when given, deleted ones included: the entry page's list, so
    /// a commune with thousands of records can reach every one of them.
    public func records(before: RecordID?, limit: Int) throws -> [RecordView] {
        let n = max(1, min(limit, 1000))
        return try pool.read { db in
            let ids =
                try before.map {
                    try Data.fetchAll(
                        db, sql: "SELECT id FROM records WHERE id < ? ORDER BY id DESC LIMIT ?",
                        arguments: [Columns.blob($0), n])
                } ?? Data.fetchAll(db, sql: "SELECT id FROM records ORDER BY id DESC LIMIT ?", arguments: [n])
            return try ids.compactMap(Columns.record).compactMap { id in
                try Self.load(id, db).map { RecordView(id: id, scope: $0.scope, fields: $0.fields) }
            }
        }
    }

    /// How many records are older than `before` (all records when nil).
    public func recordCount(before: RecordID?) throws -> Int {
        try pool.read { db in
            if let before {
                return try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM records WHERE id < ?", arguments: [Columns.blob(before)]) ?? 0
            }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM records") ?? 0
        }
    }
}
