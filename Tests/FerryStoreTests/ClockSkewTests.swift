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

extension ClockSkewTests {
    /// The re-stamp walks the queue a page of records at a time (bounded
    /// memory): past several pages, every queued record gets its own fresh
    /// stamp, in record order, above what the hub already holds from this PC,
    /// and the winners move with the pending writes.
    @Test func restampPagesThroughALargeQueueAndStampsEveryRecordOnceInOrder() throws {
        let dir = NSTemporaryDirectory() + "ferry-skew-pages-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let form = try Seed.form
        let wall = ManualClock(millis: 1_800_000_000_000)
        let agent = try AgentStore(path: dir + "/agent.sqlite", origin: OriginID("a1"), wall: wall)
        var gen = SampleLandRecords(seed: 11)
        // One record the hub already has (acknowledged): its stamp is the floor.
        let seen = try agent.createMany(form: form, commune: "24781", rows: [gen.next()])
        _ = try #require(try agent.freeze(maxWrites: 100) { _, _ in ([1], [1]) })
        try agent.acknowledge(upTo: try agent.counts().lastSeq)
        let floor = try #require(try agent.record(seen[0])?.fields.values.first?.id.hlc)
        // Then 700 records (three pages) from a clock that ran a year ahead.
        wall.set(1_800_000_000_000 + 365 * 86_400_000)
        let ids = try agent.createMany(form: form, commune: "24781", rows: (0..<700).map { _ in gen.next() })
        let queuedBefore = try agent.counts().pendingWrites
        wall.set(1_800_000_000_000 + 1000)
        try agent.unfreeze(restamp: true)

        #expect(try agent.counts().pendingWrites == queuedBefore)
        var previous = floor
        for id in ids.sorted() {
            let r = try #require(try agent.record(id))
            let stamps = Set(r.fields.values.map(\.id))
            #expect(stamps.count == 1, "one fresh stamp per record")
            let stamp = try #require(stamps.first)
            #expect(stamp.hlc > previous, "stamps rise in record order, above the floor")
            #expect(stamp.hlc.millis < wall.nowMillis() + 60_000, "stamped from the corrected clock")
            previous = stamp.hlc
        }
        // The pending writes carry the same stamps as the winners (one change set of them all).
        var sent: [FieldWrite] = []
        let f = try #require(
            try agent.freeze(maxWrites: 100_000) { body, _ in
                sent = body.writes
                return ([2], [2])
            })
        for w in sent {
            #expect(try agent.record(w.record)?.fields[w.field]?.id == w.id)
        }
        #expect(Int(f.seqTo - f.seqFrom + 1) == queuedBefore)
    }
}

extension UInt64 {
    fileprivate var asInt: Int { Int(self) }
}
