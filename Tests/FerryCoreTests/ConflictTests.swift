import FerryCore
import Testing

/// Edit-vs-delete and concurrent-write examples of DESIGN §4, built with the
/// same rules every replica uses (WriteRules) on hub registers (LeafRegister).
struct ConflictTests {
    static let record = RecordID(high: 0x0193_a5f2_7c1d_7e4b, low: 0x9a3f_2b6c_8d0e_1f42)
    static let a1 = OriginID("agent-1")
    static let a2 = OriginID("agent-2")

    /// The hub's registers of one record.
    struct Hub {
        var registers: [String: LeafRegister] = [:]
        var clock: UInt64 = 100

        mutating func apply(_ w: FieldWrite) {
            _ = registers[w.field, default: LeafRegister()].apply(w)
            clock = max(clock, w.id.hlc.millis)
        }
        var conflicts: [Conflict] { ConflictRules.conflicts(record: record, registers: registers) }

        /// An operator write, applied.
        @discardableResult
        mutating func operatorWrite(_ field: String, _ value: Value, resolve: Bool, covers: [WriteID] = [])
            -> FieldWrite
        {
            clock += 1
            let w = WriteRules.hub(
                record: record, field: field, value: value,
                id: WriteID(hlc: HLC(millis: clock, counter: 0), origin: .hub),
                leaves: registers[field] ?? LeafRegister(), deleted: registers[deletedField], resolve: resolve,
                covers: covers)
            apply(w)
            return w
        }
    }

    static func id(_ ms: UInt64, _ o: OriginID) -> WriteID { WriteID(hlc: HLC(millis: ms, counter: 0), origin: o) }

    /// An agent write made with WriteRules.local from what the agent holds.
    static func local(
        _ field: String, _ value: Value, at ms: UInt64, by o: OriginID, winner: FieldWrite?, deleted: FieldWrite? = nil,
        covers: [WriteID] = []
    ) -> FieldWrite {
        WriteRules.local(
            record: record, field: field, value: value, id: id(ms, o), winner: winner, pending: nil,
            deletedWinner: deleted,
            covers: covers)
    }

