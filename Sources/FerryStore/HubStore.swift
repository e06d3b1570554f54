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
    /// Every field's current leaves of each record the hub holds (a record it
    /// does not hold is absent from the answer). One call per change set, so a
    /// backend can read them in one round trip.
    func registers(of records: [RecordID]) throws -> [RecordID: [String: LeafRegister]]
    func clock() throws -> HybridLogicalClock
    func save(clock: HybridLogicalClock) throws
    /// Takes `count` stream positions at once; returns the first (head + 1).
    func reserveStream(_ count: Int) throws -> UInt64
    /// The part of ``persist(_:firstSeq:changeSet:atMillis:)`` that needs no
    /// stream position, done before positions are taken: a backend whose
    /// position counter is a row lock held to commit (PostgreSQL) keeps that
    /// lock for less time. The same records are then passed to `persist`.
    /// Default: nothing (`persist` does it all).
    func stage(_ records: [MergedRecord], changeSet: [UInt8]?, atMillis: UInt64) throws
    /// Persists the merged records of one change set, in order: creates the new
    /// ones, drops their removed leaves, inserts their added leaves at stream
    /// positions `firstSeq…` (consecutive, in the order given), and updates each
    /// record's deleted flag and conflicts when they changed.
    func persist(_ records: [MergedRecord], firstSeq: UInt64, changeSet: [UInt8]?, atMillis: UInt64) throws
    /// Keeps refused writes with their reasons (SPEC §8.9); nothing of them is merged.
    func quarantine(_ writes: [RefusedWrite], changeSet: [UInt8]?, atMillis: UInt64) throws
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

/// A record's merge, ready to persist (``HubTransaction/persist(_:firstSeq:changeSet:atMillis:)``).
public struct MergedRecord: Sendable {
    public var batch: RecordBatch
    public var merge: RecordMerge
    public init(batch: RecordBatch, merge: RecordMerge) {
        self.batch = batch
        self.merge = merge
    }
}

/// A write validation or a bound refused, with the reason told to its author.
public struct RefusedWrite: Sendable {
    public var write: FieldWrite
    public var reason: String
    public init(_ write: FieldWrite, reason: String) {
        self.write = write
        self.reason = reason
    }
}

extension HubTransaction {
    public func stage(_ records: [MergedRecord], changeSet: [UInt8]?, atMillis: UInt64) throws {}

    /// One record's leaves (empty when the hub holds no such record).
    public func registers(of record: RecordID) throws -> [String: LeafRegister] {
        try registers(of: [record])[record] ?? [:]
    }

    /// Merges each record's validated writes (SPEC §8.3) and persists the
    /// result: the rules are ``RecordMerge``'s, the storage this transaction's.
    /// Leaves are read once and stream positions taken once for the whole set;
    /// a new record whose writes all failed a bound is not created.
    /// - Returns: one merge per batch, so the caller can count leaves and
    ///   quarantine what a bound refused.
    public func merge(_ batches: [RecordBatch], changeSet: [UInt8]?, atMillis: UInt64) throws -> [RecordMerge] {
        let existing = batches.filter { !$0.isNew }.map(\.record)
        let leaves = existing.isEmpty ? [:] : try registers(of: existing)
        var merges: [RecordMerge] = []
        merges.reserveCapacity(batches.count)
        for b in batches {
            let registers = b.isNew ? [:] : leaves[b.record] ?? [:]
            merges.append(RecordMerge(record: b.record, registers: registers, writes: b.writes))
        }
        let changed = zip(batches, merges).compactMap { b, m in
            !m.added.isEmpty || (!b.isNew && !m.removed.isEmpty) ? MergedRecord(batch: b, merge: m) : nil
        }
        let total = changed.reduce(0) { $0 + $1.merge.added.count }
        guard !changed.isEmpty else { return merges }
        try stage(changed, changeSet: changeSet, atMillis: atMillis)
        let first = total == 0 ? 0 : try reserveStream(total)
        try persist(changed, firstSeq: first, changeSet: changeSet, atMillis: atMillis)
        return merges
    }
}
