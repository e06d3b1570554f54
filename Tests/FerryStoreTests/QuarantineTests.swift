import FerryCore
import FerryCrypto
import FerryHub
import FerryProtocol
import FerryStore
import Foundation
import Testing

/// SPEC §8.9 through the hub's real pipeline on a real SQLite hub: a write
/// that fails validation is kept with its reason and leaves no trace — no
/// leaf, no record, no stream change, no change of authorship.
struct QuarantineTests {
    /// Everything about the hub a quarantined write must not change.
    struct Trace: Equatable {
        var head: UInt64
        var records: Int
        var leaves: Int
        var hubLeaves: Int
        var winners: [RecordID: [String: Value]]

        init(_ hub: any HubServiceStore) throws {
            head = try hub.streamSeq()
            let t = try hub.totals()
            records = (t["records"] ?? 0) + (t["records_deleted"] ?? 0)
            leaves = t["leaves"] ?? 0
            winners = try hub.winners(commune: Fixture.commune)
            hubLeaves = try hub.recordIDs(commune: nil, limit: 100_000).compactMap { try hub.record($0) }.reduce(0) {
                $0 + $1.leaves.values.reduce(0) { n, r in n + r.leaves.filter { $0.id.origin == .hub }.count }
            }
        }
    }

    enum Case: String, CaseIterable, CustomTestStringConvertible {
        case unknownField, emptyFieldName, reservedFieldName, nullDelete, nullRequired, unpublishedForm
        var testDescription: String { rawValue }
    }

