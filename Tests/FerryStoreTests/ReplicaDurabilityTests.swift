import FerryCore
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import GRDB
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Power cuts: a real `ferry` process writing the replica is killed with
/// SIGKILL at several points; the replica always opens, passes SQLite's
/// integrity check, keeps every record it held, and holds an import either
/// whole or not at all.
struct ReplicaDurabilityTests {
    @Test(.timeLimit(.minutes(2)))
    func aReplicaKilledMidImportOpensWithEveryRecordAndNoHalfImport() async throws {
        let ferry = try FerryBinary.path()
        let dir = try TempDir("durability")
        defer { dir.remove() }
        let agentDir = dir.file("agent")
        try FileManager.default.createDirectory(atPath: agentDir, withIntermediateDirectories: true)
        // An agent directory as enrollment leaves it (the import needs no hub).
        let config = """
            {"hubURL": "http://127.0.0.1:9", "agentID": "a-24781-durable0", "commune": "24781",
             "hubSignPublicKey": "00", "hubKxPublicKey": "00", "syncIntervalSeconds": 30, "maxChangeSetBytes": 524288}
            """
        try config.write(toFile: agentDir + "/agent.json", atomically: true, encoding: .utf8)
        let origin = OriginID("a-24781-durable0")
        var store = try Fixture.agentStore(agentDir + "/replica.sqlite", origin: origin.rawValue)
        try store.createMany(form: try Fixture.form, commune: Fixture.commune, rows: Fixture.rows(300, seed: 20))
        var held = try store.fullState()

        let batch = 3000
        var gen = SampleLandRecords(seed: 21)
        try gen.csv(count: batch).write(toFile: dir.file("big.csv"), atomically: true, encoding: .utf8)

        var interrupted = 0
        for delay in [0.12, 0.3, 0.5, 0.8, 1.2] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: ferry)
            p.arguments = ["records", "import", dir.file("big.csv"), "--dir", agentDir]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            try await Task.sleep(nanoseconds: UInt64(delay * 1e9))
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            let deadline = Date().addingTimeInterval(30)
            while p.isRunning && Date() < deadline { try await Task.sleep(nanoseconds: 10_000_000) }
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                Issue.record("the import did not stop after SIGKILL")
                return
            }
            p.waitUntilExit()
            if p.terminationReason == .uncaughtSignal { interrupted += 1 }

            // What a restarted agent sees.
            store = try AgentStore(path: agentDir + "/replica.sqlite", origin: origin)
            let integrity = try await store.pool.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
            #expect(integrity == ["ok"], "after a kill at \(delay) s")
            let now = try store.fullState()
            for (id, fields) in held where now[id] != fields {
                Issue.record("record \(id) changed or vanished after a kill at \(delay) s")
                break
            }
            let added = now.count - held.count
            #expect(
                added == 0 || added == batch,
                "an import is all or nothing; \(added) of \(batch) rows after a kill at \(delay) s")
            let c = try store.counts()
            #expect(c.pendingWrites == now.values.reduce(0) { $0 + $1.count }, "the outbox holds every unsent write")
            held = now
        }
        #expect(interrupted > 0, "at least one import must have been killed while it ran")
        #expect(held.count >= 300)
    }
}
