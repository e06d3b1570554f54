/// The reserved field that marks a record deleted (DESIGN §4: deletes are
/// ordinary field writes, so undelete works).
public let deletedField = "_deleted"

/// One write to one field of one record: the unit the merge works on.
public struct FieldWrite: Sendable, Hashable {
    /// The record written.
    public var record: RecordID
    /// The field name (``deletedField`` for deletes and undeletes).
    public var field: String
    /// (hlc, origin) of this write.
    public var id: WriteID
    /// The write id(s) of the value its author saw for this field, sorted.
    public var prev: [WriteID]
    /// The new value.
    public var value: Value
    /// For an ordinary field: the `_deleted` write its author held when writing
    /// (nil if the author had none). Decides edit-vs-delete conflicts.
    public var alive: WriteID?
    /// For a `_deleted` write: the field writes its author held, sorted.
    public var covers: [WriteID]

    public init(
        record: RecordID, field: String, id: WriteID, prev: [WriteID] = [], value: Value, alive: WriteID? = nil,
        covers: [WriteID] = []
    ) {
        self.record = record
        self.field = field
        self.id = id
        self.prev = prev.sorted()
        self.value = value
        self.alive = alive
        self.covers = covers.sorted()
    }

    /// True when this write claims to have seen a write with an equal or later
    /// timestamp, which a correct hybrid logical clock never produces.
    public var violatesCausality: Bool {
        prev.contains { $0.hlc >= id.hlc }
    }

    /// True for a write of ``deletedField`` with value `true`.
    public var isDelete: Bool { field == deletedField && value == .bool(true) }
}

/// The key of one field register.
public struct FieldKey: Sendable, Hashable, Comparable {
    public var record: RecordID
    public var field: String
    public init(record: RecordID, field: String) {
        self.record = record
        self.field = field
    }
    public static func < (a: FieldKey, b: FieldKey) -> Bool {
        a.record != b.record ? a.record < b.record : a.field < b.field
    }
}
