import FerryCore
import FerryStore
import Foundation
import GRDB
import Testing

/// SQLite's failures become typed storage faults in one place (SPEC §9.5).
struct StoreFaultTests {
    @Test func sqliteResultCodesMapToTypedFaultsWithAMessageToActOn() throws {
        let dir = try TempDir("faults")
        defer { dir.remove() }
        let path = dir.file("x.sqlite")
        let cases: [(ResultCode, StoreFault.Code, Int)] = [
            (.SQLITE_FULL, .diskFull, 507), (.SQLITE_READONLY, .readOnly, 503), (.SQLITE_IOERR, .ioError, 503),
            (.SQLITE_CORRUPT, .corrupt, 500), (.SQLITE_NOTADB, .corrupt, 500),
        ]
        for (sqlite, code, status) in cases {
            let f = try #require(StoreFault.from(DatabaseError(resultCode: sqlite, message: "x"), path: path))
            #expect(f.code == code && f.httpStatus == status, "\(sqlite) → \(f.code)")
            #expect(f.message.contains(path))
            #expect(!f.message.contains("SQLite error"))
        }
        #expect(StoreFault.from(DatabaseError(resultCode: .SQLITE_CONSTRAINT), path: path) == nil)
        #expect(StoreFault.from(StoreError("other"), path: path) == nil)
        #expect(StoreFault(.diskFull, path: path).message.contains("free some space"))
        #expect(StoreFault(.corrupt, path: path).message.contains("backup"))
    }

    @Test func aTruncatedOrGarbledFileIsFoundByQuickCheck() throws {
        let dir = try TempDir("quickcheck")
        defer { dir.remove() }
        let path = dir.file("replica.sqlite")
        do {
            let store = try Fixture.agentStore(path)
            try store.createMany(form: try Fixture.form, commune: Fixture.commune, rows: Fixture.rows(300, seed: 1))
            try store.verifyIntegrity()
        }
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let fh = try #require(FileHandle(forWritingAtPath: path))
        try fh.seek(toOffset: UInt64(size / 2))
        try fh.write(contentsOf: Data(repeating: 0xA5, count: 8192))
        try fh.close()
        let e = #expect(throws: StoreFault.self) {
            let store = try AgentStore(path: path, origin: OriginID("a"))
            try store.verifyIntegrity()
        }
        #expect(e?.code == .corrupt)
        #expect(e?.message.contains("backup") == true)

        try Data("this is not a database, just text that is long enough to look like a header".utf8).write(
            to: URL(fileURLWithPath: dir.file("text.sqlite")))
        let notADB = #expect(throws: StoreFault.self) {
            _ = try AgentStore(path: dir.file("text.sqlite"), origin: OriginID("a"))
        }
        #expect(notADB?.code == .corrupt)
    }

    @Test func newDatabasesAndTheirWALArePrivate() throws {
        let dir = try TempDir("private")
        defer { dir.remove() }
        let store = try Fixture.agentStore(dir.file("r.sqlite"))
        _ = try store.counts()
        for f in FilePrivacy.databaseFiles(dir.file("r.sqlite")) {
            #expect(Platform.mode(f) == 0o600, "\(f): \(String(Platform.mode(f) ?? 0, radix: 8))")
        }
        #expect(FilePrivacy.warnings(FilePrivacy.databaseFiles(dir.file("r.sqlite"))).isEmpty)
        Platform.setMode(dir.file("r.sqlite"), 0o644)
        #expect(FilePrivacy.warnings([dir.file("r.sqlite")]).first?.contains("chmod 600") == true)
    }
}
