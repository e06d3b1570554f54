import FerryAgent
import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Testing

/// What the hub refuses, over real HTTP: bad enrollment tokens, a revoked
/// agent, forged and tampered change sets. A refusal applies nothing and says why.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct RefusalEndToEndTests {
    static let commune = "24848"

    /// Files an enrollment left in `dir` (none when it failed).
    static func leftovers(_ dir: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    }

    @Test func badTokensAreRefusedWithAClearMessageAndWriteNothing() async throws {
        let sb = try Sandbox("tokens")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let hubStore = try hubStore(hub.dir)
        func token() async throws -> String {
            try await sb.ok(["hub", "token", "--commune", Self.commune, "--hub-dir", hub.dir]).trimmingCharacters(
                in: .whitespacesAndNewlines)
        }
        func parts(_ t: String) -> [String] { t.split(separator: ".").map(String.init) }
        func enroll(_ t: String, _ dir: String) async throws -> CommandResult {
            try await sb.run(["agent", "enroll", hub.url, t, "--dir", sb.path(dir)])
        }

        let malformed = try await enroll("ferry1.24848.not-hex.0011", "bad1")
        #expect(malformed.status != 0)
        #expect(malformed.text.contains("malformed"), "\(malformed.text)")
        #expect(Self.leftovers(sb.path("bad1")).isEmpty)

        var p = parts(try await token())
        p[2] = hex(randomBytes(16))
        let unknown = try await enroll(p.joined(separator: "."), "bad2")
        #expect(unknown.status != 0)
        #expect(unknown.text.contains("not known to this hub"), "\(unknown.text)")
        #expect(Self.leftovers(sb.path("bad2")).isEmpty)

        p = parts(try await token())
        p[3] = hex(randomBytes(8))
        let foreign = try await enroll(p.joined(separator: "."), "bad3")
        #expect(foreign.status != 0)
        #expect(foreign.text.contains("another hub"), "\(foreign.text)")
        #expect(Self.leftovers(sb.path("bad3")).isEmpty)

        p = parts(try await token())
        p[1] = "24781"
        let otherCommune = try await enroll(p.joined(separator: "."), "bad4")
        #expect(otherCommune.status != 0)
        #expect(otherCommune.text.contains("another commune"), "\(otherCommune.text)")
        #expect(Self.leftovers(sb.path("bad4")).isEmpty)

        // Expired: issued with no lifetime (the CLI's minimum is an hour).
        let secret = try hubStore.issueToken(commune: Self.commune, ttlMillis: 0)
        try await Task.sleep(nanoseconds: 20_000_000)
        let fingerprint = try Identity.load(path: hub.dir + "/hub.key").fingerprint
        let stale = EnrollmentToken(commune: Self.commune, secret: secret, hubFingerprint: fingerprint).description
        let expired = try await enroll(stale, "bad5")
        #expect(expired.status != 0)
        #expect(expired.text.contains("expired"), "\(expired.text)")
        #expect(Self.leftovers(sb.path("bad5")).isEmpty)

        // Used: a token enrolls one agent, once.
        let once = try await token()
        let good = try await enroll(once, "good")
        #expect(good.status == 0, "\(good.text)")
        #expect(AgentHome(directory: sb.path("good")).isEnrolled)
        let again = try await enroll(once, "bad6")
        #expect(again.status != 0)
        #expect(again.text.contains("already used"), "\(again.text)")
        #expect(Self.leftovers(sb.path("bad6")).isEmpty)

        #expect(try hubStore.agents().count == 1, "only the good token enrolled an agent")
    }

    @Test func aRevokedAgentsSyncFailsSayingRevokedAndChangesNothing() async throws {
        let sb = try Sandbox("revoked")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let csv = try sampleCSV(sb, name: "a.csv", seed: 51, count: 10)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        try await sb.ok(["agent", "sync", "--dir", a])
        let hubStore = try hubStore(hub.dir)
        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)

        let config = try AgentHome(directory: a).config()
        try await sb.ok(["hub", "revoke", config.agentID, "--hub-dir", hub.dir])
        let agents = try await sb.ok(["hub", "agents", "--json", "--hub-dir", hub.dir])
        #expect(agents.contains("revoked"))

        let before = try hubStore.totals()
        let winners = try hubStore.winners(commune: Self.commune)
        try await sb.ok([
            "records", "add", "owner_name=Lê Hoàng Thảo My", "owner_id=068000000001", "status=draft", "--dir", a,
        ])
        let sync = try await sb.run(["agent", "sync", "--dir", a])
        #expect(sync.status != 0)
        #expect(sync.text.contains("revoked"), "\(sync.text)")
        #expect(try hubStore.totals() == before)
        #expect(try hubStore.winners(commune: Self.commune) == winners)
        let statusRun = try await sb.run(["status", "--dir", a, "--json"])
        #expect(statusRun.status == 2, "a revoked agent needs a person: exit 2, got \(statusRun.status)")
        let status = try decodeJSON(StatusJSON.self, statusRun.out)
        #expect(!status.inSync)
        #expect(status.problem?.contains("revoked") == true, "\(status.summary)")
        // The write stays queued at the agent: a refusal never drops local work.
        let (store, _) = try agentStore(a)
        #expect(try store.counts().records == 11)
    }

    /// A change set by `origin` carrying one new record.
    static func body(origin: OriginID, commune: String, seed: UInt64) -> (ChangeSetBody, RecordID) {
        var gen = SampleLandRecords(seed: seed)
        var rng = SystemRandomNumberGenerator()
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let rid = RecordID.v7(millis: now, using: &rng)
        let id = WriteID(hlc: HLC(millis: now, counter: 0), origin: origin)
        let writes = gen.next().sorted { $0.key < $1.key }.map {
            FieldWrite(record: rid, field: $0.key, id: id, value: $0.value)
        }
        return (
            ChangeSetBody(
                writes: writes, scopes: [rid: RecordScope(formID: "land-record", formVersion: 1, commune: commune)]),
            rid
        )
    }

    static func seal(
        _ body: ChangeSetBody, origin: OriginID, seqFrom: UInt64, commune: String, signer: SigningKeyPair,
        senderKeyID: [UInt8],
        kx: KXKeyPair, hubKX: KXPublicKey
    ) throws -> [UInt8] {
        let header = ChangeSetHeader(
            id: randomBytes(16), origin: origin, seqFrom: seqFrom, seqTo: seqFrom + UInt64(body.writes.count) - 1,
            senderKeyID: senderKeyID, recipientKeyID: hubKX.id, createdHLC: body.writes[0].id.hlc, commune: commune)
        let keys = try kx.clientSessionKeys(server: hubKX)
        return try Envelope.seal(header: header, body: body, signer: signer, key: keys.transmit).envelope
    }

    @Test func forgedAndTamperedChangeSetsAreRefusedAndApplyNothing() async throws {
        let sb = try Sandbox("forged")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let hubStore = try hubStore(hub.dir)
        let home = AgentHome(directory: a)
        let config = try home.config()
        let me = try home.identity()
        let hubKX = try home.hubKeys().kx
        let origin = OriginID(config.agentID)
        let stranger = Identity()
        let seq = try #require(try hubStore.agent(id: config.agentID)).appliedSeq + 1
        let before = try hubStore.totals()

        struct Refusal: Decodable {
            struct Detail: Decodable { var code: String; var message: String }
            var error: Detail
        }
        func send(_ bytes: [UInt8]) async throws -> (status: Int, code: String?, body: String) {
            let a = try await withHubClient(hub.url) { try await $0.send(.POST, "/v1/changesets", body: bytes) }
            let refusal: Refusal? = try? HubJSON.decoder.decode(Refusal.self, from: Data(a.body))
            let code = refusal?.error.code
            return (a.status, code, String(decoding: a.body, as: UTF8.self))
        }

        // 1. Someone else's keys, claiming to be this agent.
        let (b1, r1) = Self.body(origin: origin, commune: Self.commune, seed: 1)
        let impostor = try Self.seal(
            b1, origin: origin, seqFrom: seq, commune: Self.commune, signer: stranger.signing,
            senderKeyID: stranger.signing.publicKey.id,
            kx: stranger.kx, hubKX: hubKX)
        let s1 = try await send(impostor)
        #expect(s1.status == 401 && s1.code == "unknown_key", "\(s1)")

        // 2. The agent's transport key (stolen) but a signature by another key.
        let (b2, r2) = Self.body(origin: origin, commune: Self.commune, seed: 2)
        let forged = try Self.seal(
            b2, origin: origin, seqFrom: seq, commune: Self.commune, signer: stranger.signing,
            senderKeyID: me.signing.publicKey.id,
            kx: me.kx, hubKX: hubKX)
        let s2 = try await send(forged)
        #expect(s2.status == 401 && s2.code == "bad_signature", "\(s2)")

        // 3. A genuine change set with one byte flipped in transit.
        let (b3, r3) = Self.body(origin: origin, commune: Self.commune, seed: 3)
        let genuine = try Self.seal(
            b3, origin: origin, seqFrom: seq, commune: Self.commune, signer: me.signing,
            senderKeyID: me.signing.publicKey.id, kx: me.kx,
            hubKX: hubKX)
        var tampered = genuine
        tampered[tampered.count - 20] ^= 0x01
        let s3 = try await send(tampered)
        #expect(s3.status == 401 && s3.code == "tampered", "\(s3)")

        // 4. An origin the hub never enrolled.
        let ghost = OriginID("a-\(Self.commune)-00000000")
        let (b4, r4) = Self.body(origin: ghost, commune: Self.commune, seed: 4)
        let s4 = try await send(
            try Self.seal(
                b4, origin: ghost, seqFrom: 1, commune: Self.commune, signer: stranger.signing,
                senderKeyID: stranger.signing.publicKey.id, kx: stranger.kx, hubKX: hubKX))
        #expect(s4.status == 401 && s4.code == "unknown_key", "\(s4)")

        #expect(try hubStore.totals() == before, "a refused change set applies nothing")
        #expect(try hubStore.agent(id: config.agentID)?.appliedSeq == seq - 1)
        for r in [r1, r2, r3, r4] { #expect(try hubStore.record(r) == nil) }
        #expect(
            try hubStore.agent(id: config.agentID)?.lastError == nil, "a forger cannot put errors on the agent's record"
        )

        // The untampered bytes are accepted: the refusals were about the forgery.
        let s5 = try await send(genuine)
        #expect(s5.status == 200 && s5.body.contains("applied"), "\(s5)")
        #expect(try hubStore.record(r3) != nil)
        #expect(try hubStore.totals()["records"] == (before["records"] ?? 0) + 1)
    }
}
