import FerryCore
import Testing

/// `covers` and re-stamping: the rules every replica (agent store, hub
/// operator, memory doubles) takes from WriteRules instead of computing its own.
struct WriteRulesTests {
    static let record = RecordID(high: 0x0193_a5f2_7c1d_7e4b, low: 0x9a3f_2b6c_8d0e_1f43)
    static let a1 = OriginID("agent-1")
    static func mk(_ ms: UInt64, _ o: OriginID = a1) -> WriteID { WriteID(hlc: HLC(millis: ms, counter: 0), origin: o) }
    static func write(_ field: String, _ ms: UInt64, prev: [WriteID] = [], alive: WriteID? = nil) -> FieldWrite {
        FieldWrite(record: record, field: field, id: mk(ms), prev: prev, value: .int(Int64(ms)), alive: alive)
    }

    @Test func aDeleteCoversEverySeenWriteOfTheOtherFieldsOnceAndInOrder() {
        let seen: [String: [WriteID]] = [
            "name": [Self.mk(30), Self.mk(10, .hub)], "area": [Self.mk(20)], deletedField: [Self.mk(5)],
            "dup": [Self.mk(20)],
        ]
        let c = WriteRules.covers(field: deletedField, value: .bool(true), seen: seen)
        #expect(c == [Self.mk(10, .hub), Self.mk(20), Self.mk(30)].sorted())
        #expect(!c.contains(Self.mk(5)), "a delete does not cover the earlier _deleted writes")
    }

    @Test func undeletesAndFieldWritesCoverNothing() {
        let seen: [String: [WriteID]] = ["name": [Self.mk(30)]]
        #expect(WriteRules.covers(field: deletedField, value: .bool(false), seen: seen).isEmpty)
        #expect(WriteRules.covers(field: "name", value: .bool(true), seen: seen).isEmpty)
        #expect(WriteRules.covers(field: deletedField, value: .bool(true), seen: [:]).isEmpty)
    }

    @Test func anOperatorDeleteOverEveryLeafEndsTheEditVsDeleteConflicts() {
        // Two concurrent edits of "name", then a delete that saw only the winner:
        // the losing leaf stays an edit-vs-delete conflict; covering every leaf ends it.
        var regs: [String: LeafRegister] = [:]
        _ = regs["name", default: LeafRegister()].apply(Self.write("name", 10))
        _ = regs["name", default: LeafRegister()].apply(
            FieldWrite(
                record: Self.record, field: "name", id: Self.mk(11, OriginID("agent-2")), prev: [], value: .int(2)))
        for (seen, expected) in [
            (regs.mapValues { $0.winner.map { [$0.id] } ?? [] }, 1),
            (regs.mapValues { $0.leaves.map(\.id) }, 0),
        ] {
            var r = regs
            let d = WriteRules.hub(
                record: Self.record, field: deletedField, value: .bool(true), id: Self.mk(50, .hub),
                leaves: LeafRegister(), deleted: nil, resolve: false,
                covers: WriteRules.covers(field: deletedField, value: .bool(true), seen: seen))
            _ = r[deletedField, default: LeafRegister()].apply(d)
            let evd = ConflictRules.conflicts(record: Self.record, registers: r).filter { $0.kind == .editVsDelete }
            #expect(evd.count == expected)
        }
    }

    @Test func theRestampFloorIsTheNewestWriteOthersHaveSeenOrTheQueuedOnesName() {
        let queued = [Self.write("a", 900, prev: [Self.mk(40)]), Self.write("b", 950, alive: Self.mk(60, .hub))]
        // The queued writes' own ids (900, 950) never raise the floor, even when held as winners.
        #expect(
            WriteRules.restampFloor(queued: queued, held: [Self.mk(900), Self.mk(950), Self.mk(55)])
                == HLC(millis: 60, counter: 0))
        #expect(WriteRules.restampFloor(queued: queued, held: [Self.mk(70)]) == HLC(millis: 70, counter: 0))
        #expect(WriteRules.restampFloor(queued: [], held: []) == .zero)
    }

    @Test func restampingMovesTheWinnersThatWereTheQueuedWritesAndNoOthers() {
        let mine = Self.write("a", 900)
        let other = FieldWrite(record: Self.record, field: "b", id: Self.mk(30, .hub), prev: [], value: .int(1))
        let older = Self.write("c", 20)
        let pendingC = Self.write("c", 910, prev: [older.id])
        let stamp = Self.mk(100)
        let r = WriteRules.restamp(
            pending: ["a": mine, "c": pendingC], winners: ["a": mine, "b": other, "c": older], as: stamp)
        #expect(r.pending["a"]?.id == stamp && r.pending["c"]?.id == stamp)
        #expect(r.pending["c"]?.prev == [older.id], "what the write had seen is kept")
        #expect(r.winners["a"]?.id == stamp, "the winner that was the queued write moves with it")
        #expect(r.winners["b"] == other)
        #expect(r.winners["c"] == older, "a winner that was not the queued write stays")
    }
}
