import FerryCore

/// An in-memory hub built only from the FerryCore rules: one ``LeafRegister``
/// per field, one ``OriginSequence`` per origin, and a stream in which every
/// leaf insertion gets the next hub sequence number (DESIGN §4).
///
/// A value type: copy it to snapshot it.
public struct MemoryHub: Sendable {
    /// The hub's hybrid logical clock; it observes every write it applies.
    public var clock: HybridLogicalClock
    /// Current leaves of every field.
    public private(set) var registers: [FieldKey: LeafRegister] = [:]
    /// Each origin's position in its own sequence.
    public private(set) var sequences: [OriginID: OriginSequence] = [:]
    /// The last hub sequence number given to a leaf insertion (0 = none yet).
    public private(set) var head: UInt64 = 0
    /// The commune of every record the hub knows.
    public private(set) var communes: [RecordID: String] = [:]
    /// Records in the order the hub learnt them (stable picks for tests).
    public private(set) var recordOrder: [RecordID] = []
    /// Every write that became a leaf, in the order applied.
    public private(set) var log: [FieldWrite] = []
    // The hub sequence number of each current leaf.
    private var leafSeq: [FieldKey: [WriteID: UInt64]] = [:]

    /// - Parameter clock: the hub's clock.
    public init(clock: HybridLogicalClock) {
        self.clock = clock
    }

    // MARK: Receiving

    /// Receives an agent's change set: applies it when it is exactly the next
    /// range of its origin, acknowledges a re-delivery without applying
    /// anything, and refuses a gap or an overlap (DESIGN §4, order).
    /// - Returns: the verdict; only `.apply` changed anything.
    /// - Throws: ``MemoryReplicaError`` when the change set is not the author's
    ///   to send (range does not count the writes, a write by another origin,
    ///   a record of another commune), names a write that is not earlier
    ///   (causality), or carries a timestamp too far ahead.
    public mutating func receive(_ cs: MemoryChangeSet) throws(MemoryReplicaError) -> SequenceVerdict {
        var seq = sequences[cs.origin] ?? OriginSequence()
        let verdict = seq.classify(from: cs.seqFrom, to: cs.seqTo)
        guard verdict == .apply else { return verdict }
        guard cs.seqTo - cs.seqFrom + 1 == UInt64(cs.writes.count) else {
            throw MemoryReplicaError(.malformed, "range \(cs.seqFrom)...\(cs.seqTo) for \(cs.writes.count) writes")
        }
        for w in cs.writes {
            guard w.id.origin == cs.origin else {
                throw MemoryReplicaError(.malformed, "write \(w.id) is not by \(cs.origin)")
            }
            if let c = communes[w.record], c != cs.commune {
                throw MemoryReplicaError(.foreignRecord, "record \(w.record) is in commune \(c), not \(cs.commune)")
            }
            // As ReceiveChecks: a write names only writes with lower timestamps.
            let refs = w.prev + w.covers + (w.alive.map { [$0] } ?? [])
            if let r = refs.first(where: { $0.hlc >= w.id.hlc }) {
                throw MemoryReplicaError(.causality, "write \(w.id) names \(r), which is not earlier")
            }
            do { try clock.check(w.id.hlc) } catch {
                throw MemoryReplicaError(.futureTimestamp, error.description)
            }
        }
        for w in cs.writes {
            // Cannot throw: every timestamp passed the same check above.
            do { try apply(w, commune: cs.commune) } catch {
                throw MemoryReplicaError(.futureTimestamp, error.description)
            }
        }
        seq.advance(to: cs.seqTo)
        sequences[cs.origin] = seq
        return .apply
    }

    /// Applies one write to its field's leaves (no sequence check) and gives a
    /// new leaf the next hub sequence number. The caller guarantees causal
    /// order: the write's prev, alive and covers were applied first.
    /// - Parameter commune: the record's commune, recorded when the record is new.
    /// - Throws: ``ClockError`` when the write's timestamp is beyond the clock's
    ///   future bound; nothing is applied then.
    @discardableResult
    public mutating func apply(_ w: FieldWrite, commune: String) throws(ClockError) -> ApplyOutcome {
        // Every replica observes every timestamp it receives, so its own later
        // writes follow them (DESIGN §4, clock).
        try clock.observe(w.id.hlc)
        return insert(w, commune: commune)
    }

