import FerryCore
import FerryTesting
import Foundation
import GRDB
import Testing

@testable import FerryStore

/// The two operator logs of 0.2 development (`operator_log` from requests,
/// `operator_actions` from the form lifecycle) become one; no old row is lost.
struct OperatorLogMigrationTests {
    @Test func oldLifecycleRowsAreCarriedIntoTheOneOperatorLog() throws {
        let dir = try TempDir("oplog")
        defer { dir.remove() }
        let path = dir.file("hub.sqlite")
        // A store as the previous build left it: both tables, rows in each.
        do {
            let pool = try DatabasePool(path: path)
            try SQLiteHubStore.migrator.migrate(pool, upTo: "v4-operator-lifecycle")
            try pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO operator_log(at_ms, name, action, record, detail)
                            VALUES (10, 'lan', 'conflicts/resolve', 'r1', 'conflicts/resolve field=status');
                        INSERT INTO operator_actions(at_ms, by, action, target, detail)
                            VALUES (5, 'admin', 'form.publish', 'census@2', '');
                        INSERT INTO operator_actions(at_ms, by, action, target, detail)
                            VALUES (20, 'minh', 'quarantine.released', '#7', 'clerk re-enters it');
                        """)
            }
        }
        let store = try SQLiteHubStore(path: path, wall: ManualClock())
        let all = try store.operatorActions(record: nil, limit: 10)
        #expect(all.count == 3)
        #expect(all.map(\.action).sorted() == ["conflicts/resolve", "form.publish", "quarantine.released"])
        let publish = try #require(all.first { $0.action == "form.publish" })
        #expect(publish.user == "admin" && publish.target == "census@2" && publish.atMs == 5 && publish.record == nil)
        let release = try #require(all.first { $0.action == "quarantine.released" })
        #expect(release.user == "minh" && release.target == "#7" && release.detail == "clerk re-enters it")
        #expect(try store.operatorActions(record: "r1", limit: 10).map(\.user) == ["lan"])
        // The old table is gone, so nothing can write the second shape again.
        let tables = try store.pool.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        #expect(tables.contains("operator_log") && !tables.contains("operator_actions"))

        // A lifecycle write lands in the same log, with its target and the record it closed.
        try store.noteAction(by: "lan", action: "campaign.publish", target: "census-2026", detail: "")
        #expect(try store.operatorActions(record: nil, limit: 1).first?.target == "census-2026")
    }
}
