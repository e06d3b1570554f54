import FerryCore

/// A change set as the in-memory simulation passes it: the header fields the
/// merge needs, no bytes and no keys.
public struct MemoryChangeSet: Sendable, Hashable {
    /// The author.
    public var origin: OriginID
    /// The commune whose records the writes touch.
    public var commune: String
    /// First sequence number covered (one number per write, DESIGN §4 order).
    public var seqFrom: UInt64
    /// Last sequence number covered.
    public var seqTo: UInt64
    /// The writes, in ascending id order (a causal order: every write's
    /// prev, alive and covers have lower ids).
    public var writes: [FieldWrite]

    public init(origin: OriginID, commune: String, seqFrom: UInt64, seqTo: UInt64, writes: [FieldWrite]) {
        self.origin = origin
        self.commune = commune
        self.seqFrom = seqFrom
        self.seqTo = seqTo
        self.writes = writes
    }
}

/// The hub's answer to "changes since cursor c" for one commune (DESIGN §4,
/// compaction): the current leaves inserted after `since`, in hub order.
public struct HubChanges: Sendable, Hashable {
    /// The cursor the agent asked from.
    public var since: UInt64
    /// Current leaves with a hub sequence number above `since`, in hub order.
    public var writes: [FieldWrite]
    /// The hub's stream position when the answer was made; the agent's next cursor.
    public var head: UInt64

    public init(since: UInt64, writes: [FieldWrite], head: UInt64) {
        self.since = since
        self.writes = writes
        self.head = head
    }
}

/// Why an in-memory replica refused an operation.
public struct MemoryReplicaError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// The record is deleted; only an undelete may be written.
        case recordDeleted = "record_deleted"
        /// The record belongs to another commune (or is unknown here).
        case foreignRecord = "foreign_record"
        /// A change set whose range does not count its writes.
        case malformed
        /// A write naming a write that is not earlier than itself.
        case causality
        /// A timestamp beyond the clock's future bound.
        case futureTimestamp = "future_timestamp"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
