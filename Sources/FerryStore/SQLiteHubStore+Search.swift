import FerryCore
import Foundation
import GRDB

extension SQLiteHubStore {
    /// Records (newest first) with a current or past value containing `text`
    /// (SQLite `LIKE`: case-insensitive for ASCII only), optionally of one
    /// commune; every record of the commune when `text` is empty. For the console's search.
    public func searchRecords(text: String, commune: String?, limit: Int) throws -> [RecordID] {
        let limit = max(1, min(limit, 1000))
        guard let pattern = Self.likePattern(text) else { return try recordIDs(commune: commune, limit: limit) }
        return try pool.read { db in
            try Data.fetchAll(
                db,
                sql: """
                    SELECT DISTINCT record FROM leaves WHERE typeof(v) = 'text' AND v LIKE ? ESCAPE '\\'
                    AND (?2 IS NULL OR commune = ?2) ORDER BY record DESC LIMIT ?3
                    """, arguments: [pattern, commune, limit]
            ).compactMap(Columns.record)
        }
    }
}