    @Test(arguments: Case.allCases, Backend.allCases)
    func anInvalidWriteIsKeptWithItsReasonAndLeavesNoTrace(_ c: Case, _ backend: Backend) throws {
        let dir = try TempDir("q-\(c.rawValue)")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let rid = try t.agent.create(
            form: try Fixture.form, commune: Fixture.commune, values: Fixture.rows(1, seed: 21)[0])
        try t.upload()
        let seen = try #require(try t.agent.record(rid)).fields
        let before = try Trace(t.hub)
        let auditBefore = try t.hub.audit(record: rid)

        let now = try t.agent.now()
        let id = WriteID(hlc: now, origin: t.agent.origin)
        var target = rid
        var scope = RecordScope(formID: "land-record", formVersion: 1, commune: Fixture.commune)
        let write: FieldWrite
        switch c {
        case .unknownField: write = FieldWrite(record: rid, field: "secret_note", id: id, value: .string("x"))
        case .emptyFieldName: write = FieldWrite(record: rid, field: "", id: id, value: .string("x"))
        case .reservedFieldName: write = FieldWrite(record: rid, field: "_owner", id: id, value: .string("x"))
        case .nullDelete:
            write = FieldWrite(record: rid, field: deletedField, id: id, value: .null)
        case .nullRequired:
            write = FieldWrite(
                record: rid, field: "owner_name", id: id, prev: [try #require(seen["owner_name"]).id], value: .null)
        case .unpublishedForm:
            var rng = SystemRandomNumberGenerator()
            target = RecordID.v7(millis: now.millis, using: &rng)
            scope = RecordScope(formID: "land-record", formVersion: 99, commune: Fixture.commune)
            write = FieldWrite(record: target, field: "owner_name", id: id, value: .string("Nguyễn Văn An"))
        }
        let applied = try #require(try t.hub.agent(id: t.info.id)).appliedSeq
        let sealed = try t.seal(
            ChangeSetBody(writes: [write], scopes: [target: scope]), seqFrom: applied + 1, seqTo: applied + 1, now: now)
        let o = try IngestPipeline.apply(try t.open(sealed.envelope), from: t.info.id, store: t.hub)

        #expect(o.result.status == "applied" && o.result.quarantined == 1 && o.result.merged == 0)
        #expect(try Trace(t.hub) == before, "a quarantined write changes nothing the hub holds or streams")
        #expect(try t.hub.record(target)?.leaves[write.field]?.leaves.contains { $0.id == id } != true)
        #expect(try t.hub.audit(record: rid) == auditBefore)
        if c == .unpublishedForm { #expect(try t.hub.record(target) == nil, "no record is created") }
        let q = try #require(try t.hub.quarantine().first)
        #expect(q.field == write.field && q.origin == t.info.id && !q.reason.isEmpty, "\(q)")
        // The author is told, with the value the hub holds for that field instead (if any).
        let notice = try #require(o.notices.first)
        #expect(notice.refused.id == id && notice.reason == q.reason)
        #expect(notice.accepted == (try t.hub.record(target)?.leaves[write.field]?.winner))
        // Nothing reaches the commune's other replicas.
        let stream = try t.hub.changes(
            for: try #require(try t.hub.agent(id: t.info.id)), since: before.head, maxBytes: 1 << 20)
        #expect(stream.body.writes.isEmpty)
    }

    @Test(arguments: Backend.allCases) func invalidWritesToANeighboursFieldsKeepTheNeighboursAuthorshipAndAudit(
        _ backend: Backend
    ) throws {
        let dir = try TempDir("q-neighbour")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        // The honest neighbour: a second agent of the same commune.
        let neighbour = Identity()
        let info = try t.hub.enroll(
            secret: try t.hub.issueToken(commune: Fixture.commune), commune: Fixture.commune,
            signKey: neighbour.signing.publicKey, kxKey: neighbour.kx.publicKey, hostname: "pc-2")
        let now = try t.agent.now()
        var rng = SystemRandomNumberGenerator()
        let rid = RecordID.v7(millis: now.millis, using: &rng)
        let nid = WriteID(hlc: now, origin: OriginID(info.id))
        let row = Fixture.rows(1, seed: 22)[0]
        let writes = row.sorted { $0.key < $1.key }.map {
            FieldWrite(record: rid, field: $0.key, id: nid, value: $0.value)
        }
        let scope = RecordScope(formID: "land-record", formVersion: 1, commune: Fixture.commune)
        let keys = try neighbour.kx.clientSessionKeys(server: t.hubIdentity.kx.publicKey)
        let header = ChangeSetHeader(
            id: randomBytes(16), origin: OriginID(info.id), seqFrom: 1, seqTo: UInt64(writes.count),
            senderKeyID: neighbour.signing.publicKey.id, recipientKeyID: t.hubIdentity.kx.publicKey.id,
            createdHLC: now, commune: Fixture.commune)
        let env = try Envelope.seal(
            header: header, body: ChangeSetBody(writes: writes, scopes: [rid: scope]), signer: neighbour.signing,
            key: keys.transmit)
        let hubKeys = try t.hubIdentity.kx.serverSessionKeys(client: neighbour.kx.publicKey)
        let opened = try Envelope.open(
            env.envelope, recipientKeyID: t.hubIdentity.kx.publicKey.id, author: neighbour.signing.publicKey,
            key: hubKeys.receive)
        _ = try IngestPipeline.apply(opened, from: info.id, store: t.hub)
        let audit = try t.hub.audit(record: rid)
        #expect(audit.count == 1 && audit[0].origin == info.id && audit[0].signatureValid)

        // The thief, same commune, sends three invalid writes over the neighbour's leaves.
        let later = HLC(millis: now.millis + 5, counter: 0)
        let tid = WriteID(hlc: later, origin: t.agent.origin)
        let bad = [
            FieldWrite(record: rid, field: "status", id: tid, prev: [nid], value: .string("archived")),
            FieldWrite(record: rid, field: "members", id: tid, prev: [nid], value: .int(9999)),
            FieldWrite(record: rid, field: "owner_id", id: tid, prev: [nid], value: .string("12")),
        ]
        let applied = try #require(try t.hub.agent(id: t.info.id)).appliedSeq
        let sealed = try t.seal(
            ChangeSetBody(writes: bad, scopes: [rid: scope]), seqFrom: applied + 1, seqTo: applied + 3, now: later)
        let o = try IngestPipeline.apply(try t.open(sealed.envelope), from: t.info.id, store: t.hub)
        #expect(o.result.quarantined == 3 && o.result.merged == 0)
        let view = try #require(try t.hub.record(rid))
        for f in ["status", "members", "owner_id"] {
            #expect(view.leaves[f]?.leaves.map(\.id) == [nid], "\(f) keeps the neighbour's leaf")
            #expect(o.notices.first { $0.refused.field == f }?.accepted?.id == nid)
        }
        #expect(try t.hub.audit(record: rid) == audit, "the audit still lists the neighbour's signed change set")
    }

    @Test(arguments: Backend.allCases) func theAuthorTakesTheAcceptedValueBackKeepsTheReasonAndConverges(
        _ backend: Backend
    ) throws {
        let dir = try TempDir("q-author")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let rid = try t.agent.create(
            form: try Fixture.form, commune: Fixture.commune, values: Fixture.rows(1, seed: 23)[0])
        try t.upload()
        let accepted = try #require(try t.hub.record(rid)?.leaves["status"]?.winner)
        // An agent whose local form is looser than the hub's (e.g. an edited catalog).
        var loose = try Fixture.form
        loose.fields = loose.fields.map {
            var f = $0; if f.name == "status" { f.choices = nil }; return f
        }
        try t.agent.putCatalog([
            CatalogItem(kind: .form, key: "land-record@1", seq: 2, json: Array(try JSONEncoder().encode(loose)))
        ])
        try t.agent.update(rid, values: ["status": .string("archived"), "members": .int(3)])
        let f = try #require(try t.freeze())
        let o = try IngestPipeline.apply(try t.open(f.envelope), from: t.info.id, store: t.hub)
        #expect(o.result.quarantined == 1 && o.result.merged == 1)
        // What a bundle's notices are made from (SPEC §12.4): the refused write, its id and reason.
        let open = try t.hub.openQuarantine(origin: t.info.id, limit: 10)
        #expect(open.count == 1 && open.first?.write.id == o.notices.first?.refused.id, "\(open.map(\.write))")
        #expect(open.first?.write.value == .string("archived") && open.first?.reason == o.notices.first?.reason)
        #expect(try t.hub.openQuarantine(origin: "a-someone-else", limit: 10).isEmpty)
        try t.agent.acknowledge(upTo: o.result.cursor)
        #expect(try t.agent.applyQuarantine(o.notices) == 1)

        let local = try #require(try t.agent.record(rid))
        #expect(local.fields["status"] == accepted, "the replica shows the hub's accepted value again")
        #expect(local.values["members"] == .int(3))
        let q = try t.agent.quarantined()
        #expect(
            q.count == 1 && q[0].field == "status" && q[0].value == "archived"
                && q[0].reason.contains("one of"))
        try t.download()
        #expect(try t.agent.fullState() == (try t.hub.winners(commune: Fixture.commune)))
    }

    @Test(arguments: Backend.allCases) func aChangeSetOverTheWriteBoundIsRefusedBeforeAnythingIsRead(_ backend: Backend)
        throws
    {
        let dir = try TempDir("q-bound")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let now = try t.agent.now()
        var rng = SystemRandomNumberGenerator()
        let rid = RecordID.v7(millis: now.millis, using: &rng)
        let n = IngestPipeline.maxWrites + 1
        let writes = (0..<n).map { i in
            FieldWrite(
                record: rid, field: "members", id: WriteID(hlc: HLC(raw: now.raw - UInt64(i)), origin: t.agent.origin),
                value: .int(1))
        }
        let scope = RecordScope(formID: "land-record", formVersion: 1, commune: Fixture.commune)
        let sealed = try t.seal(
            ChangeSetBody(writes: writes, scopes: [rid: scope]), seqFrom: 1, seqTo: UInt64(n), now: now)
        let e = #expect(throws: ChangeSetError.self) {
            try IngestPipeline.apply(try t.open(sealed.envelope), from: t.info.id, store: t.hub)
        }
        #expect(e?.code == .oversized && e?.message.contains("\(IngestPipeline.maxWrites)") == true)
        #expect(try t.hub.record(rid) == nil)
    }
}
