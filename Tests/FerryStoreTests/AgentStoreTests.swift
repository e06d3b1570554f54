import FerryCore
import FerryProtocol
import FerryStore
import Foundation
import Testing

/// The agent replica on a real file-backed database: local write rules, the
/// outbox, the change set in flight, and merging what the hub sends.
struct AgentStoreTests {
    @Test func aCreatedRecordReadsBackAndQueuesOneWritePerField() throws {
        let dir = try TempDir("create")
        defer { dir.remove() }
        let store = try Fixture.agentStore(dir.file("replica.sqlite"))
        let form = try Fixture.form
        let values = Fixture.rows(1, seed: 1)[0]
        let id = try store.create(form: form, commune: Fixture.commune, values: values)

        let view = try #require(try store.record(id))
        #expect(view.values == values)
        #expect(view.scope == RecordScope(formID: "land-record", formVersion: 1, commune: Fixture.commune))
        #expect(!view.isDeleted)
        #expect(Set(view.fields.values.map(\.id)).count == 1, "one record, one stamp")
        #expect(view.fields.values.allSatisfy { $0.id.origin == store.origin && $0.prev.isEmpty })
        let c = try store.counts()
        #expect(c.records == 1 && c.pendingWrites == values.count && c.inFlightWrites == 0 && c.lastSeq == 0)
        #expect(try store.fullState() == [id: values])

        // Reopening the file shows the same replica.
        let again = try AgentStore(path: dir.file("replica.sqlite"), origin: store.origin)
        #expect(try again.fullState() == [id: values])
        #expect(try again.counts() == c)
    }

    @Test func invalidRowsAreRefusedAndNothingIsWritten() throws {
        let dir = try TempDir("invalid")
        defer { dir.remove() }
        let store = try Fixture.agentStore(dir.file("replica.sqlite"))
        let form = try Fixture.form
        var rows = Fixture.rows(3, seed: 2)
        rows[2]["status"] = .string("archived")
        #expect(throws: FormError.self) { try store.createMany(form: form, commune: Fixture.commune, rows: rows) }
        rows[2]["status"] = nil
        #expect(throws: FormError.self) { try store.createMany(form: form, commune: Fixture.commune, rows: rows) }
        #expect(try store.counts().records == 0, "all rows or none")
        #expect(try store.counts().pendingWrites == 0)

        let id = try store.create(form: form, commune: Fixture.commune, values: rows[0])
        #expect(throws: FormError.self) { try store.update(id, values: ["owner_id": .string("12345")]) }
        #expect(throws: FormError.self) { try store.update(id, values: ["members": .int(40)]) }
        #expect(throws: FormError.self) { try store.update(id, values: [deletedField: .bool(true)]) }
        #expect(try store.record(id)?.values == rows[0])
        #expect(throws: StoreError.self) { try store.update(RecordID(high: 1, low: 2), values: ["members": .int(2)]) }
    }

    @Test func aDeletedRecordCannotBeEditedUntilUndeleted() throws {
        let dir = try TempDir("delete")
        defer { dir.remove() }
        let store = try Fixture.agentStore(dir.file("replica.sqlite"))
        let rows = Fixture.rows(2, seed: 3)
        let ids = try store.createMany(form: try Fixture.form, commune: Fixture.commune, rows: rows)

        try store.delete([ids[0]])
        let deleted = try #require(try store.record(ids[0]))
        #expect(deleted.isDeleted)
        #expect(deleted.values == rows[0], "a delete keeps the fields (undelete brings them back)")
        let covers = try #require(deleted.fields[deletedField]).covers
        #expect(
            Set(covers) == Set(deleted.fields.filter { $0.key != deletedField }.values.map(\.id)),
            "the delete covers every field it saw")
        #expect(throws: StoreError.self) { try store.update(ids[0], values: ["status": .string("verified")]) }
        #expect(throws: StoreError.self) { try store.delete([ids[0]]) }
        #expect(try store.records(limit: 10).map(\.id) == [ids[1]])
        #expect(Set(try store.records(limit: 10, includeDeleted: true).map(\.id)) == Set(ids))
        #expect(try store.counts().deleted == 1)