    @Test func twoAgentsEditingTheSameValueMakeAConcurrentWritesConflict() {
        var hub = Hub()
        let base = Self.local("owner", .string("Nguyễn Văn An"), at: 10, by: Self.a1, winner: nil)
        hub.apply(base)
        let e1 = Self.local("owner", .string("Nguyễn Văn Ân"), at: 20, by: Self.a1, winner: base)
        let e2 = Self.local("owner", .string("Nguyễn Văn Anh"), at: 21, by: Self.a2, winner: base)
        hub.apply(e1)
        hub.apply(e2)
        #expect(hub.registers["owner"]?.winner == e2)
        #expect(
            hub.conflicts == [Conflict(kind: .concurrentWrites, record: Self.record, field: "owner", writes: [e2, e1])])
    }

    @Test func aResolutionNamingEveryLeafEndsTheConflict() {
        var hub = Hub()
        let base = Self.local("owner", .string("An"), at: 10, by: Self.a1, winner: nil)
        hub.apply(base)
        hub.apply(Self.local("owner", .string("Ân"), at: 20, by: Self.a1, winner: base))
        hub.apply(Self.local("owner", .string("Anh"), at: 21, by: Self.a2, winner: base))
        // A plain edit names only the winner: the other leaf stays in conflict.
        hub.operatorWrite("owner", .string("Anh"), resolve: false)
        #expect(hub.registers["owner"]?.leaves.count == 2)
        #expect(hub.conflicts.map(\.kind) == [.concurrentWrites])
        let r = hub.operatorWrite("owner", .string("Ân"), resolve: true)
        #expect(hub.registers["owner"]?.leaves == [r])
        #expect(hub.conflicts == [])
    }

    @Test func anEditTheDeleterHadNotSeenIsAnEditVsDeleteConflict() {
        var hub = Hub()
        let owner = Self.local("owner", .string("Trần Thị Bích"), at: 10, by: Self.a1, winner: nil)
        hub.apply(owner)
        // agent-1 deletes having seen `owner`; agent-2 edits `owner`, not having seen the delete.
        let del = Self.local(deletedField, .bool(true), at: 30, by: Self.a1, winner: nil, covers: [owner.id])
        let edit = Self.local("owner", .string("Trần Thị Bích Ngọc"), at: 25, by: Self.a2, winner: owner)
        #expect(edit.alive == nil && del.covers == [owner.id])
        for order in [[del, edit], [edit, del]] {
            var h = hub
            for w in order { h.apply(w) }
            #expect(
                h.conflicts == [
                    Conflict(kind: .editVsDelete, record: Self.record, field: "owner", writes: [del, edit])
                ])
        }
    }

    @Test func aDeleteCoveringTheEditIsNoConflict() {
        var hub = Hub()
        let owner = Self.local("owner", .string("Lê Hoàng Nam"), at: 10, by: Self.a1, winner: nil)
        let area = Self.local("area_m2", .double(356.4), at: 11, by: Self.a1, winner: nil)
        hub.apply(owner)
        hub.apply(area)
        hub.apply(Self.local(deletedField, .bool(true), at: 20, by: Self.a2, winner: nil, covers: [owner.id, area.id]))
        #expect(hub.conflicts == [])
    }

    @Test func anEditByAnAuthorWhoSawTheDeleteIsNoConflict() {
        var hub = Hub()
        let del = Self.local(deletedField, .bool(true), at: 20, by: Self.a1, winner: nil)
        hub.apply(del)
        // The operator edits the deleted record: its write carries alive = the delete.
        let w = hub.operatorWrite("owner", .string("Đặng Quốc Việt"), resolve: false)
        #expect(w.alive == del.id)
        #expect(hub.conflicts == [])
    }

    @Test func anEditThatSawAnOlderDeleteConflictsWithANewerOne() {
        var hub = Hub()
        let d1 = Self.local(deletedField, .bool(true), at: 10, by: Self.a1, winner: nil)
        hub.apply(d1)
        let u = Self.local(deletedField, .bool(false), at: 20, by: Self.a1, winner: d1)
        hub.apply(u)
        let edit = Self.local("owner", .string("Hoàng Thị Lan"), at: 30, by: Self.a2, winner: nil, deleted: u)
        let d2 = Self.local(deletedField, .bool(true), at: 31, by: Self.a1, winner: u)
        hub.apply(edit)
        hub.apply(d2)
        #expect(edit.alive == u.id)
        #expect(hub.conflicts.map(\.kind) == [.editVsDelete])
    }

    @Test func undeletingOrDeletingAgainOverEveryLeafOrKeepingTheEditClearsEditVsDelete() {
        var hub = Hub()
        let owner = Self.local("owner", .string("An"), at: 10, by: Self.a1, winner: nil)
        hub.apply(owner)
        hub.apply(Self.local(deletedField, .bool(true), at: 30, by: Self.a1, winner: nil, covers: [owner.id]))
        hub.apply(Self.local("owner", .string("Ân"), at: 25, by: Self.a2, winner: owner))
        hub.apply(Self.local("area_m2", .double(12), at: 26, by: Self.a2, winner: nil))
        #expect(hub.conflicts.map(\.field) == ["area_m2", "owner"])

        var undeleted = hub
        undeleted.operatorWrite(deletedField, .bool(false), resolve: true)
        #expect(undeleted.conflicts == [])

        var redeleted = hub
        let leaves = hub.registers.filter { $0.key != deletedField }.flatMap { $0.value.leaves.map(\.id) }
        redeleted.operatorWrite(deletedField, .bool(true), resolve: true, covers: leaves)
        #expect(redeleted.conflicts == [])

        var kept = hub
        kept.operatorWrite("owner", .string("Ân"), resolve: true)
        #expect(kept.conflicts.map(\.field) == ["area_m2"])
    }

    @Test func concurrentDeleteAndUndeleteIsAConflictOnDeleted() {
        var hub = Hub()
        let d = Self.local(deletedField, .bool(true), at: 10, by: Self.a1, winner: nil)
        hub.apply(d)
        let u = Self.local(deletedField, .bool(false), at: 20, by: Self.a1, winner: d)
        let d2 = Self.local(deletedField, .bool(true), at: 21, by: Self.a2, winner: d)
        hub.apply(u)
        hub.apply(d2)
        #expect(
            hub.conflicts == [
                Conflict(kind: .concurrentWrites, record: Self.record, field: deletedField, writes: [d2, u])
            ])
        hub.operatorWrite(deletedField, .bool(false), resolve: true)
        #expect(hub.conflicts == [])
    }

    @Test func aLocalWriteReplacingAnUnsentOneKeepsWhatThatOneHadSeen() {
        let seen = Self.local("owner", .string("An"), at: 10, by: Self.a2, winner: nil)
        let first = Self.local("owner", .string("Ân"), at: 20, by: Self.a1, winner: seen)
        #expect(first.prev == [seen.id])
        // Offline again: the second edit replaces the unsent first one.
        let second = WriteRules.local(
            record: Self.record, field: "owner", value: .string("Anh"), id: Self.id(30, Self.a1), winner: first,
            pending: first, deletedWinner: nil)
        #expect(second.prev == [seen.id])
        // A hub write arrived in between and won: the replacement names it too.
        let hubWrite = Self.local("owner", .string("Ánh"), at: 25, by: .hub, winner: seen)
        let third = WriteRules.local(
            record: Self.record, field: "owner", value: .string("Anh"), id: Self.id(31, Self.a1), winner: hubWrite,
            pending: first, deletedWinner: nil)
        #expect(third.prev == [hubWrite.id, seen.id].sorted())
    }

    @Test func onlyDeleteWritesCarryCoversAndOnlyFieldWritesCarryAlive() {
        let d = Self.local(deletedField, .bool(true), at: 10, by: Self.a1, winner: nil, covers: [Self.id(5, Self.a1)])
        let f = Self.local(
            "owner", .string("An"), at: 11, by: Self.a1, winner: nil, deleted: d, covers: [Self.id(5, Self.a1)])
        #expect(d.isDelete && d.alive == nil && d.covers == [Self.id(5, Self.a1)])
        #expect(!f.isDelete && f.alive == d.id && f.covers == [])
        #expect(
            !FieldWrite(record: Self.record, field: deletedField, id: Self.id(12, Self.a1), value: .bool(false))
                .isDelete)
    }

    @Test func aWriteNamingALaterWriteViolatesCausality() {
        let w = FieldWrite(
            record: Self.record, field: "owner", id: Self.id(10, Self.a1), prev: [Self.id(10, Self.a2)], value: .null)
        #expect(w.violatesCausality)
        let ok = FieldWrite(
            record: Self.record, field: "owner", id: Self.id(10, Self.a1), prev: [Self.id(9, Self.a2)], value: .null)
        #expect(!ok.violatesCausality)
    }
}
