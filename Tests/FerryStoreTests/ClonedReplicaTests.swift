import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Testing

/// SPEC §7.2: two change sets claiming one origin's sequence numbers with
/// different content are a cloned replica, not a duplicate; re-enrolling the
/// copy moves its unacknowledged writes to a new origin.
struct ClonedReplicaTests {
    @Test(arguments: Backend.allCases) func aDifferentChangeSetForAnAppliedRangeIsRefusedAsClonedReplica(
        _ backend: Backend
    ) throws {
        let dir = try TempDir("cloned")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        try t.agent.create(form: try Fixture.form, commune: Fixture.commune, values: Fixture.rows(1, seed: 1)[0])
        try t.upload()
        // A copy of the replica file, as if the directory were copied to another PC
        // (its WAL folded in first, so the one file holds everything).
        try t.agent.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try FileManager.default.copyItem(atPath: dir.file("agent.sqlite"), toPath: dir.file("copy.sqlite"))
        let copy = try AgentStore(path: dir.file("copy.sqlite"), origin: t.agent.origin)
        try t.agent.create(form: try Fixture.form, commune: Fixture.commune, values: Fixture.rows(1, seed: 2)[0])
        try copy.create(form: try Fixture.form, commune: Fixture.commune, values: Fixture.rows(1, seed: 3)[0])
        let original = try #require(try t.freeze())
        let applied = try t.hub.ingest(try t.open(original.envelope), from: t.info.id)
        #expect(applied.status == "applied")
        let totals = try t.hub.totals()

        let clone = try #require(
            try copy.freeze(maxWrites: 1000) { body, ctx in
                let s = try t.seal(body, seqFrom: ctx.seqFrom, seqTo: ctx.seqTo, ack: ctx.hubCursor, now: ctx.now)
                return (s.header.id, s.envelope)
            })
        #expect(clone.seqFrom == original.seqFrom, "both copies number their writes alike")
        let e = #expect(throws: ChangeSetError.self) { try t.hub.ingest(try t.open(clone.envelope), from: t.info.id) }
        #expect(e?.code == .clonedReplica)
        #expect(e?.description.contains("copied to another PC") == true, "\(String(describing: e))")
        #expect(try t.hub.totals()["agents_cloned"] == 1)
        #expect(try t.hub.agent(id: t.info.id)?.clonedRefusals == 1)
        var after = try t.hub.totals()
        after["agents_cloned"] = totals["agents_cloned"]
        #expect(after == totals, "nothing of the clone's change set was applied")

        // The exact re-delivery of the applied change set is still a harmless duplicate…
        #expect(try t.hub.ingest(try t.open(original.envelope), from: t.info.id).status == "duplicate")
        // …and so is the same content under a new id (a re-seal of the same writes).
        let f = try #require(try t.agent.inFlight())
        let body = try t.open(f.envelope).body
        let resealed = try t.seal(body, seqFrom: f.seqFrom, seqTo: f.seqTo, now: try t.agent.now())
        #expect(try t.hub.ingest(try t.open(resealed.envelope), from: t.info.id).status == "duplicate")
        #expect(try t.hub.agent(id: t.info.id)?.clonedRefusals == 1)
    }

    @Test(arguments: Backend.allCases) func aCloneWhoseRangeOverlapsTheAppliedOneIsRefusedToo(_ backend: Backend) throws
    {
        let dir = try TempDir("overlap")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        try t.agent.createMany(form: try Fixture.form, commune: Fixture.commune, rows: Fixture.rows(2, seed: 4))
        try t.upload()
        let applied = try #require(try t.hub.agent(id: t.info.id)).appliedSeq
        let (body, _) = try HubStoreIngestTests().craftedRecord(t, seed: 5)
        let n = UInt64(body.writes.count)
        let sealed = try t.seal(body, seqFrom: applied - 1, seqTo: applied - 2 + n, now: body.writes[0].id.hlc)
        let e = #expect(throws: ChangeSetError.self) { try t.hub.ingest(try t.open(sealed.envelope), from: t.info.id) }
        #expect(e?.code == .clonedReplica)
    }

    @Test(arguments: Backend.allCases) func reoriginMovesEveryUnacknowledgedWriteAndItsReferencesToTheNewOrigin(
        _ backend: Backend
    ) throws {
        let dir = try TempDir("reorigin")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let acked = try t.agent.create(
            form: try Fixture.form, commune: Fixture.commune, values: Fixture.rows(1, seed: 6)[0])
        try t.upload()
        let fresh = try t.agent.createMany(
            form: try Fixture.form, commune: Fixture.commune, rows: Fixture.rows(2, seed: 7))
        _ = try #require(try t.freeze(maxWrites: 1))  // one record in flight, one still queued
        try t.agent.update(acked, values: ["status": .string("submitted")])
        try t.agent.delete([fresh[1]])
        let before = try t.agent.counts()
        let newOrigin = OriginID("a-24781-new00000")

        let moved = try t.agent.reorigin(to: newOrigin)
        let after = try t.agent.counts()
        #expect(moved == before.pendingWrites + before.inFlightWrites)
        #expect(after.inFlightWrites == 0 && after.pendingWrites == moved)
        #expect(after.lastSeq == 0 && after.hubCursor == 0)
        #expect(try t.agent.inFlight() == nil)
        // The acknowledged create keeps its origin; everything queued has the new one.
        let store = try AgentStore(path: dir.file("agent.sqlite"), origin: newOrigin)
        let ackedView = try #require(try store.record(acked))
        #expect(ackedView.fields["owner_id"]?.id.origin == t.agent.origin)
        #expect(ackedView.fields["status"]?.id.origin == newOrigin)
        for id in fresh {
            let v = try #require(try store.record(id))
            #expect(v.fields.values.allSatisfy { $0.id.origin == newOrigin }, "\(v.fields)")
        }
        // The delete covers the moved writes under their new ids.
        let del = try #require(try store.record(fresh[1])?.fields[deletedField])
        #expect(!del.covers.isEmpty && del.covers.allSatisfy { $0.origin == newOrigin })
        var sealedWrites: [FieldWrite] = []
        _ = try store.freeze(maxWrites: 1000) { body, ctx in
            sealedWrites = body.writes
            #expect(ctx.seqFrom == 1 && ctx.seqTo == UInt64(moved))
            return (randomBytes(16), [])
        }
        #expect(sealedWrites.count == moved)
        #expect(sealedWrites.allSatisfy { $0.id.origin == newOrigin })
    }
}
