import FerryCore
import FerryProtocol
import Foundation

/// An enrolled agent as the hub knows it.
public struct AgentInfo: Sendable, Codable, Equatable {
    public var id: String
    public var commune: String
    public var signPublicKey: [UInt8]
    public var kxPublicKey: [UInt8]
    /// "active" or "revoked".
    public var status: String
    public var hostname: String
    public var enrolledMs: UInt64
    public var lastSeenMs: UInt64?
    /// Agent clock minus hub clock at the last contact, in ms.
    public var lastSkewMs: Int64?
    /// The last sequence number of the agent applied here.
    public var appliedSeq: UInt64
    /// The hub-stream cursor the agent last acknowledged.
    public var ackedCursor: UInt64
    public var lastError: String?
    /// When the hub last refused a change set of this agent as a cloned
    /// replica (its directory runs on two PCs), or nil when never.
    public var clonedMs: UInt64? = nil
    /// How many change sets were refused as a cloned replica.
    public var clonedRefusals: Int = 0

    public var isActive: Bool { status == "active" }

    public init(
        id: String, commune: String, signPublicKey: [UInt8], kxPublicKey: [UInt8], status: String, hostname: String,
        enrolledMs: UInt64, lastSeenMs: UInt64?, lastSkewMs: Int64?, appliedSeq: UInt64, ackedCursor: UInt64,
        lastError: String?, clonedMs: UInt64?, clonedRefusals: Int
    ) {
        self.id = id
        self.commune = commune
        self.signPublicKey = signPublicKey
        self.kxPublicKey = kxPublicKey
        self.status = status
        self.hostname = hostname
        self.enrolledMs = enrolledMs
        self.lastSeenMs = lastSeenMs
        self.lastSkewMs = lastSkewMs
        self.appliedSeq = appliedSeq
        self.ackedCursor = ackedCursor
        self.lastError = lastError
        self.clonedMs = clonedMs
        self.clonedRefusals = clonedRefusals
    }
}

/// What ingesting one change set did.
public struct IngestResult: Sendable, Codable, Equatable {
    /// "applied" or "duplicate".
    public var status: String
    /// The agent's sequence applied so far.
    public var cursor: UInt64
    public var merged: Int
    public var quarantined: Int
    public var conflictsOpen: Int

    public init(status: String, cursor: UInt64, merged: Int, quarantined: Int, conflictsOpen: Int) {
        self.status = status
        self.cursor = cursor
        self.merged = merged
        self.quarantined = quarantined
        self.conflictsOpen = conflictsOpen
    }
}

/// A refusal by the hub that is not about the envelope: scope, status, form.
public struct HubError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, Codable {
        case badToken = "bad_token", revoked, unknownAgent = "unknown_agent", scope, notFound = "not_found"
        case badRequest = "bad_request", conflict, formImmutable = "form_immutable", cursorAhead = "cursor_ahead"
        case badKey = "bad_key"
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

/// One open conflict with full provenance, for operators.
public struct ConflictReport: Sendable, Codable, Equatable {
    public struct Side: Sendable, Codable, Equatable {
        public var write: String
        public var origin: String
        public var commune: String?
        public var timeMs: UInt64
        public var value: String
        public var valueType: String
    }
    public var record: String
    public var field: String
    public var kind: String
    public var commune: String
    /// Highest write first: `sides[0]` is the value shown.
    public var sides: [Side]
}

/// A value the hub refused to merge, kept with its reason.
public struct QuarantineEntry: Sendable, Codable, Equatable {
    public var id: Int64
    public var changeSet: String
    public var origin: String
    public var record: String
    public var field: String
    public var value: String
    public var reason: String
    public var timeMs: UInt64

    public init(
        id: Int64, changeSet: String, origin: String, record: String, field: String, value: String, reason: String,
        timeMs: UInt64
    ) {
        self.id = id
        self.changeSet = changeSet
        self.origin = origin
        self.record = record
        self.field = field
        self.value = value
        self.reason = reason
        self.timeMs = timeMs
    }
}

/// Campaign progress in one commune.
public struct ProgressRow: Sendable, Codable, Equatable {
    public var commune: String
    public var name: String
    public var records: Int
    public var target: Int

    public init(commune: String, name: String, records: Int, target: Int) {
        self.commune = commune
        self.name = name
        self.records = records
        self.target = target
    }
}

/// The record as the hub holds it: every field's leaves.
public struct HubRecordView: Sendable, Equatable {
    public var id: RecordID
    public var scope: RecordScope
    public var leaves: [String: LeafRegister]

    public var isDeleted: Bool { leaves[deletedField]?.winner?.value == .bool(true) }
    public var winners: [String: Value] { leaves.compactMapValues { $0.winner?.value } }

    public init(id: RecordID, scope: RecordScope, leaves: [String: LeafRegister]) {
        self.id = id
        self.scope = scope
        self.leaves = leaves
    }
}

/// One signed change set in the audit trail.
public struct AuditEntry: Sendable, Codable, Equatable {
    public var changeSet: String
    public var origin: String
    public var seqFrom: UInt64
    public var seqTo: UInt64
    public var receivedMs: UInt64
    public var writes: Int
    /// The author's signature still verifies against the key on record.
    public var signatureValid: Bool

    public init(
        changeSet: String, origin: String, seqFrom: UInt64, seqTo: UInt64, receivedMs: UInt64, writes: Int,
        signatureValid: Bool
    ) {
        self.changeSet = changeSet
        self.origin = origin
        self.seqFrom = seqFrom
        self.seqTo = seqTo
        self.receivedMs = receivedMs
        self.writes = writes
        self.signatureValid = signatureValid
    }
}