        try store.undelete(ids[0])
        #expect(try store.record(ids[0])?.isDeleted == false)
        #expect(throws: StoreError.self) { try store.undelete(ids[0]) }
        try store.update(ids[0], values: ["status": .string("verified")])
        #expect(try store.record(ids[0])?.values["status"] == .string("verified"))
        #expect(try store.counts().deleted == 0)
    }

    @Test func severalOfflineEditsOfOneFieldLeaveAsOneWriteNamingWhatWasSeenFirst() throws {
        let dir = try TempDir("coalesce")
        defer { dir.remove() }
        let t = try HubAndAgent(dir)
        let rows = Fixture.rows(2, seed: 4)
        let sent = try t.agent.create(form: try Fixture.form, commune: Fixture.commune, values: rows[0])
        try t.upload()
        let seen = try #require(try t.agent.record(sent)?.fields["status"]).id

        // Three edits of a record the hub already has.
        for s in ["submitted", "verified", "needs_fix"] { try t.agent.update(sent, values: ["status": .string(s)]) }
        try t.agent.update(sent, values: ["members": .int(7)])
        try t.agent.update(sent, values: ["members": .int(8)])
        // And edits of a record never sent: they fold into its creation.
        let fresh = try t.agent.create(form: try Fixture.form, commune: Fixture.commune, values: rows[1])
        try t.agent.update(fresh, values: ["status": .string("verified")])
        try t.agent.update(fresh, values: ["status": .string("needs_fix")])

        #expect(try t.agent.counts().pendingWrites == 2 + rows[1].count)
        var body: ChangeSetBody?
        _ = try t.agent.freeze(maxWrites: 1000) { b, ctx in
            body = b
            let s = try t.seal(b, seqFrom: ctx.seqFrom, seqTo: ctx.seqTo, now: ctx.now)
            return (s.header.id, s.envelope)
        }
        let writes = try #require(body).writes
        let statusOfSent = writes.filter { $0.record == sent && $0.field == "status" }
        #expect(statusOfSent.count == 1)
        #expect(statusOfSent.first?.value == .string("needs_fix"))
        #expect(statusOfSent.first?.prev == [seen], "prev is the value seen before the first edit")
        let membersOfSent = writes.filter { $0.record == sent && $0.field == "members" }
        #expect(membersOfSent.count == 1 && membersOfSent.first?.value == .int(8))
        #expect(membersOfSent.first?.prev.count == 1)
        #expect(writes.filter { $0.record == sent }.count == 2)
        let statusOfFresh = writes.filter { $0.record == fresh && $0.field == "status" }
        #expect(statusOfFresh.count == 1)
        #expect(statusOfFresh.first?.value == .string("needs_fix"))
        #expect(statusOfFresh.first?.prev == [], "a record never sent has no seen value")
        #expect(writes.filter { $0.record == fresh }.count == rows[1].count)

        // The hub takes the one write with no conflict: prev names its leaf.
        let r = try t.hub.ingest(try t.open(try #require(try t.agent.inFlight()).envelope), from: t.info.id)
        #expect(r.status == "applied" && r.conflictsOpen == 0)
        #expect(try t.hub.record(sent)?.leaves["status"]?.leaves.count == 1)
        #expect(try t.hub.record(sent)?.winners["status"] == .string("needs_fix"))
    }

    @Test func aFrozenChangeSetIsReturnedByteForByteUntilAcknowledged() throws {
        let dir = try TempDir("freeze")
        defer { dir.remove() }
        let t = try HubAndAgent(dir)
        var seals = 0
        func freeze(_ max: Int) throws -> InFlight? {
            try t.agent.freeze(maxWrites: max) { b, ctx in
                seals += 1
                let s = try t.seal(b, seqFrom: ctx.seqFrom, seqTo: ctx.seqTo, now: ctx.now)
                return (s.header.id, s.envelope)
            }
        }
        #expect(try freeze(100) == nil, "nothing pending, nothing frozen")
        #expect(seals == 0)

        let ids = try t.agent.createMany(
            form: try Fixture.form, commune: Fixture.commune, rows: Fixture.rows(3, seed: 5))
        // Whole records within the bound: 12 + 12 > 20, so one record goes.
        let first = try #require(try freeze(20))
        #expect(first.seqFrom == 1 && first.seqTo == 12)
        #expect(seals == 1)
        var c = try t.agent.counts()
        #expect(c.pendingWrites == 24 && c.inFlightWrites == 12 && c.lastSeq == 12)

        // Until acknowledged, the same bytes come back, without sealing again,
        // also after the replica is reopened (a restart, a power cut).
        let again = try #require(try freeze(1000))
        #expect(again.envelope == first.envelope && again.id == first.id && again.seqTo == 12)
        let reopened = try AgentStore(path: dir.file("agent.sqlite"), origin: t.agent.origin)
        #expect(try reopened.inFlight()?.envelope == first.envelope)
        #expect(seals == 1)
        try t.agent.noteAttempt(seqFrom: 1)
        #expect(try t.agent.inFlight()?.attempts == 1)

        // A local edit meanwhile (of the record in flight) waits in the outbox;
        // it does not touch the frozen bytes.
        let frozenRecord = try #require(try t.open(first.envelope).body.writes.first).record
        #expect(ids.contains(frozenRecord))
        try t.agent.update(frozenRecord, values: ["members": .int(2)])
        #expect(try t.agent.inFlight()?.envelope == first.envelope)

        // An acknowledgement that does not cover the change set releases nothing.
        try t.agent.acknowledge(upTo: 11)
        #expect(try t.agent.inFlight()?.envelope == first.envelope)
        try t.agent.acknowledge(upTo: 12)
        #expect(try t.agent.inFlight() == nil)
        c = try t.agent.counts()
        #expect(c.inFlightWrites == 0 && c.pendingWrites == 25 && c.lastSeq == 12)

        // The next change set continues the sequence.
        let second = try #require(try freeze(1000))
        #expect(second.seqFrom == 13 && second.seqTo == 37)
        #expect(second.envelope != first.envelope)
        #expect(seals == 2)

        // Unfreezing (the hub asked for a re-seal) reuses the same numbers.
        try t.agent.unfreeze(restamp: false)
        #expect(try t.agent.inFlight() == nil)
        #expect(try t.agent.counts().lastSeq == 12)
        let resealed = try #require(try freeze(1000))
        #expect(resealed.seqFrom == 13 && resealed.seqTo == 37)
        #expect(seals == 3)

        // The hub takes both in order; the replicas then agree.
        let r1 = try t.hub.ingest(try t.open(first.envelope), from: t.info.id)
        let r2 = try t.hub.ingest(try t.open(resealed.envelope), from: t.info.id)
        #expect(r1.status == "applied" && r2.status == "applied" && r2.cursor == 37)
        try t.agent.acknowledge(upTo: r2.cursor)
        #expect(try t.agent.counts().pendingWrites == 0)
        #expect(try t.hub.winners(commune: Fixture.commune) == t.agent.fullState())
    }

    @Test func applyingTheSameRemoteWritesTwiceOrInAnyOrderGivesTheSameReplica() throws {
        let dir = try TempDir("remote")
        defer { dir.remove() }
        let a = try Fixture.agentStore(dir.file("a.sqlite"))
        let b = try Fixture.agentStore(dir.file("b.sqlite"))
        let scope = RecordScope(formID: "land-record", formVersion: 1, commune: Fixture.commune)
        let rows = Fixture.rows(3, seed: 6)
        let now = UInt64(Date().timeIntervalSince1970 * 1000) - 60_000
        var writes: [FieldWrite] = []
        var scopes: [RecordID: RecordScope] = [:]
        var rng = SystemRandomNumberGenerator()
        var ids: [RecordID] = []
        for (i, row) in rows.enumerated() {
            let rid = RecordID.v7(millis: now, using: &rng)
            ids.append(rid)
            scopes[rid] = scope
            let w = WriteID(hlc: HLC(millis: now + UInt64(i), counter: 0), origin: .hub)
            writes += row.map { FieldWrite(record: rid, field: $0.key, id: w, value: $0.value) }
        }
        // Later edits of record 0 by two origins, the higher one wins.
        let base = try #require(writes.first { $0.record == ids[0] && $0.field == "status" })
        let edit1 = FieldWrite(
            record: ids[0], field: "status", id: WriteID(hlc: HLC(millis: now + 10, counter: 0), origin: .hub),
            prev: [base.id],
            value: .string("verified"))
        let edit2 = FieldWrite(
            record: ids[0], field: "status",
            id: WriteID(hlc: HLC(millis: now + 10, counter: 1), origin: OriginID("a-24781-other")),
            prev: [base.id], value: .string("needs_fix"))
        writes += [edit1, edit2]

        let body = ChangeSetBody(writes: writes, scopes: scopes)
        let changed = try a.applyRemote(body, cursor: 40)
        #expect(changed == rows.count * 12 + 2)
        let once = try a.fullState()
        #expect(try a.applyRemote(body, cursor: 40) == 0, "re-delivery changes nothing")
        #expect(try a.fullState() == once)
        #expect(once[ids[0]]?["status"] == .string("needs_fix"))
        #expect(once[ids[1]] == rows[1])
        #expect(try a.counts().hubCursor == 40)
        #expect(try a.counts().pendingWrites == 0, "remote writes are not re-sent")

        // Another replica gets the same writes reversed and in two pieces.
        let reversed = Array(writes.reversed())
        try b.applyRemote(ChangeSetBody(writes: Array(reversed[..<20]), scopes: scopes))
        try b.applyRemote(ChangeSetBody(writes: Array(reversed[20...]), scopes: scopes))
        try b.applyRemote(ChangeSetBody(writes: Array(reversed[..<20]), scopes: scopes))
        #expect(try b.fullState() == once)

        // An older write arriving late does not replace the winner.
        try a.applyRemote(ChangeSetBody(writes: [base], scopes: scopes))
        #expect(try a.fullState() == once)
    }
}
