import FerryCore
import FerryHub
import FerryPostgres
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import Testing

/// What only the PostgreSQL store has: its URL handling, versioned
/// migrations shared by hub processes, and serialisation in the database
/// between two stores (two hub processes) on one database.
struct PostgresStoreTests {
    @Test func theURLsPasswordIsNeverShownAndABadURLIsRefusedWithWhatIsWrong() throws {
        let u = try PostgresURL("postgres://ferry:s3cret%21@db.example:6543/hub")
        #expect(u.password == "s3cret!" && u.port == 6543 && u.database == "hub" && u.user == "ferry")
        #expect(!u.description.contains("s3cret") && u.description.contains("***"))
        for bad in ["http://x/y", "postgres://ferry@db.example", "postgres:///hub", "postgres://db.example/hub"] {
            #expect(throws: HubError.self, "\(bad)") { try PostgresURL(bad) }
        }
        #expect(PostgresURL.isPostgres("postgresql://a@b/c") && !PostgresURL.isPostgres("/var/lib/ferry"))
    }

    @Test func hubProcessesStartingTogetherMigrateOnceAndANewerSchemaIsRefused() async throws {
        let url = try PostgresTestServer.shared().makeDatabase("mig")
        // Four stores opening one new database at once: one migrates, all work.
        try await withThrowingTaskGroup(of: Void.self) { g in
            for _ in 0..<4 { g.addTask { _ = try PostgresHubStore(url: url).streamSeq() } }
            try await g.waitForAll()
        }
        let store = try PostgresHubStore(url: url)
        #expect(try store.totals()["stream_seq"] == 0)
        let (status, out, _) = PostgresTestServer.run(
            ["/usr/bin/env", "psql", url, "-Atc", "SELECT count(*), max(version) FROM ferry_schema"], timeout: 30)
        #expect(status == 0 && out.trimmingCharacters(in: .whitespacesAndNewlines) == "2|11")
        _ = PostgresTestServer.run(
            ["/usr/bin/env", "psql", url, "-qc", "INSERT INTO ferry_schema(version) VALUES (99)"], timeout: 30)
        #expect {
            _ = try PostgresHubStore(url: url)
        } throws: { e in
            (e as? HubError)?.message.contains("newer than this ferry knows") == true
        }
    }

    @Test func aServerThatIsNotThereIsAStoreFaultNamingTheURLWithoutItsPassword() throws {
        let dead = "postgres://ferry:hunter2@127.0.0.1:1/hub"
        #expect {
            _ = try PostgresHubStore(url: dead)
        } throws: { e in
            let d = "\(e)"
            return (e as? StoreFault)?.code == .databaseUnavailable && !d.contains("hunter2")
        }
    }

    @Test func twoStoresOnOneDatabaseApplyTheSameChangeSetOnceAndInterleaveOriginsGapFree() async throws {
        let dir = try TempDir("pg-two")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, .postgres)
        let pg = try #require(t.hub as? PostgresHubStore)
        // The second "hub process": its own connections to the same database.
        let url = try #require(Self.url(of: pg))
        let other = try PostgresHubStore(url: url)
        var expectedLeaves = 0
        for round in 0..<5 {
            try t.agent.createMany(
                form: try Fixture.form, commune: Fixture.commune, rows: Fixture.rows(30, seed: UInt64(round)))
            expectedLeaves += 30 * 12
            let f = try #require(try t.freeze())
            let opened = try t.open(f.envelope)
            let id = t.info.id
            async let x = Task.detached { try pg.ingest(opened, from: id).status }.value
            async let y = Task.detached { try other.ingest(opened, from: id).status }.value
            let statuses = try await [x, y].sorted()
            #expect(statuses == ["applied", "duplicate"], "round \(round)")
            try t.agent.acknowledge(upTo: f.seqTo)
        }
        let totals = try other.totals()
        #expect(totals["leaves"] == expectedLeaves && totals["changesets"] == 5)
        // Positions 1…head, each once: the catalog's and the leaves'.
        let catalog = try other.catalogCount()
        #expect(totals["stream_seq"] == expectedLeaves + catalog)
        #expect(try pg.winners(commune: Fixture.commune) == t.agent.fullState())
    }

    static func url(of store: PostgresHubStore) -> String? {
        // The test server trusts local connections: the location (password masked) is the URL.
        store.location.contains("***") ? nil : store.location
    }
}

extension PostgresHubStore {
    func catalogCount() throws -> Int {
        try catalogJSON(.form).count + catalogJSON(.commune).count + catalogJSON(.campaign).count
    }
}
