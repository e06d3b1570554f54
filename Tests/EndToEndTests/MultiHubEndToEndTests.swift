import FerryAgent
import FerryCore
import FerryCrypto
import FerryPostgres
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// Several `ferry hub serve` processes in front of one PostgreSQL database
/// (issue 10): the same agent uploading to two hubs at once, agents syncing
/// through either, one hub SIGKILLed in the middle of an ingest while the
/// other serves, and an agent failing over and back. Checked against the
/// database: each change set applied once, per-origin sequences contiguous,
/// stream positions gap-free, every replica equal to the hub.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct MultiHubEndToEndTests {
    static let commune = "24781"

    /// Two hub directories sharing keys, operator token and database; both serving.
    static func twoHubs(_ sb: Sandbox) async throws -> (url: String, a: Sandbox.Hub, b: Sandbox.Hub) {
        let url = try PostgresTestServer.shared().makeDatabase("e2e")
        let dirA = sb.path("hubA")
        let init_ = try await sb.ok(["hub", "init", "--dir", dirA, "--store", url])
        #expect(init_.contains("store:"))
        // The second process: the same keys and token, its own directory (hub.lock, hub.url).
        let dirB = sb.path("hubB")
        try FileManager.default.createDirectory(
            atPath: dirB, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for f in ["hub.key", "operator.token", "hub.store"] {
            try FileManager.default.copyItem(atPath: dirA + "/" + f, toPath: dirB + "/" + f)
        }
        let a = try await sb.serveHub(dir: dirA, name: "hubA")
        let b = try await sb.serveHub(dir: dirB, name: "hubB")
        return (url, a, b)
    }

    /// Seals the agent's next change set as its sync engine does (or the one in flight).
    static func freeze(_ dir: String) throws -> (AgentStore, InFlight)? {
        let home = AgentHome(directory: dir)
        let store = try home.store()
        let config = try home.config()
        let identity = try home.identity()
        let hubKX = try home.hubKeys().kx
        let keys = try identity.kx.clientSessionKeys(server: hubKX)
        let f = try store.freeze(maxWrites: 100_000) { body, ctx in
            let header = ChangeSetHeader(
                id: randomBytes(16), origin: store.origin, seqFrom: ctx.seqFrom, seqTo: ctx.seqTo, ack: ctx.hubCursor,
                senderKeyID: identity.signing.publicKey.id, recipientKeyID: hubKX.id, createdHLC: ctx.now,
                compression: .zstd, commune: config.commune)
            let s = try Envelope.seal(header: header, body: body, signer: identity.signing, key: keys.transmit)
            return (s.header.id, s.envelope)
        }
        return f.map { (store, $0) }
    }

    struct Ack: Decodable {
        var status: String
        var cursor: UInt64
    }

    /// POSTs an envelope to a hub; the acknowledgement, or nil with the HTTP status.
    static func upload(_ envelope: [UInt8], to hub: String) async throws -> (Int, Ack?) {
        var req = URLRequest(url: try #require(URL(string: hub + "/v1/changesets")))
        req.httpMethod = "POST"
        req.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        req.httpBody = Data(envelope)
        req.timeoutInterval = 60
        let (data, resp) = try await URLSession.shared.data(for: req)
        let status = (resp as? HTTPURLResponse)?.statusCode ?? 0
        return (status, status == 200 ? try? JSONDecoder().decode(Ack.self, from: data) : nil)
    }

    /// Adds `n` sample land records to an agent's replica, as `ferry records add` would.
    static func addRecords(_ dir: String, _ n: Int, seed: UInt64) throws {
        let (store, config) = try agentStore(dir)
        var gen = SampleLandRecords(seed: seed)
        _ = try store.createMany(form: try Seed.form, commune: config.commune, rows: (0..<n).map { _ in gen.next() })
    }

    /// Rows of `psql -At` on the test database.
    static func psql(_ url: String, _ sql: String) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["psql", url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw HarnessError("psql failed on: \(sql)") }
        return String(decoding: d, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// The database's invariants: each origin's change sets tile 1…applied_seq
    /// with no gap or overlap; stream positions are exactly 1…head, once each
    /// (the writes here only add fields, so no leaf was superseded).
    static func checkDatabase(_ url: String) throws {
        var next: [String: UInt64] = [:]
        for row in try psql(url, "SELECT origin, seq_from, seq_to FROM changesets ORDER BY origin, seq_from") {
            let c = row.split(separator: "|").map(String.init)
            guard c.count == 3, let from = UInt64(c[1]), let to = UInt64(c[2]) else { continue }
            let want = next[c[0], default: 1]
            #expect(from == want, "origin \(c[0]): change set \(from)…\(to) after \(want - 1)")
            next[c[0]] = to + 1
        }
        for row in try psql(url, "SELECT id, applied_seq FROM agents") {
            let c = row.split(separator: "|").map(String.init)
            guard c.count == 2, let applied = UInt64(c[1]) else { continue }
            #expect(next[c[0], default: 1] - 1 == applied, "agent \(c[0]) applied_seq \(applied) vs its change sets")
        }
        let s = try psql(
            url,
            "SELECT count(*), count(DISTINCT seq), coalesce(max(seq), 0), (SELECT head FROM stream) FROM (SELECT seq FROM leaves UNION ALL SELECT seq FROM catalog) x"
        ).first?.split(separator: "|").map { Int($0) ?? -1 }
        #expect(s?.count == 4 && s?[0] == s?[1] && s?[1] == s?[2] && s?[2] == s?[3], "stream positions \(s ?? [])")
    }

    /// Every record of the commune, field by field, agent vs hub database.
    static func sameAsHub(_ dir: String, _ hub: PostgresHubStore) throws -> Bool {
        let (store, _) = try agentStore(dir)
        return try store.fullState() == hub.winners(commune: commune)
    }

    @Test func twoHubsOnOneDatabaseApplyEachChangeSetOnceAndKeepTheStreamInOrder() async throws {
        let sb = try Sandbox("multihub")
        defer { sb.close() }
        let (url, hubA, hubB) = try await Self.twoHubs(sb)
        let a1 = try await sb.enrollAgent("a1", hub: hubA, commune: Self.commune)
        let a2 = try await sb.enrollAgent("a2", hub: hubB, commune: Self.commune)
        let a3 = try await sb.enrollAgent("a3", hub: hubA, commune: Self.commune)
        let hub = try PostgresHubStore(url: url)

        // Other agents keep uploading and downloading through both hubs meanwhile.
        try Self.addRecords(a2, 200, seed: 2)
        try Self.addRecords(a3, 200, seed: 3)
        let r2 = try sb.start(["agent", "run", "--dir", a2, "--interval", "0.2"], name: "a2")
        let r3 = try sb.start(["agent", "run", "--dir", a3, "--interval", "0.2"], name: "a3")

        // The same agent's change set sent to both hubs at once: applied once, a duplicate at the other.
        var rounds = 0
        for round in 0..<6 {
            try Self.addRecords(a1, 40, seed: 100 + UInt64(round))
            guard let (store, f) = try Self.freeze(a1) else { break }
            async let x = Self.upload(f.envelope, to: hubA.url)
            async let y = Self.upload(f.envelope, to: hubB.url)
            let (ra, rb) = try await (x, y)
            #expect(ra.0 == 200 && rb.0 == 200, "statuses \(ra.0) \(rb.0)")
            let statuses = [ra.1?.status ?? "-", rb.1?.status ?? "-"].sorted()
            #expect(statuses == ["applied", "duplicate"], "round \(round): \(statuses)")
            #expect(ra.1?.cursor == f.seqTo && rb.1?.cursor == f.seqTo)
            try store.acknowledge(upTo: f.seqTo)
            rounds += 1
        }
        #expect(rounds == 6)
        let a1Count = try #require(try hub.agent(id: try AgentHome(directory: a1).config().agentID))
        #expect(a1Count.appliedSeq == 6 * 40 * 12, "every field write of a1 once")

        // a1 learns hub B's address too (`--add` keeps A first); everyone converges.
        try await sb.ok(["agent", "set-hub", "--add", hubB.url, hubA.url, "--dir", a1])
        #expect(try AgentHome(directory: a1).config().hubURLs == [hubA.url, hubB.url])
        try await sb.ok(["agent", "sync", "--dir", a1], timeout: 120)
        let converged = try await waitUntil(timeout: 120, interval: 0.5) {
            try [a2, a3].allSatisfy { try agentStore($0).0.counts().pendingWrites == 0 }
                && (try hub.totals()["records"] ?? 0) == 640
                && (try [a2, a3].allSatisfy { try Self.sameAsHub($0, hub) })
        }
        #expect(converged, "agents did not converge: \((try? hub.totals()) ?? [:]); \(sb.log("a2").suffix(800))")
        try await sb.ok(["agent", "sync", "--dir", a1], timeout: 120)
        #expect(try Self.sameAsHub(a1, hub))
        #expect(try hub.totals()["leaves"] == 640 * 12)
        try Self.checkDatabase(url)
        sb.stop(r2)
        sb.stop(r3)
    }

    @Test func aHubKilledMidIngestLosesNothingWhileTheOtherServesAndTheAgentFailsOverAndBack() async throws {
        let sb = try Sandbox("multihub-kill")
        defer { sb.close() }
        let (url, hubA, hubB) = try await Self.twoHubs(sb)
        let a1 = try await sb.enrollAgent("a1", hub: hubA, commune: Self.commune)
        let a2 = try await sb.enrollAgent("a2", hub: hubB, commune: Self.commune)
        let hub = try PostgresHubStore(url: url)
        let a1ID = try AgentHome(directory: a1).config().agentID

        // a1 knows both addresses (A first) and checks every second, once on B, whether A is back.
        try await sb.ok(["agent", "set-hub", hubA.url, hubB.url, "--dir", a1])
        let home1 = AgentHome(directory: a1)
        var c1 = try home1.config()
        #expect(c1.hubURLs == [hubA.url, hubB.url])
        var link = c1.link ?? LinkSettings()
        link.failbackSeconds = 1
        c1.link = link
        try home1.save(c1)

        // A backlog big enough that uploads take a while: kill hub A while one is in its transaction.
        try Self.addRecords(a1, 3000, seed: 11)
        let r1 = try sb.start(["agent", "run", "--dir", a1, "--interval", "0.2"], name: "a1")
        let r2 = try sb.start(["agent", "run", "--dir", a2, "--interval", "0.2"], name: "a2")
        let inIngest = try await waitUntil(timeout: 60, interval: 0.005) {
            // A transaction of hub A's ingest open in the database right now.
            let n = try Self.psql(
                url,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL AND (query ILIKE 'INSERT INTO leaves%' OR state = 'idle in transaction')"
            ).first
            return (Int(n ?? "0") ?? 0) > 0
        }
        let appliedBefore = try hub.agent(id: a1ID)?.appliedSeq ?? 0
        sb.kill9(hubA.process)
        print("hub A killed (caught in a transaction: \(inIngest)); a1 applied \(appliedBefore) so far")

        // Hub B keeps serving meanwhile: a2 uploads and downloads through it.
        try Self.addRecords(a2, 50, seed: 12)
        let bServes = try await waitUntil(timeout: 60, interval: 0.3) {
            try agentStore(a2).0.counts().pendingWrites == 0
        }
        #expect(bServes, "hub B stopped serving: \(sb.log("hubB").suffix(800))")

        // The agent fails over to hub B (same keys, same database) by itself, from its list.
        // Done when nothing waits and nothing is in flight: the hub applied every write.
        let drained = try await waitUntil(timeout: 180, interval: 0.5) {
            let s = try agentStore(a1).0
            return try s.counts().pendingWrites == 0 && s.inFlight() == nil
        }
        #expect(drained, "a1 did not finish through hub B: \(sb.log("a1").suffix(1500))")
        #expect(sb.log("a1").contains("trying its next address"), "a1 never failed over: \(sb.log("a1").suffix(800))")
        #expect(try agentStore(a1).0.meta("hub_active_url") == hubB.url)
        let applied = try hub.agent(id: a1ID)?.appliedSeq ?? 0
        #expect(applied == 3000 * 12, "a1 applied \(applied)")

        // ...and back to hub A restarted at its address, with no command run on the agent.
        let portA = try #require(URLComponents(string: hubA.url)?.port)
        let hubA2 = try await sb.serveHub(dir: hubA.dir, port: portA, name: "hubA2")
        #expect(hubA2.url == hubA.url)
        let returned = try await waitUntil(timeout: 60, interval: 0.3) {
            try sb.log("a1").contains("back to it") && agentStore(a1).0.meta("hub_active_url") == nil
        }
        #expect(returned, "a1 did not return to hub A: \(sb.log("a1").suffix(1500))")
        // Hub B goes away: a1's new writes reach the database through hub A.
        sb.kill9(hubB.process)
        try Self.addRecords(a1, 30, seed: 13)
        let back = try await waitUntil(timeout: 120, interval: 0.5) {
            try agentStore(a1).0.counts().pendingWrites == 0 && (try hub.totals()["records"] ?? 0) == 3080
                && (try Self.sameAsHub(a1, hub))
        }
        #expect(back, "after failing back: \((try? hub.totals()) ?? [:]); \(sb.log("a1").suffix(1500))")
        #expect(try hub.totals()["leaves"] == 3080 * 12, "every write exactly once")
        try Self.checkDatabase(url)
        sb.stop(r1)
        sb.stop(r2)
    }
}
