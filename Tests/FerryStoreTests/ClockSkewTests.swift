import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import Testing

/// A commune PC whose clock says 2099: the hub refuses its timestamps, the
/// agent corrects its clock from the hub's time and re-stamps, nothing is lost.
struct ClockSkewTests {
    @Test func writesStampedIn2099AreRefusedThenRestampedAndAccepted() throws {
        let dir = NSTemporaryDirectory() + "ferry-skew-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let hub = try SQLiteHubStore(path: dir + "/hub.sqlite")
        let form = try Seed.form
        try hub.publish(form: form)
        try hub.publish(
            .commune, key: "24781",
            json: Array(#"{"code":"24781","name":"Phường Xuân Hương - Đà Lạt","kind":"phường"}"#.utf8))
        let hubID = Identity()
        let agentID = Identity()
        let secret = try hub.issueToken(commune: "24781")
        let info = try hub.enroll(
            secret: secret, commune: "24781", signKey: agentID.signing.publicKey, kxKey: agentID.kx.publicKey,
            hostname: "pc")

        let wall2099 = ManualClock(millis: 4_070_908_800_000)
        let agent = try AgentStore(path: dir + "/agent.sqlite", origin: OriginID(info.id), wall: wall2099)
        var gen = SampleLandRecords(seed: 7)
        let ids = try agent.createMany(form: form, commune: "24781", rows: (0..<5).map { _ in gen.next() })

        let toHub = try agentID.kx.clientSessionKeys(server: hubID.kx.publicKey).transmit
        let fromAgent = try hubID.kx.serverSessionKeys(client: agentID.kx.publicKey).receive
        func send() throws -> IngestResult {
            let f = try #require(
                try agent.freeze(maxWrites: 10_000) { body, ctx in
                    let h = ChangeSetHeader(
                        id: randomBytes(16), origin: OriginID(info.id), seqFrom: ctx.seqFrom, seqTo: ctx.seqTo,
                        senderKeyID: agentID.signing.publicKey.id, recipientKeyID: hubID.kx.publicKey.id,
                        createdHLC: ctx.now, commune: "24781")
                    let s = try Envelope.seal(header: h, body: body, signer: agentID.signing, key: toHub)
                    return (s.header.id, s.envelope)
                })
            let opened = try Envelope.open(
                f.envelope, recipientKeyID: hubID.kx.publicKey.id, author: agentID.signing.publicKey, key: fromAgent)
            return try hub.ingest(opened, from: info.id)
        }

        let refusal = #expect(throws: ChangeSetError.self) { try send() }
        #expect(refusal?.code == .futureTimestamp)
        #expect(refusal?.description.contains("date and time") == true)
        #expect(try hub.totals()["records"] == 0)

        // The agent learns the hub's time (a signed download carries it) and re-stamps.
        let offset = Int64(hub.nowMillis()) - Int64(wall2099.nowMillis())
        try agent.setMeta(["clock_offset_ms": String(offset)])
        try agent.unfreeze(restamp: true)
        let result = try send()
        #expect(result.status == "applied")
        let sent = try agent.counts().lastSeq.asInt
        #expect(result.merged == sent)
        try agent.acknowledge(upTo: result.cursor)

        // Every write arrived exactly once, stamped near the hub's time.
        let hubState = try hub.winners(commune: "24781")
        let agentState = try agent.fullState()
        #expect(hubState == agentState)
        #expect(Set(hubState.keys) == Set(ids))
        for id in ids {
            let view = try #require(try hub.record(id))
            for reg in view.leaves.values {
                let w = try #require(reg.winner)
                #expect(w.id.hlc.millis < hub.nowMillis() + 60_000)
            }
        }
        #expect(try agent.counts().pendingWrites == 0)
    }
}

extension UInt64 {
    fileprivate var asInt: Int { Int(self) }
}
