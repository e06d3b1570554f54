import FerryCore
import FerryProtocol

/// The hub's store, as the ingest pipeline sees it (DESIGN §8): a role with
/// one backend per database. The pipeline says what to write; the store says
/// how, inside one transaction per change set.
public protocol HubStore: Sendable {
    /// The hub's clock, in milliseconds.
    func nowMillis() -> UInt64
    /// How far ahead of the hub's clock a write may be stamped.
    var futureBoundMillis: UInt64 { get }
    /// An agent, read outside any write transaction (to find its keys).
    func agent(id: String) throws -> AgentInfo?
    /// Runs `body` in one write transaction, serialised against every other
    /// writer of the same store: all of it is applied, or nothing.
    func transaction<T>(_ body: (any HubTransaction) throws -> T) throws -> T
    /// Notes, in a transaction of its own, that a change set of `agent` was
    /// refused as a cloned replica (for `ferry hub agents` and metrics).
    func noteClonedReplica(agent: String) throws
}

/// What the hub kept of an applied change set, to tell a re-delivery from a clone.
public struct StoredChangeSet: Sendable, Equatable {
    public var seqFrom: UInt64
    public var seqTo: UInt64
    /// Nil for change sets stored before digests were kept.
    public var digest: [UInt8]?
    public init(seqFrom: UInt64, seqTo: UInt64, digest: [UInt8]?) {
        self.seqFrom = seqFrom
        self.seqTo = seqTo
        self.digest = digest
    }
}

/// The reads and writes of one ingest transaction. Every method acts inside
/// the transaction that ``HubStore/transaction(_:)`` opened.
public protocol HubTransaction {
    func agent(id: String) throws -> AgentInfo?
    /// The hub stream's head: the position of its latest change.
    func streamHead() throws -> UInt64
    /// The applied change set with this id, if any (SPEC §7.2).
    func storedChangeSet(id: [UInt8]) throws -> StoredChangeSet?
    /// The applied change set of `origin` that starts at `seqFrom`, if any.
    func storedChangeSet(origin: String, seqFrom: UInt64) throws -> StoredChangeSet?
    /// The scopes the hub already holds for these records.
    func scopes(of records: [RecordID]) throws -> [RecordID: RecordScope]
    /// Published form versions by `"<id>@<version>"`.
    func forms() throws -> [String: FormDefinition]
    /// Every field's current leaves of a record (empty for a new record).
    func registers(of record: RecordID) throws -> [String: LeafRegister]
    func clock() throws -> HybridLogicalClock
    func save(clock: HybridLogicalClock) throws
    /// Takes `count` stream positions at once; returns the first (head + 1).
    func reserveStream(_ count: Int) throws -> UInt64
    func createRecord(_ id: RecordID, scope: RecordScope, atMillis: UInt64) throws
    /// Persists a ``RecordMerge``: drops the removed leaves, inserts the added
    /// ones at stream positions `firstSeq…`, and updates the record's deleted
    /// flag and conflicts when they changed.
    func persist(
        _ merge: RecordMerge, record: RecordID, commune: String, firstSeq: UInt64, changeSet: [UInt8]?,
        atMillis: UInt64) throws
    func quarantine(_ write: FieldWrite, changeSet: [UInt8]?, reason: String, atMillis: UInt64) throws
    /// Keeps the signed change set (the audit trail, SPEC §11) and its body digest (§7.2).
    func recordChangeSet(_ cs: OpenedChangeSet, agent: String, digest: [UInt8], atMillis: UInt64) throws
    /// The agent's applied sequence becomes `appliedSeq`, its acknowledged cursor
    /// `max(old, ack)`; its contact (time, clock skew) is noted and its last error cleared.
    func advance(agent: String, appliedSeq: UInt64, ack: UInt64, skewMs: Int64, atMillis: UInt64) throws
    func openConflictCount() throws -> Int
}

/// One record's validated writes, for ``HubTransaction/merge(_:changeSet:atMillis:)``.
public struct RecordBatch: Sendable {
    public var record: RecordID
    public var scope: RecordScope
    /// True when the hub holds no such record yet.
    public var isNew: Bool
    public var writes: [FieldWrite]
    public init(record: RecordID, scope: RecordScope, isNew: Bool, writes: [FieldWrite]) {
        self.record = record
        self.scope = scope
        self.isNew = isNew
        self.writes = writes
    }
}

extension HubTransaction {
    /// Merges each record's validated writes (SPEC §8.3) and persists the
    /// result: the rules are ``RecordMerge``'s, the storage this transaction's.
    /// Stream positions are taken once for the whole set; a new record whose
    /// writes all failed a bound is not created.
    /// - Returns: one merge per batch, so the caller can count leaves and
    ///   quarantine what a bound refused.
    public func merge(_ batches: [RecordBatch], changeSet: [UInt8]?, atMillis: UInt64) throws -> [RecordMerge] {
        var merges: [RecordMerge] = []
        merges.reserveCapacity(batches.count)
        for b in batches {
            let registers = b.isNew ? [:] : try registers(of: b.record)
            merges.append(RecordMerge(record: b.record, registers: registers, writes: b.writes))
        }
        let total = merges.reduce(0) { $0 + $1.added.count }
        var seq = total == 0 ? 0 : try reserveStream(total)
        for (b, m) in zip(batches, merges) where !m.added.isEmpty || (!b.isNew && !m.removed.isEmpty) {
            if b.isNew { try createRecord(b.record, scope: b.scope, atMillis: atMillis) }
            try persist(
                m, record: b.record, commune: b.scope.commune, firstSeq: seq, changeSet: changeSet, atMillis: atMillis)
            seq += UInt64(m.added.count)
        }
        return merges
    }
}
