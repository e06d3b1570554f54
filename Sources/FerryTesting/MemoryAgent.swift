import FerryCore

/// An in-memory agent built only from the FerryCore rules: one
/// ``WinnerRegister`` per field, an outbox of unsent writes coalesced per
/// (record, field) with ``WriteRules/local(record:field:value:id:winner:pending:deletedWinner:covers:)``,
/// change sets numbered by a per-origin sequence that counts writes, and a
/// cursor in the hub's stream (DESIGN §4).
///
/// The agent owns one commune and writes only that commune's records. A value
/// type: copy it to snapshot it.
public struct MemoryAgent: Sendable {
    /// This agent's origin id.
    public let origin: OriginID
    /// The commune this agent owns.
    public let commune: String
    /// The agent's clock; it observes every write it receives.
    public var clock: HybridLogicalClock
    /// The winner of every field this agent knows.
    public private(set) var registers: [FieldKey: WinnerRegister] = [:]
    /// Unsent local writes, one per field.
    public private(set) var outbox: [FieldKey: FieldWrite] = [:]
    /// Every change set frozen so far, oldest first; the transport may send any again.
    public private(set) var frozen: [MemoryChangeSet] = []
    /// The last sequence number given to a write (0 = none yet).
    public private(set) var lastSeq: UInt64 = 0
    /// Position in the hub's stream: everything up to it was received.
    public private(set) var cursor: UInt64 = 0
    /// Records this agent knows, in the order it learnt them (stable picks for tests).
    public private(set) var records: [RecordID] = []
    private var known: Set<RecordID> = []

    public init(origin: OriginID, commune: String, clock: HybridLogicalClock) {
        self.origin = origin
        self.commune = commune
        self.clock = clock
    }

    // MARK: Reading

    /// The field's winner at this agent.
    public func winner(_ record: RecordID, _ field: String) -> FieldWrite? {
        registers[FieldKey(record: record, field: field)]?.winner
    }

    /// True when the record's `_deleted` winner is a delete.
    public func isDeleted(_ record: RecordID) -> Bool {
        winner(record, deletedField)?.isDelete ?? false
    }

    /// Every winner this agent holds.
    public var winners: [FieldKey: FieldWrite] {
        registers.compactMapValues(\.winner)
    }

    // MARK: Local writes

    /// Creates a record of this agent's commune and writes its first values.
    @discardableResult
    public mutating func create(record: RecordID, values: [String: Value]) throws(MemoryReplicaError) -> [FieldWrite] {
        learn(record)
        var out: [FieldWrite] = []
        for (field, value) in values.sorted(by: { $0.key < $1.key }) {
            out.append(try write(record: record, field: field, value: value))
        }
        return out
    }

    /// Writes one field of a record of this agent's commune.
    /// - Throws: ``MemoryReplicaError`` when the record is unknown here, or
    ///   deleted and the write is not an undelete.
    @discardableResult
    public mutating func write(record: RecordID, field: String, value: Value) throws(MemoryReplicaError) -> FieldWrite {
        guard known.contains(record) else {
            throw MemoryReplicaError(.foreignRecord, "\(origin) does not hold record \(record)")
        }
        // An agent edits a deleted record only to undelete it.
        if isDeleted(record), !(field == deletedField && value == .bool(false)) {
            throw MemoryReplicaError(.recordDeleted, "record \(record) is deleted; undelete it first")
        }
        let key = FieldKey(record: record, field: field)
        // A delete covers the winners of the record's other fields: what its author saw.
        let covers =
            field == deletedField && value == .bool(true)
            ? registers.filter { $0.key.record == record && $0.key.field != deletedField }.compactMap {
                $0.value.winner?.id
            }
            : []
        let w = WriteRules.local(
            record: record, field: field, value: value, id: WriteID(hlc: clock.now(), origin: origin),
            winner: registers[key]?.winner, pending: outbox[key], deletedWinner: winner(record, deletedField),
            covers: covers)
        registers[key, default: WinnerRegister()].apply(w)
        outbox[key] = w
        return w
    }

    /// Deletes a record (writes `_deleted` = true).
    @discardableResult
    public mutating func delete(record: RecordID) throws(MemoryReplicaError) -> FieldWrite {
        try write(record: record, field: deletedField, value: .bool(true))
    }

    /// Undeletes a record (writes `_deleted` = false).
    @discardableResult
    public mutating func undelete(record: RecordID) throws(MemoryReplicaError) -> FieldWrite {
        try write(record: record, field: deletedField, value: .bool(false))
    }

    // MARK: Sync

    /// Freezes the outbox into the next change set, numbered one sequence
    /// number per write; nil when there is nothing to send.
    public mutating func freeze() -> MemoryChangeSet? {
        guard !outbox.isEmpty else { return nil }
        // Ascending id is a causal order: a write's references all have lower ids.
        let writes = outbox.values.sorted { $0.id < $1.id }
        let cs = MemoryChangeSet(
            origin: origin, commune: commune, seqFrom: lastSeq + 1, seqTo: lastSeq + UInt64(writes.count),
            writes: writes)
        lastSeq = cs.seqTo
        outbox = [:]
        frozen.append(cs)
        return cs
    }

    /// Applies the hub's answer to a pull, in hub order, and moves the cursor.
    /// Answers may arrive late or twice: the registers keep the maximum and
    /// the cursor never moves back.
    /// - Throws: ``MemoryReplicaError`` (future timestamp) before applying anything.
    public mutating func apply(_ changes: HubChanges) throws(MemoryReplicaError) {
        for w in changes.writes {
            do { try clock.check(w.id.hlc) } catch { throw MemoryReplicaError(.futureTimestamp, error.description) }
        }
        for w in changes.writes {
            // Observed so that this agent's later writes follow what it saw (DESIGN §4, clock).
            try? clock.observe(w.id.hlc)
            learn(w.record)
            registers[FieldKey(record: w.record, field: w.field), default: WinnerRegister()].apply(w)
        }
        cursor = max(cursor, changes.head)
    }

    private mutating func learn(_ record: RecordID) {
        if known.insert(record).inserted { records.append(record) }
    }
}
