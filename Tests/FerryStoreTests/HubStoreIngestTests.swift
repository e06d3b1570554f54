import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Testing

/// The hub's SQLite store ingesting sealed change sets from an enrolled agent
/// (DESIGN §8): once only, in sequence, in scope, validated, with conflicts
/// recorded for an operator.
struct HubStoreIngestTests {
    @Test(arguments: Backend.allCases) func aChangeSetIsAppliedOnceAndIsADuplicateTheSecondTime(_ backend: Backend)
        throws
    {
        let dir = try TempDir("ingest")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let rows = Fixture.rows(5, seed: 10)
        try t.agent.createMany(form: try Fixture.form, commune: Fixture.commune, rows: rows)
        let f = try #require(try t.freeze())
        let opened = try t.open(f.envelope)

        let first = try t.hub.ingest(opened, from: t.info.id)
        #expect(first.status == "applied")
        #expect(first.cursor == 60 && first.merged == 60 && first.quarantined == 0)
        let totals = try t.hub.totals()
        #expect(totals["records"] == 5 && totals["leaves"] == 60 && totals["changesets"] == 1)
        #expect(try t.hub.agent(id: t.info.id)?.appliedSeq == 60)

        let second = try t.hub.ingest(opened, from: t.info.id)
        #expect(second.status == "duplicate" && second.cursor == 60 && second.merged == 0)
        #expect(try t.hub.totals() == totals, "nothing applied twice")
        // The same bytes opened again (a re-send) are the same duplicate.
        #expect(try t.hub.ingest(try t.open(f.envelope), from: t.info.id).status == "duplicate")
        #expect(try t.hub.totals() == totals)

        try t.agent.acknowledge(upTo: first.cursor)
        #expect(try t.hub.winners(commune: Fixture.commune) == t.agent.fullState())
        #expect(
            try t.hub.winners(commune: Fixture.commune).values.map(Fixture.canonical).sorted()
                == rows.map(Fixture.canonical).sorted())
        // The audit trail keeps the signed change set, and the signature verifies.
        let audit = try t.hub.audit(record: try #require(try t.agent.records(limit: 1).first).id)
        #expect(audit.count == 1 && audit.first?.signatureValid == true && audit.first?.seqTo == 60)
    }

    @Test(arguments: Backend.allCases) func aGapInTheSequenceIsRefusedWithTheSequenceExpected(_ backend: Backend) throws
    {
        let dir = try TempDir("gap")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        try t.agent.create(form: try Fixture.form, commune: Fixture.commune, values: Fixture.rows(1, seed: 11)[0])
        try t.upload()
        let (body, rid) = try craftedRecord(t, seed: 12)
        let n = UInt64(body.writes.count)
        let sealed = try t.seal(body, seqFrom: 12 + 3, seqTo: 12 + 2 + n, now: body.writes[0].id.hlc)
        let before = try t.hub.totals()
        let e = #expect(throws: ChangeSetError.self) { try t.hub.ingest(try t.open(sealed.envelope), from: t.info.id) }
        #expect(e?.code == .outOfSequence)
        #expect(e?.expectedSeq == 13)
        #expect(try t.hub.totals() == before)
        #expect(try t.hub.record(rid) == nil)
    }

