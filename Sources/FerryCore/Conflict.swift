/// A conflict an operator should look at (DESIGN §4).
public struct Conflict: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, Codable {
        /// Several leaves of one field: concurrent writes.
        case concurrentWrites = "concurrent_writes"
        /// A field write whose author had not seen the record's delete (or a
        /// delete whose author had not seen the write).
        case editVsDelete = "edit_vs_delete"
    }

    public var kind: Kind
    public var record: RecordID
    /// The field in conflict (for edit-vs-delete: the edited field).
    public var field: String
    /// The writes involved, highest id first; for edit-vs-delete the delete comes first.
    public var writes: [FieldWrite]

    public init(kind: Kind, record: RecordID, field: String, writes: [FieldWrite]) {
        self.kind = kind
        self.record = record
        self.field = field
        self.writes = writes
    }
}

/// The conflict rules, as pure functions of a record's registers.
public enum ConflictRules {
    /// The conflicts of one record, given every field's leaves.
    ///
    /// Depends only on the leaves, so only on the set of writes applied:
    /// - a field with more than one leaf is a concurrent-writes conflict;
    /// - when the `_deleted` winner D is `true`, every leaf W of another field
    ///   with `W.alive != D.id` (its author had not seen D) and W not in
    ///   `D.covers` (D's author had not seen W) is an edit-vs-delete conflict.
    public static func conflicts(record: RecordID, registers: [String: LeafRegister]) -> [Conflict] {
        var out: [Conflict] = []
        for (field, reg) in registers.sorted(by: { $0.key < $1.key }) where reg.isConflict {
            out.append(Conflict(kind: .concurrentWrites, record: record, field: field, writes: reg.leaves))
        }
        guard let del = registers[deletedField]?.winner, del.isDelete else { return out }
        for (field, reg) in registers.sorted(by: { $0.key < $1.key }) where field != deletedField {
            for leaf in reg.leaves where leaf.alive != del.id && !del.covers.contains(leaf.id) {
                out.append(Conflict(kind: .editVsDelete, record: record, field: field, writes: [del, leaf]))
            }
        }
        return out
    }
}

/// How a replica makes its own writes, so every replica (agent store, hub
/// operator, in-memory doubles) follows the same rules.
public enum WriteRules {
    /// A local write by a replica that keeps only winners (an agent).
    ///
    /// - Parameters:
    ///   - winner: the field's current winner at this replica.
    ///   - pending: an unsent local write of the same field; the new write
    ///     replaces it (several offline edits leave as one write), keeping
    ///     what that write had seen.
    ///   - deletedWinner: the record's `_deleted` winner at this replica.
    ///   - covers: for a `_deleted` write, what it covers (``covers(field:value:seen:)``).
    public static func local(
        record: RecordID, field: String, value: Value, id: WriteID, winner: FieldWrite?, pending: FieldWrite?,
        deletedWinner: FieldWrite?, covers: [WriteID] = []
    ) -> FieldWrite {
        var prev = Set(pending?.prev ?? [])
        if let w = winner, w.id != pending?.id { prev.insert(w.id) }
        let isDeleted = field == deletedField
        return FieldWrite(
            record: record, field: field, id: id, prev: Array(prev), value: value,
            alive: isDeleted ? nil : deletedWinner?.id, covers: isDeleted ? covers : [])
    }

    /// A write by the hub's operator. With `resolve`, `prev` names every leaf,
    /// which ends a concurrent-writes conflict; otherwise it names the winner.
    public static func hub(
        record: RecordID, field: String, value: Value, id: WriteID, leaves: LeafRegister, deleted: LeafRegister?,
        resolve: Bool, covers: [WriteID] = []
    ) -> FieldWrite {
        let prev = resolve ? leaves.leaves.map(\.id) : (leaves.winner.map { [$0.id] } ?? [])
        let isDeleted = field == deletedField
        return FieldWrite(
            record: record, field: field, id: id, prev: prev, value: value,
            alive: isDeleted ? nil : deleted?.winner?.id, covers: isDeleted ? covers : [])
    }

    /// What a write of `field` = `value` covers (DESIGN §4): a delete
    /// (`_deleted` = true) names every write of the record's other fields its
    /// author has seen, so none of them is an edit-vs-delete conflict; any
    /// other write covers nothing.
    ///
    /// - Parameter seen: per field, the ids the author holds: an agent keeps
    ///   only winners, the hub every leaf (so an operator's delete also ends
    ///   the edit-vs-delete conflicts it was shown).
    /// - Returns: the ids in ascending order, each once.
    public static func covers(field: String, value: Value, seen: [String: [WriteID]]) -> [WriteID] {
        guard field == deletedField, value == .bool(true) else { return [] }
        var ids = Set<WriteID>()
        for (f, list) in seen where f != deletedField { ids.formUnion(list) }
        return ids.sorted()
    }

    /// Re-stamping writes that no other replica has accepted (the hub refused
    /// them for timestamps from a clock that ran ahead, SPEC §7.3): every
    /// write they name and every winner others have seen must stay older than
    /// the new stamps, so the clock restarts just above ``restampFloor(queued:held:)``.
    ///
    /// - Parameters:
    ///   - queued: the writes about to be re-stamped.
    ///   - held: ids of writes the replica holds that others have seen (its winners).
    /// - Returns: the newest timestamp among the writes the queued ones name
    ///   and the held ones, excluding the queued writes themselves.
    public static func restampFloor(queued: [FieldWrite], held: some Sequence<WriteID>) -> HLC {
        let mine = Set(queued.map(\.id))
        var floor = HLC.zero
        for w in queued {
            for r in w.prev + w.covers + (w.alive.map { [$0] } ?? []) where !mine.contains(r) && r.hlc > floor {
                floor = r.hlc
            }
        }
        for id in held where !mine.contains(id) && id.hlc > floor { floor = id.hlc }
        return floor
    }

    /// One record's queued writes under a fresh id (`stamp`), with the
    /// record's winners that were those writes moved along.
    /// - Returns: the re-stamped pending writes and the record's winners.
    public static func restamp(
        pending: [String: FieldWrite], winners: [String: FieldWrite], as stamp: WriteID
    ) -> (pending: [String: FieldWrite], winners: [String: FieldWrite]) {
        var winners = winners
        var fresh: [String: FieldWrite] = [:]
        for (f, var w) in pending {
            let wasWinner = winners[f]?.id == w.id
            w.id = stamp
            if wasWinner { winners[f] = w }
            fresh[f] = w
        }
        return (fresh, winners)
    }
}
