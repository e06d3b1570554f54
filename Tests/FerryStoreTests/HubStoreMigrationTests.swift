import FerryCore
import FerryStore
import Foundation
import GRDB
import Testing

/// Stores written by an earlier release open with this one and read the same values.
struct HubStoreMigrationTests {
    @Test func valueTagsOfAVersion1StoreAreRenumberedAndReadBackUnchanged() throws {
        let dir = try TempDir("migrate-tags")
        defer { dir.remove() }
        let t = try HubAndAgent(dir)
        let values: [String: Value] = [
            "owner_name": .string("Nguyễn Thị Ánh"), "owner_id": .string("012345678901"), "status": .string("draft"),
            "members": .int(4), "area_m2": .double(120.5), "granted_on": .date(19_000),
        ]
        let rid = try t.agent.create(form: try Fixture.form, commune: Fixture.commune, values: values)
        try t.upload()
        try t.agent.delete([rid])
        try t.upload()
        let before = try #require(try t.hub.record(rid))
        #expect(before.isDeleted)

        // Rewrite the rows as release 0.1.0 stored them (null 0, bool 1 with v 0/1,
        // int 2, double 3, string 4, date 5, bytes 6) and forget the migration.
        try #require(t.hub as? SQLiteHubStore).pool.write { db in
            try db.execute(
                sql: """
                    UPDATE leaves SET v = CASE t WHEN 1 THEN 0 WHEN 2 THEN 1 ELSE v END,
                      t = CASE t WHEN 1 THEN 1 WHEN 2 THEN 1 WHEN 3 THEN 2 WHEN 4 THEN 3 WHEN 5 THEN 4 WHEN 6 THEN 5
                        WHEN 7 THEN 6 ELSE t END
                    """)
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v3-value-tags'")
        }
        let reopened = try SQLiteHubStore(path: dir.file("hub.sqlite"))
        let after = try #require(try reopened.record(rid))
        #expect(after.leaves == before.leaves)
        #expect(after.winners["members"] == .int(4) && after.winners[deletedField] == .bool(true))
    }
}