    @Test(arguments: Backend.allCases) func anInvalidValueIsQuarantinedWithItsReasonAndNotMerged(_ backend: Backend)
        throws
    {
        let dir = try TempDir("quarantine")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let row = Fixture.rows(1, seed: 13)[0]
        let rid = try t.agent.create(form: try Fixture.form, commune: Fixture.commune, values: row)
        try t.upload()
        let seen = try #require(try t.agent.record(rid)).fields

        // An agent with an older or tampered form sends a status the hub's form refuses,
        // together with a valid edit.
        let now = try t.agent.now()
        let id = WriteID(hlc: now, origin: t.agent.origin)
        let bad = FieldWrite(
            record: rid, field: "status", id: id, prev: [try #require(seen["status"]).id], value: .string("archived"))
        let good = FieldWrite(
            record: rid, field: "members", id: id, prev: [try #require(seen["members"]).id], value: .int(5))
        let scope = RecordScope(formID: "land-record", formVersion: 1, commune: Fixture.commune)
        let applied = try #require(try t.hub.agent(id: t.info.id)).appliedSeq
        let sealed = try t.seal(
            ChangeSetBody(writes: [bad, good], scopes: [rid: scope]), seqFrom: applied + 1, seqTo: applied + 2, now: now
        )
        let r = try t.hub.ingest(try t.open(sealed.envelope), from: t.info.id)

        #expect(r.status == "applied" && r.quarantined == 1 && r.cursor == applied + 2)
        let q = try t.hub.quarantine()
        #expect(q.count == 1)
        #expect(
            q.first?.record == rid.description && q.first?.field == "status" && q.first?.value == .string("archived"))
        #expect(q.first?.origin == t.info.id)
        #expect(q.first?.reason.contains("must be one of") == true, "reason: \(q.first?.reason ?? "none")")
        #expect(try t.hub.totals()["quarantined"] == 1)
        let view = try #require(try t.hub.record(rid))
        #expect(view.winners["status"] == row["status"], "the refused value is not merged")
        #expect(view.leaves["status"]?.leaves.allSatisfy { $0.value != .string("archived") } == true)
        #expect(view.winners["members"] == .int(5), "the valid write of the same change set is merged")
        #expect(try t.hub.totals()["conflicts"] == 0)
    }

    @Test(arguments: Backend.allCases) func aWriteToAnotherCommunesRecordIsRefusedAndNothingIsApplied(
        _ backend: Backend
    ) throws {
        let dir = try TempDir("scope")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let rows = Fixture.rows(2, seed: 14)
        try t.agent.create(form: try Fixture.form, commune: Fixture.commune, values: rows[0])
        let foreign = try t.agent.create(form: try Fixture.form, commune: Fixture.otherCommune, values: rows[1])
        let f = try #require(try t.freeze())
        let before = try t.hub.totals()

        let e = #expect(throws: HubError.self) { try t.hub.ingest(try t.open(f.envelope), from: t.info.id) }
        #expect(e?.code == .scope)
        #expect(e?.message.contains(Fixture.otherCommune) == true)
        #expect(try t.hub.totals() == before, "the whole change set is refused")
        #expect(try t.hub.record(foreign) == nil)
        #expect(try t.hub.winners(commune: Fixture.commune).isEmpty)
        #expect(try t.hub.agent(id: t.info.id)?.appliedSeq == 0)
    }

    @Test(arguments: Backend.allCases) func concurrentEditsAreRecordedAsAConflictAndResolutionClearsIt(
        _ backend: Backend
    ) throws {
        let dir = try TempDir("conflict")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let rid = try t.agent.create(
            form: try Fixture.form, commune: Fixture.commune, values: Fixture.rows(1, seed: 15)[0])
        try t.upload()
        try t.download()

        // The commune and the hub's operator change the same field, neither seeing the other.
        try t.agent.update(rid, values: ["status": .string("verified")])
        try t.hub.operatorWrite(record: rid, values: ["status": .string("needs_fix")], resolve: false)
        let r = try #require(try t.upload())
        #expect(r.conflictsOpen == 1)

        let conflicts = try t.hub.conflicts()
        #expect(conflicts.count == 1)
        let c = try #require(conflicts.first)
        #expect(
            c.record == rid.description && c.field == "status" && c.kind == "concurrent_writes"
                && c.commune == Fixture.commune)
        #expect(Set(c.sides.map(\.value.text)) == ["verified", "needs_fix"])
        #expect(Set(c.sides.map(\.origin)) == [t.info.id, "hub"])
        #expect(c.sides.first { $0.origin == t.info.id }?.commune == Fixture.commune)
        let view = try #require(try t.hub.record(rid))
        #expect(view.leaves["status"]?.isConflict == true)
        let shown = try #require(view.winners["status"])
        #expect(c.sides.first?.value.description == shown.display, "the first side is the value shown")

        try t.hub.resolve(record: rid, field: "status", value: nil)
        #expect(try t.hub.conflicts().isEmpty)
        #expect(try t.hub.totals()["conflicts"] == 0)
        let resolved = try #require(try t.hub.record(rid))
        #expect(resolved.leaves["status"]?.leaves.count == 1)
        #expect(resolved.winners["status"] == shown)

        // The resolution is an ordinary write: it replicates to the agent.
        try t.download()
        #expect(try t.agent.record(rid)?.values["status"] == shown)
        #expect(try t.hub.winners(commune: Fixture.commune) == t.agent.fullState())
    }

    @Test(arguments: Backend.allCases) func anEditOfARecordTheHubDeletedIsAnEditVersusDeleteConflictUntilResolved(
        _ backend: Backend
    ) throws {
        let dir = try TempDir("editdelete")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let rid = try t.agent.create(
            form: try Fixture.form, commune: Fixture.commune, values: Fixture.rows(1, seed: 16)[0])
        try t.upload()

        try t.hub.operatorWrite(record: rid, values: [deletedField: .bool(true)], resolve: false)
        #expect(try t.hub.conflicts().isEmpty, "a delete that saw every field is no conflict")
        try t.agent.update(rid, values: ["members": .int(9)])
        try t.upload()

        let conflicts = try t.hub.conflicts()
        #expect(conflicts.count == 1)
        #expect(conflicts.first?.kind == "edit_vs_delete" && conflicts.first?.field == "members")
        #expect(try t.hub.record(rid)?.isDeleted == true)
        #expect(try t.hub.record(rid)?.winners["members"] == .int(9), "the edit is kept, not dropped")

        try t.hub.resolve(record: rid, field: "members", value: nil)
        #expect(try t.hub.conflicts().isEmpty)
        #expect(try t.hub.record(rid)?.isDeleted == true)
        try t.download()
        #expect(try t.agent.record(rid)?.isDeleted == true)
        #expect(try t.hub.winners(commune: Fixture.commune) == t.agent.fullState())
    }

    /// A new record written by the agent, built by hand (not through its outbox).
    func craftedRecord(_ t: HubAndAgent, seed: UInt64) throws -> (ChangeSetBody, RecordID) {
        var rng = SystemRandomNumberGenerator()
        let now = try t.agent.now()
        let rid = RecordID.v7(millis: now.millis, using: &rng)
        let id = WriteID(hlc: now, origin: t.agent.origin)
        let writes = Fixture.rows(1, seed: seed)[0].sorted { $0.key < $1.key }.map {
            FieldWrite(record: rid, field: $0.key, id: id, value: $0.value)
        }
        return (
            ChangeSetBody(
                writes: writes,
                scopes: [rid: RecordScope(formID: "land-record", formVersion: 1, commune: Fixture.commune)]),
            rid
        )
    }

    /// The leaf insert binds through SQLite's C API: every kind of value, empty
    /// strings and bytes, and every kind of reference read back exactly as written.
    @Test func everyValueKindAndReferenceReadsBackExactlyAsPersisted() throws {
        let dir = try TempDir("leaf-binding")
        defer { dir.remove() }
        let hub = try SQLiteHubStore(path: dir.file("hub.sqlite"))
        let rid = RecordID(high: 0x0193_a5f2_7c1d_7e4b, low: 0x9a3f_2b6c_8d0e_1f99)
        let o = OriginID("a-24781-binding")
        func id(_ ms: UInt64) -> WriteID { WriteID(hlc: HLC(millis: ms, counter: 3), origin: o) }
        let values: [(String, Value)] = [
            ("n", .null), ("t", .bool(true)), ("f", .bool(false)), ("i", .int(.min)), ("j", .int(.max)),
            ("d", .double(-0.5)), ("s", .string("Nguyễn Thị Ánh")), ("e", .string("")), ("day", .date(20_000)),
            ("b", .bytes([0, 255, 7])), ("z", .bytes([])),
        ]
        var writes = values.enumerated().map { i, fv in
            FieldWrite(record: rid, field: fv.0, id: id(100 + UInt64(i)), prev: [], value: fv.1)
        }
        writes.append(
            FieldWrite(
                record: rid, field: deletedField, id: id(200), prev: [id(1)], value: .bool(true), alive: nil,
                covers: [id(100), id(101)]))
        writes.append(
            FieldWrite(record: rid, field: "a", id: id(201), prev: [id(2), id(3)], value: .int(1), alive: id(200)))
        let scope = RecordScope(formID: "land-record", formVersion: 1, commune: Fixture.commune)
        try hub.transaction { tx in
            _ = try tx.merge(
                [RecordBatch(record: rid, scope: scope, isNew: true, writes: writes)], changeSet: [9, 9], atMillis: 5)
        }
        let read = try hub.transaction { tx in try tx.registers(of: rid) }
        #expect(read.count == writes.count)
        for w in writes {
            #expect(read[w.field]?.leaves == [w], "field \(w.field)")
        }
    }
}
