import FerryAgent
import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Real `ferry` processes over real HTTP on 127.0.0.1: a commune works offline,
/// links and processes die mid-transfer, and every acknowledged write reaches
/// the hub exactly once.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SyncEndToEndTests {
    static let commune = "24781"

    @Test func offlineWritesReachTheHubAtTheNextSyncAndStatusSaysInSync() async throws {
        let sb = try Sandbox("offline")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)

        // Offline: the agent is not running; every front end writes to the replica.
        let csv = try sampleCSV(sb, name: "a.csv", seed: 11, count: 25)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        let added = try await sb.ok([
            "records", "add", "owner_name=Nguyễn Thị Thu Hà", "owner_id=068123456789", "status=draft", "members=3",
            "--dir", a,
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
        let addedID = try #require(RecordID(added), "`records add` printed \(added)")
        try await sb.ok(["records", "edit", added, "status=submitted", "--dir", a])
        try await sb.ok(["records", "edit", added, "status=verified", "members=4", "--dir", a])
        let (store, _) = try agentStore(a)
        let imported = try store.records(limit: 100).map(\.id).filter { $0 != addedID }
        try #require(imported.count == 25)
        try await sb.ok(["records", "delete", imported[0].description, "--dir", a])
        try await sb.ok(["records", "edit", imported[1].description, "status=needs_fix", "--dir", a])
        // And the hub's operator creates a record for this commune meanwhile.
        let atHub = try await sb.ok([
            "records", "add", "owner_name=Trần Văn Long An", "owner_id=068987654321", "status=submitted", "--at-hub",
            "--hub-dir",
            hub.dir, "--commune", Self.commune,
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
        let atHubID = try #require(RecordID(atHub), "`records add --at-hub` printed \(atHub)")

        let hubStore = try hubStore(hub.dir)
        #expect(try hubStore.winners(commune: Self.commune).count == 1, "nothing may leave an offline agent")
        let beforeRun = try await sb.run(["status", "--dir", a, "--json"])
        #expect(beforeRun.status == 1, "changes waiting: exit 1, got \(beforeRun.status)")
        let before = try decodeJSON(StatusJSON.self, beforeRun.out)
        #expect(!before.inSync)
        #expect(before.pendingWrites > 0)

        let sync = try decodeJSON(SyncJSON.self, try await sb.ok(["agent", "sync", "--dir", a, "--json"]))
        #expect(sync.complete)
        #expect(sync.uploadedWrites > 0 && sync.uploadedChangeSets >= 1)
        #expect(sync.duplicates == 0)
        #expect(sync.downloadedWrites >= 3, "the hub's record reaches the agent")

        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
        // Every imported row arrived as written (the deleted one is kept as deleted).
        let hubState = try hubStore.winners(commune: Self.commune)
        let importedAtHub = hubState.filter { $0.key != addedID && $0.key != atHubID }
        var expected = csv.rows
        if let i = expected.firstIndex(where: { $0["owner_id"] == importedAtHub[imported[1]]?["owner_id"] }) {
            expected[i]["status"] = .string("needs_fix")
        }
        #expect(importedAtHub.values.map(canonical).sorted() == expected.map(canonical).sorted())
        #expect(hubState[imported[0]]?[deletedField] == .bool(true))
        #expect(try hubStore.record(imported[0])?.isDeleted == true)
        // Several offline edits of one field arrive as their last value.
        #expect(hubState[addedID]?["status"] == .string("verified"))
        #expect(hubState[addedID]?["members"] == .int(4))
        #expect(hubState[addedID]?["owner_name"] == .string("Nguyễn Thị Thu Hà"))
        #expect(try store.record(atHubID)?.values["owner_name"] == .string("Trần Văn Long An"))
        #expect(try hubStore.totals()["conflicts"] == 0)

        let after = try decodeJSON(StatusJSON.self, try await sb.ok(["status", "--dir", a, "--json"]))
        #expect(after.inSync, "status: \(after.summary)")
        #expect(after.pendingWrites == 0 && after.inFlightWrites == 0)
        #expect(after.records == 26)
        #expect(after.summary.contains("IN SYNC"))
    }

    @Test func theHubKilledMidUploadAndRestartedOnTheSamePortLosesAndDuplicatesNothing() async throws {
        let sb = try Sandbox("hubkill")
        defer { sb.close() }
        let port = try freePort()
        let hubDir = try await sb.initHub()
        var hub = try await sb.serveHub(dir: hubDir, port: port)
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let csv = try sampleCSV(sb, name: "big.csv", seed: 21, count: 2000)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        let (store, config) = try agentStore(a)
        let hubStore = try hubStore(hubDir)

        let agent = try sb.start(["agent", "run", "--dir", a, "--interval", "1"], name: "agent")
        // Kill the hub once it has taken part of the backlog and more is coming.
        let midUpload = try await waitUntil(timeout: 60, interval: 0.05) {
            let c = try store.counts()
            return try !hubChangeSets(hubStore, origin: config.agentID).isEmpty
                && c.pendingWrites + c.inFlightWrites > 0
        }
        try #require(
            midUpload, "the upload never reached a state with part of the backlog at the hub: \(sb.log("agent"))")
        sb.kill9(hub.process)
        let atKill = try hubChangeSets(hubStore, origin: config.agentID)
        #expect(!atKill.isEmpty)

        // The agent notices and keeps its writes.
        let noticed = try await waitUntil(timeout: 20) { (try store.meta("last_error") ?? "").contains("cannot reach") }
        #expect(noticed, "the agent did not report the hub as unreachable: \(sb.log("agent"))")
        #expect(try store.counts().records == 2000)
        #expect(agent.isRunning)

        hub = try await sb.serveHub(dir: hubDir, port: port, name: "hub2")
        #expect(hub.url == "http://127.0.0.1:\(port)")
        let done = try await waitUntil(timeout: 120, interval: 0.5) { try converged(agentDir: a, hub: hubStore) }
        let state = try compare(agentDir: a, hub: hubStore)
        #expect(done, "no convergence after the hub restarted: \(state); agent log: \(sb.log("agent").suffix(2000))")
        #expect(agent.isRunning, "the agent must survive the hub's death")
        sb.stop(agent)

        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
        let hubRecords = try hubStore.winners(commune: Self.commune)
        #expect(hubRecords.count == 2000)
        #expect(hubRecords.values.map(canonical).sorted() == csv.rows.map(canonical).sorted())
        #expect(try hubStore.totals()["records"] == 2000)
        #expect(try hubStore.totals()["quarantined"] == 0)
        let sets = try hubChangeSets(hubStore, origin: config.agentID)
        #expect(
            Array(sets.prefix(atKill.count)) == atKill, "change sets applied before the kill were kept as they were")
    }

    @Test func anAgentKilledMidSyncAndRestartedLosesAndDuplicatesNothing() async throws {
        let sb = try Sandbox("agentkill")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let csv = try sampleCSV(sb, name: "big.csv", seed: 31, count: 2000)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        let hubStore = try hubStore(hub.dir)
        let config = try AgentHome(directory: a).config()

        var agent = try sb.start(["agent", "run", "--dir", a, "--interval", "1"], name: "agent")
        var killedInFlight = false
        let midUpload = try await waitUntil(timeout: 60, interval: 0.05) {
            let (store, _) = try agentStore(a)
            let c = try store.counts()
            killedInFlight = c.inFlightWrites > 0
            return try !hubChangeSets(hubStore, origin: config.agentID).isEmpty && killedInFlight
        }
        try #require(
            midUpload, "the upload never had a change set in flight after the first was applied: \(sb.log("agent"))")
        sb.kill9(agent)
        #expect(killedInFlight)

        // A power cut: the replica opens and holds every record, field for field.
        let (store, _) = try agentStore(a)
        #expect(try store.counts().records == 2000)
        #expect(try store.fullState().values.map(canonical).sorted() == csv.rows.map(canonical).sorted())
        let integrity = try await store.pool.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        #expect(integrity == ["ok"])

        agent = try sb.start(["agent", "run", "--dir", a, "--interval", "1"], name: "agent2")
        let done = try await waitUntil(timeout: 120, interval: 0.5) { try converged(agentDir: a, hub: hubStore) }
        let state = try compare(agentDir: a, hub: hubStore)
        #expect(done, "no convergence after the agent restarted: \(state); log: \(sb.log("agent2").suffix(2000))")
        sb.stop(agent)

        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
        let hubRecords = try hubStore.winners(commune: Self.commune)
        #expect(hubRecords.count == 2000)
        #expect(hubRecords.values.map(canonical).sorted() == csv.rows.map(canonical).sorted())
        #expect(try hubStore.totals()["records"] == 2000)
    }

    @Test func aChangeSetSentTwiceIsAppliedOnce() async throws {
        let sb = try Sandbox("resend")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let csv = try sampleCSV(sb, name: "a.csv", seed: 41, count: 40)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        let hubStore = try hubStore(hub.dir)
        let home = AgentHome(directory: a)
        let (store, config) = try agentStore(a)

        // Freeze and seal exactly as the agent does; the bytes stay in `inflight`.
        let identity = try home.identity()
        let hubKeys = try home.hubKeys()
        let keys = try identity.kx.clientSessionKeys(server: hubKeys.kx)
        let origin = store.origin
        let sealer = { (body: ChangeSetBody, ctx: FreezeContext) throws -> (id: [UInt8], envelope: [UInt8]) in
            let header = ChangeSetHeader(
                id: randomBytes(16), origin: origin, seqFrom: ctx.seqFrom, seqTo: ctx.seqTo, ack: ctx.hubCursor,
                senderKeyID: identity.signing.publicKey.id, recipientKeyID: hubKeys.kx.id, createdHLC: ctx.now,
                commune: config.commune)
            let s = try Envelope.seal(header: header, body: body, signer: identity.signing, key: keys.transmit)
            return (s.header.id, s.envelope)
        }
        let frozen = try #require(try store.freeze(maxWrites: 100_000, seal: sealer))
        #expect(frozen.seqFrom == 1 && frozen.seqTo == 40 * 12)
        let stored = try #require(try store.inFlight())
        #expect(stored.envelope == frozen.envelope, "the sealed bytes are kept for re-sending")

        struct Ack: Decodable { var status: String; var cursor: UInt64; var merged: Int }
        let (first, second) = try await withHubClient(hub.url) { client in
            let first = try await client.send(.POST, "/v1/changesets", body: stored.envelope)
            let afterFirst = try hubStore.totals()
            let second = try await client.send(.POST, "/v1/changesets", body: stored.envelope)
            #expect(try hubStore.totals() == afterFirst, "a re-sent change set changes nothing")
            return (first, second)
        }
        #expect(first.status == 200)
        #expect(second.status == 200)
        let ack1 = try HubJSON.decoder.decode(Ack.self, from: Data(first.body))
        let ack2 = try HubJSON.decoder.decode(Ack.self, from: Data(second.body))
        #expect(ack1.status == "applied" && ack1.cursor == frozen.seqTo && ack1.merged == 480)
        #expect(ack2.status == "duplicate" && ack2.cursor == frozen.seqTo && ack2.merged == 0)
        let totals = try hubStore.totals()
        #expect(totals["records"] == 40)
        #expect(totals["changesets"] == 1)
        #expect(try hubStore.agent(id: config.agentID)?.appliedSeq == frozen.seqTo)

        // The agent never saw an acknowledgement: it sends the same bytes a third
        // time, is told "duplicate", and releases them.
        let sync = try decodeJSON(SyncJSON.self, try await sb.ok(["agent", "sync", "--dir", a, "--json"]))
        #expect(sync.duplicates == 1)
        #expect(sync.complete)
        #expect(try store.inFlight() == nil)
        #expect(try hubStore.totals() == totals)
        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
        #expect(
            try hubStore.winners(commune: Self.commune).values.map(canonical).sorted()
                == csv.rows.map(canonical).sorted())
    }

    @Test func theDemoConverges() async throws {
        let sb = try Sandbox("demo")
        defer { sb.close() }
        let r = try await sb.run(["demo"], timeout: 90)
        #expect(r.status == 0, "ferry demo failed: \(r.text.suffix(3000))")
        #expect(r.out.contains("CONVERGED: all three replicas"), "\(r.out.suffix(3000))")
        #expect(!r.out.contains("NOT CONVERGED"))
        // Step 9: each PC shows as many conflicts on its commune's records as the hub holds (SPEC §9.13).
        let shown = r.out.split(separator: "\n").filter { $0.contains("open conflict(s) on commune") }
        #expect(shown.count == 3, "\(r.out.suffix(1500))")
        for line in shown {
            let mine = line.split(separator: ": ").dropFirst().first?.split(separator: " ").first
            let hub = line.components(separatedBy: "(hub: ").dropFirst().first?.prefix { $0.isNumber }
            #expect(mine.map(String.init) == hub.map(String.init), "\(line)")
        }
        #expect(shown.contains { !$0.contains(": 0 open") }, "the demo makes conflicts: \(shown)")
    }
}