    @discardableResult
    private mutating func insert(_ w: FieldWrite, commune: String) -> ApplyOutcome {
        if communes[w.record] == nil {
            communes[w.record] = commune
            recordOrder.append(w.record)
        }
        let key = FieldKey(record: w.record, field: w.field)
        var reg = registers[key] ?? LeafRegister()
        let outcome = reg.apply(w)
        registers[key] = reg
        if case .applied = outcome {
            head += 1
            let live = Set(reg.leaves.map(\.id))
            var seqs = (leafSeq[key] ?? [:]).filter { live.contains($0.key) }
            seqs[w.id] = head
            leafSeq[key] = seqs
            log.append(w)
        }
        return outcome
    }

    // MARK: Serving

    /// "Changes since cursor c": the current leaves of the commune's records
    /// whose hub sequence number is above `cursor`, in hub order.
    public func changes(since cursor: UInt64, commune: String) -> HubChanges {
        var out: [(UInt64, FieldWrite)] = []
        for (key, reg) in registers where communes[key.record] == commune {
            for leaf in reg.leaves {
                if let s = leafSeq[key]?[leaf.id], s > cursor { out.append((s, leaf)) }
            }
        }
        out.sort { $0.0 < $1.0 }
        return HubChanges(since: cursor, writes: out.map(\.1), head: head)
    }

    /// The hub sequence number of a current leaf, if it is one.
    public func sequenceNumber(of id: WriteID, in key: FieldKey) -> UInt64? {
        leafSeq[key]?[id]
    }

    // MARK: The operator

    /// Registers a record the operator creates in `commune` and writes its first values.
    @discardableResult
    public mutating func operatorCreate(record: RecordID, commune: String, values: [String: Value]) -> [FieldWrite] {
        if communes[record] == nil {
            communes[record] = commune
            recordOrder.append(record)
        }
        return values.sorted { $0.key < $1.key }.map { operatorWrite(record: record, field: $0.key, value: $0.value) }
    }

    /// An operator write (``WriteRules/hub(record:field:value:id:leaves:deleted:resolve:covers:)``).
    ///
    /// - Parameters:
    ///   - resolve: `prev` names every leaf, which ends a concurrent-writes conflict.
    ///   - coverAllLeaves: for a delete, cover every leaf of the other fields
    ///     (resolving edit-vs-delete conflicts) rather than only their winners.
    /// - Precondition: the record is known to the hub.
    @discardableResult
    public mutating func operatorWrite(
        record: RecordID, field: String, value: Value, resolve: Bool = false, coverAllLeaves: Bool = false
    ) -> FieldWrite {
        let key = FieldKey(record: record, field: field)
        let leaves = registers[key] ?? LeafRegister()
        let deleted = registers[FieldKey(record: record, field: deletedField)]
        var seen: [String: [WriteID]] = [:]
        for (k, reg) in registers where k.record == record {
            seen[k.field] = coverAllLeaves ? reg.leaves.map(\.id) : (reg.winner.map { [$0.id] } ?? [])
        }
        let covers = WriteRules.covers(field: field, value: value, seen: seen)
        let w = WriteRules.hub(
            record: record, field: field, value: value, id: WriteID(hlc: clock.now(), origin: .hub), leaves: leaves,
            deleted: deleted, resolve: resolve, covers: covers)
        // The clock made this id, so it has already "observed" it.
        insert(w, commune: communes[record] ?? "")
        return w
    }

    // MARK: Reading

    /// The winner of every field of the commune's records.
    public func winners(commune: String) -> [FieldKey: FieldWrite] {
        var out: [FieldKey: FieldWrite] = [:]
        for (key, reg) in registers where communes[key.record] == commune {
            if let w = reg.winner { out[key] = w }
        }
        return out
    }

    /// The registers of one record, by field.
    public func registers(of record: RecordID) -> [String: LeafRegister] {
        var out: [String: LeafRegister] = [:]
        for (key, reg) in registers where key.record == record { out[key.field] = reg }
        return out
    }

    /// ``ConflictRules/conflicts(record:registers:)`` over every record, records in id order.
    public func conflicts() -> [Conflict] {
        var byRecord: [RecordID: [String: LeafRegister]] = [:]
        for (key, reg) in registers { byRecord[key.record, default: [:]][key.field] = reg }
        return byRecord.keys.sorted().flatMap { ConflictRules.conflicts(record: $0, registers: byRecord[$0] ?? [:]) }
    }

    /// True when the record's `_deleted` winner is a delete.
    public func isDeleted(_ record: RecordID) -> Bool {
        registers[FieldKey(record: record, field: deletedField)]?.winner?.isDelete ?? false
    }
}
