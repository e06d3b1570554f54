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

    /// Two hub processes handed the same CSV at once import it once: the ledger
    /// is checked under the stream lock, inside the importing transaction.
    /// "imported N", or the refusal's code.
    static func importOutcome(_ s: PostgresHubStore, form: FormDefinition, rows: [[String: Value]], digest: [UInt8])
        async throws -> String
    {
        try await Task.detached {
            do {
                let ids = try s.importRecords(
                    form: form, commune: Fixture.commune, rows: rows, digest: digest, by: "lan", again: false)
                return "imported \(ids.count)"
            } catch let e as CSVImportError {
                return e.code.rawValue
            }
        }.value
    }

    @Test func twoStoresImportingTheSameFileAtOnceImportItOnce() async throws {
        let dir = try TempDir("pg-csv")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, .postgres)
        let pg = try #require(t.hub as? PostgresHubStore)
        let other = try PostgresHubStore(url: try #require(Self.url(of: pg)))
        let form = try Fixture.form
        let rows = Fixture.rows(40, seed: 9)
        let before = try pg.totals()["records"] ?? 0
        for round in 0..<4 {
            let digest = [UInt8](repeating: UInt8(round), count: 32)
            async let x = Self.importOutcome(pg, form: form, rows: rows, digest: digest)
            async let y = Self.importOutcome(other, form: form, rows: rows, digest: digest)
            let results = try await [x, y].sorted()
            #expect(results == ["already_imported", "imported 40"], "round \(round)")
        }
        #expect(try other.totals()["records"] == before + 4 * 40)
        // --again imports it anyway.
        let again = try pg.importRecords(
            form: form, commune: Fixture.commune, rows: rows, digest: [UInt8](repeating: 0, count: 32), by: "lan",
            again: true)
        #expect(again.count == 40)
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
