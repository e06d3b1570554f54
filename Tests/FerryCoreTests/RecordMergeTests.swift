import FerryCore
import Testing

/// The hub's merge of one record's writes (SPEC §8.3, §8.6) as a pure function.
struct RecordMergeTests {
    static let rid = RecordID(bytes: [UInt8](repeating: 7, count: 16))!

    static func w(_ field: String, _ ms: UInt64, _ origin: String, prev: [WriteID] = [], _ v: Value = .int(1))
        -> FieldWrite
    {
        FieldWrite(
            record: rid, field: field, id: WriteID(hlc: HLC(millis: ms, counter: 0), origin: OriginID(origin)),
            prev: prev, value: v)
    }

    @Test func addedAndRemovedLeavesAreWhatChangedAcrossTheWholeBatch() {
        let a = Self.w("status", 10, "a")
        let start = ["status": LeafRegister(leaves: [a])]
        let b = Self.w("status", 20, "b", prev: [a.id])
        let c = Self.w("status", 30, "c", prev: [b.id])
        let m = RecordMerge(record: Self.rid, registers: start, writes: [b, c])
        // b came and went inside the batch: only c is new, only a is gone.
        #expect(m.added == [c])
        #expect(m.removed.map(\.id) == [a.id])
        #expect(m.registers["status"]?.leaves == [c])
        #expect(!m.conflictsChanged)
        // Re-applying the same batch changes nothing.
        let again = RecordMerge(record: Self.rid, registers: m.registers, writes: [b, c])
        #expect(again.added.isEmpty && again.removed.isEmpty)
    }

    @Test func conflictsAndTheDeletedFlagAreComputedBeforeAndAfter() {
        let a = Self.w("status", 10, "a")
        let b = Self.w("status", 11, "b")
        let m = RecordMerge(record: Self.rid, registers: [:], writes: [a, b])
        #expect(m.conflictsAfter == [RecordMerge.ConflictKey(field: "status", kind: .concurrentWrites)])
        #expect(m.conflictsChanged)
        let del = Self.w(deletedField, 12, "hub", .bool(true))
        let d = RecordMerge(record: Self.rid, registers: m.registers, writes: [del])
        #expect(!d.wasDeleted && d.isDeleted)
        #expect(d.conflictsAfter.contains(RecordMerge.ConflictKey(field: "status", kind: .editVsDelete)))
        let resolve = Self.w("status", 13, "hub", prev: [a.id, b.id])
        let r = RecordMerge(record: Self.rid, registers: m.registers, writes: [resolve])
        #expect(r.conflictsAfter.isEmpty && r.conflictsChanged)
    }

    @Test func aFieldHoldsAtMostTheBoundOfConcurrentValues() {
        let first = (0..<RecordMerge.maxLeaves).map { Self.w("members", UInt64(100 + $0), "a\($0)") }
        let full = RecordMerge(record: Self.rid, registers: [:], writes: first)
        #expect(full.registers["members"]?.leaves.count == RecordMerge.maxLeaves && full.refused.isEmpty)
        let extra = Self.w("members", 500, "z")
        let m = RecordMerge(record: Self.rid, registers: full.registers, writes: [extra])
        #expect(m.added.isEmpty && m.refused.count == 1)
        #expect(m.refused.first?.reason.contains("limit is \(RecordMerge.maxLeaves)") == true)
        // A write that supersedes a leaf is still accepted: it does not add a value.
        let follow = Self.w("members", 600, "a0", prev: [first[0].id])
        #expect(RecordMerge(record: Self.rid, registers: full.registers, writes: [follow]).added == [follow])
        // So is a resolution.
        let resolve = Self.w("members", 700, "hub", prev: first.map(\.id))
        let r = RecordMerge(record: Self.rid, registers: full.registers, writes: [resolve])
        #expect(r.registers["members"]?.leaves == [resolve])
    }

    @Test func aNewRecordMergesTheSameOnTheFastPathAsOnTheGeneralOne() {
        let a = WriteID(hlc: HLC(millis: 50, counter: 0), origin: OriginID("a"))
        let cases: [[FieldWrite]] = [
            [Self.w("name", 10, "a"), Self.w("area", 11, "a", .double(2.5)), Self.w("owner", 12, "a", .string("Võ"))],
            [Self.w("name", 10, "a"), Self.w(deletedField, 60, "a", prev: [], .bool(true))],
            [Self.w(deletedField, 40, "a", .bool(true)), Self.w("name", 70, "a", prev: [a])],
            [Self.w("name", 10, "a"), Self.w("name", 20, "b")],  // not distinct: the general path only
            [],
        ]
        for writes in cases {
            let fast = RecordMerge(record: Self.rid, registers: [:], writes: writes)
            let slow = RecordMerge(record: Self.rid, registers: [:], writes: writes, allowFastPath: false)
            #expect(fast.registers == slow.registers)
            #expect(fast.added == slow.added)
            #expect(fast.removed.isEmpty && slow.removed.isEmpty)
            #expect(fast.refused.isEmpty && slow.refused.isEmpty)
            #expect(fast.conflictsAfter == slow.conflictsAfter)
            #expect(fast.isDeleted == slow.isDeleted)
        }
        // The cases mean something: one makes a conflict, one a deleted record.
        #expect(RecordMerge(record: Self.rid, registers: [:], writes: cases[1]).isDeleted)
        #expect(!RecordMerge(record: Self.rid, registers: [:], writes: cases[2]).conflictsAfter.isEmpty)
    }
}
