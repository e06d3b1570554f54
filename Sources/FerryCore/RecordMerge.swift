/// Merging a batch of writes into one record's leaves at the hub (SPEC §8.3,
/// §8.6): the rules as one pure function, so every store persists exactly what
/// it returns and nothing else decides what a leaf is.
public struct RecordMerge: Sendable {
    /// Every field's leaves after the batch.
    public private(set) var registers: [String: LeafRegister]
    /// Writes that became leaves (and still are after the whole batch), in apply order.
    public private(set) var added: [FieldWrite] = []
    /// Leaves that were there before the batch and were superseded by it.
    public private(set) var removed: [(field: String, id: WriteID)] = []
    /// Writes refused by a bound, with the reason (the caller quarantines them).
    public private(set) var refused: [(write: FieldWrite, reason: String)] = []
    /// The record's conflicts before and after (``ConflictRules``).
    public let conflictsBefore: Set<ConflictKey>
    public private(set) var conflictsAfter: Set<ConflictKey> = []
    /// Whether the `_deleted` winner said true before and after.
    public let wasDeleted: Bool
    public private(set) var isDeleted = false

    /// The most leaves one field may hold: every leaf is an unresolved concurrent
    /// value, and applying a write costs time in their number, so a field that
    /// already holds this many accepts no further concurrent value until an
    /// operator resolves it (the write is quarantined with the reason, not lost).
    public static let maxLeaves = 32

    /// A (field, kind) pair: what the hub's conflict list holds per record.
    public struct ConflictKey: Sendable, Hashable, Comparable {
        public var field: String
        public var kind: Conflict.Kind
        public init(field: String, kind: Conflict.Kind) {
            self.field = field
            self.kind = kind
        }
        public static func < (a: ConflictKey, b: ConflictKey) -> Bool {
            (a.field, a.kind.rawValue) < (b.field, b.kind.rawValue)
        }
    }

    /// Applies `writes` (validated, all of `record`) in order to `registers`.
    public init(
        record: RecordID, registers: [String: LeafRegister], writes: [FieldWrite], maxLeaves: Int = maxLeaves
    ) {
        self.init(record: record, registers: registers, writes: writes, maxLeaves: maxLeaves, allowFastPath: true)
    }

    /// - Parameter allowFastPath: false forces the general path (for the test
    ///   that proves both paths give the same merge).
    public init(
        record: RecordID, registers: [String: LeafRegister], writes: [FieldWrite], maxLeaves: Int = maxLeaves,
        allowFastPath: Bool
    ) {
        self.registers = registers
        conflictsBefore = Self.conflictKeys(record, registers)
        wasDeleted = registers[deletedField]?.winner?.isDelete == true
        // A record the hub does not hold yet, one write per field (what an
        // agent sends for a new record): every write becomes its field's only
        // leaf, and nothing is removed, superseded or refused by a bound.
        if allowFastPath, registers.isEmpty, maxLeaves >= 1, Self.fieldsAreDistinct(writes) {
            var regs: [String: LeafRegister] = [:]
            regs.reserveCapacity(writes.count)
            for w in writes { regs[w.field] = LeafRegister(leaves: [w]) }
            self.registers = regs
            added = writes
            conflictsAfter = Self.conflictKeys(record, regs)
            isDeleted = regs[deletedField]?.winner?.isDelete == true
            return
        }
        let before = Set(registers.flatMap { f, r in r.leaves.map { FieldIDKey(field: f, id: $0.id) } })
        var addedKeys = Set<FieldIDKey>()
        var removedKeys = Set<FieldIDKey>()
        for w in writes {
            var reg = self.registers[w.field] ?? LeafRegister()
            let old = reg.leaves.map(\.id)
            let isNewConcurrent = !old.contains(w.id) && !old.contains(where: w.prev.contains)
            if isNewConcurrent && old.count >= maxLeaves && !reg.leaves.contains(where: { $0.prev.contains(w.id) }) {
                refused.append(
                    (
                        w,
                        "field '\(w.field)' of record \(record) already holds \(old.count) unresolved values (the limit is \(maxLeaves)): an operator must resolve the conflict first"
                    ))
                continue
            }
            guard case .applied = reg.apply(w) else { continue }
            let now = Set(reg.leaves.map(\.id))
            for gone in old where !now.contains(gone) {
                let k = FieldIDKey(field: w.field, id: gone)
                if addedKeys.remove(k) == nil, before.contains(k) { removedKeys.insert(k) }
            }
            addedKeys.insert(FieldIDKey(field: w.field, id: w.id))
            self.registers[w.field] = reg
        }
        // Keep apply order for the leaves that survived the batch.
        var seen = Set<FieldIDKey>()
        for w in writes {
            let k = FieldIDKey(field: w.field, id: w.id)
            if addedKeys.contains(k), seen.insert(k).inserted { added.append(w) }
        }
        removed = removedKeys.sorted { ($0.field, $0.id) < ($1.field, $1.id) }.map { ($0.field, $0.id) }
        conflictsAfter = Self.conflictKeys(record, self.registers)
        isDeleted = self.registers[deletedField]?.winner?.isDelete == true
    }

    static func fieldsAreDistinct(_ writes: [FieldWrite]) -> Bool {
        var seen = Set<String>(minimumCapacity: writes.count)
        for w in writes where !seen.insert(w.field).inserted { return false }
        return true
    }

    /// True when the stored conflict list of the record must change.
    public var conflictsChanged: Bool { conflictsBefore != conflictsAfter }

    static func conflictKeys(_ record: RecordID, _ registers: [String: LeafRegister]) -> Set<ConflictKey> {
        Set(
            ConflictRules.conflicts(record: record, registers: registers).map {
                ConflictKey(field: $0.field, kind: $0.kind)
            })
    }

    struct FieldIDKey: Hashable {
        var field: String
        var id: WriteID
    }
}

/// What the hub tells the author of a quarantined write (SPEC §8.9): never a
/// new leaf. The author's replica replaces its refused value by the field's
/// accepted winner, or drops it when the hub holds no accepted value.
public struct QuarantineNotice: Sendable, Hashable {
    public var refused: FieldWrite
    public var reason: String
    /// The field's current accepted winner at the hub, if any.
    public var accepted: FieldWrite?

    public init(refused: FieldWrite, reason: String, accepted: FieldWrite?) {
        self.refused = refused
        self.reason = reason
        self.accepted = accepted
    }
}
