import FerryCore
import Foundation

// The operator API (`/v1/ops/...`, SPEC §9.6): every request and answer body
// is defined once here and used by both the hub and the `ferry` CLI. JSON is
// snake_case (``HubJSON``); refusals are ``ErrorBody``.

/// `POST tokens`: an enrollment token for a commune, valid `ttl_hours` (default 168, at most 90 days).
public struct TokenRequest: Codable, Sendable {
    public var commune: String
    public var ttlHours: Int?
    public init(commune: String, ttlHours: Int? = nil) {
        self.commune = commune
        self.ttlHours = ttlHours
    }
}

/// The answer to `POST tokens`: the token text an agent enrolls with.
public struct TokenResponse: Codable, Sendable {
    public var token: String
    public var commune: String
    public var expiresMs: UInt64
    public init(token: String, commune: String, expiresMs: UInt64) {
        self.token = token
        self.commune = commune
        self.expiresMs = expiresMs
    }
}

/// `POST records` (a new record: form, commune) and `POST records/{id}` (an edit).
public struct RecordWriteRequest: Codable, Sendable {
    public var form: String?
    public var version: Int?
    public var commune: String?
    /// Field values as text, parsed with the form's types.
    public var values: [String: String]
    public var resolve: Bool?
    public init(
        form: String? = nil, version: Int? = nil, commune: String? = nil, values: [String: String], resolve: Bool? = nil
    ) {
        self.form = form
        self.version = version
        self.commune = commune
        self.values = values
        self.resolve = resolve
    }
}

/// `POST conflicts/resolve`: keep a value on a conflicted field.
public struct ResolveRequest: Codable, Sendable {
    public var record: String
    public var field: String
    /// The value to keep, as text; the current winner when absent.
    public var value: String?
    public init(record: String, field: String, value: String?) {
        self.record = record
        self.field = field
        self.value = value
    }
}

/// A record at the hub as operators see it.
public struct HubRecordJSON: Codable, Sendable {
    /// One field: its winning value, type, write and, when conflicted, every leaf.
    public struct FieldJSON: Codable, Sendable {
        /// The winning value, with its JSON type kept (a number stays a number).
        public var value: JSONValue
        public var type: String
        public var write: String
        public var conflict: Bool
        public var leaves: [String]
        public init(value: JSONValue, type: String, write: String, conflict: Bool, leaves: [String]) {
            self.value = value
            self.type = type
            self.write = write
            self.conflict = conflict
            self.leaves = leaves
        }
    }
    public var id: String
    public var form: String
    public var formVersion: Int
    public var commune: String
    public var deleted: Bool
    public var fields: [String: FieldJSON]
    public init(id: String, form: String, formVersion: Int, commune: String, deleted: Bool, fields: [String: FieldJSON])
    {
        self.id = id
        self.form = form
        self.formVersion = formVersion
        self.commune = commune
        self.deleted = deleted
        self.fields = fields
    }
}

/// An enrolled agent with its last contact, lag and errors (`GET agents`).
public struct AgentJSON: Codable, Sendable {
    public var id: String
    public var commune: String
    public var communeName: String
    public var status: String
    public var hostname: String
    public var lastSeenMs: UInt64?
    public var lastSkewMs: Int64?
    public var appliedSeq: UInt64
    public var ackedCursor: UInt64
    /// Changes for the agent (its commune, the catalog) it has not acknowledged yet.
    public var lag: UInt64
    public var lastError: String?
    /// When a change set of this agent was last refused as `cloned_replica` (SPEC §7.2).
    public var clonedMs: UInt64?
    /// Change sets refused as `cloned_replica`.
    public var clonedRefusals: Int?
    public init(
        id: String, commune: String, communeName: String, status: String, hostname: String, lastSeenMs: UInt64? = nil,
        lastSkewMs: Int64? = nil, appliedSeq: UInt64, ackedCursor: UInt64, lag: UInt64, lastError: String? = nil,
        clonedMs: UInt64? = nil, clonedRefusals: Int? = nil
    ) {
        self.id = id
        self.commune = commune
        self.communeName = communeName
        self.status = status
        self.hostname = hostname
        self.lastSeenMs = lastSeenMs
        self.lastSkewMs = lastSkewMs
        self.appliedSeq = appliedSeq
        self.ackedCursor = ackedCursor
        self.lag = lag
        self.lastError = lastError
        self.clonedMs = clonedMs
        self.clonedRefusals = clonedRefusals
    }
}

/// `GET status`: the hub's totals and every agent.
public struct HubStatusJSON: Codable, Sendable {
    public var version: String
    public var timeMs: UInt64
    public var totals: [String: Int]
    public var agents: [AgentJSON]
    /// Communes that need a person, most urgent first.
    public var attention: [CommuneAttentionJSON]
    public init(
        version: String, timeMs: UInt64, totals: [String: Int], agents: [AgentJSON],
        attention: [CommuneAttentionJSON] = []
    ) {
        self.version = version
        self.timeMs = timeMs
        self.totals = totals
        self.agents = agents
        self.attention = attention
    }
}

/// A commune that needs a person, and why (`GET status`).
public struct CommuneAttentionJSON: Codable, Sendable, Equatable {
    public var commune: String
    public var name: String
    /// Higher is more urgent (an ordering, not a measure).
    public var score: Int
    /// What is wrong, most urgent first, each with what to do.
    public var reasons: [String]
    public init(commune: String, name: String, score: Int, reasons: [String]) {
        self.commune = commune
        self.name = name
        self.score = score
        self.reasons = reasons
    }
}

/// A campaign with its progress per commune (`GET campaigns`).
public struct CampaignJSON: Codable, Sendable {
    public var campaign: CampaignDefinition
    public var progress: [ProgressRow]
    public var done: Int
    public var target: Int
    public init(campaign: CampaignDefinition, progress: [ProgressRow], done: Int, target: Int) {
        self.campaign = campaign
        self.progress = progress
        self.done = done
        self.target = target
    }
}

/// One open conflict with full provenance, for operators.
public struct ConflictReport: Sendable, Codable, Equatable {
    /// One leaf of the conflicted field, with its provenance.
    public struct Side: Sendable, Codable, Equatable {
        public var write: String
        public var origin: String
        public var commune: String?
        public var timeMs: UInt64
        /// The field this leaf writes: the conflict's field, or `_deleted` in an edit-vs-delete conflict.
        public var field: String
        /// The value with its JSON type kept.
        public var value: JSONValue
        public var valueType: String
        public init(
            write: String, origin: String, commune: String? = nil, timeMs: UInt64, field: String, value: JSONValue,
            valueType: String
        ) {
            self.write = write
            self.origin = origin
            self.commune = commune
            self.timeMs = timeMs
            self.field = field
            self.value = value
            self.valueType = valueType
        }
    }
    public var record: String
    public var field: String
    /// `concurrent_edits` or `edit_vs_delete`.
    public var kind: String
    public var commune: String
    /// When the hub first saw the conflict.
    public var detectedMs: UInt64
    /// Highest write first: `sides[0]` is the value shown.
    public var sides: [Side]
    public init(record: String, field: String, kind: String, commune: String, detectedMs: UInt64, sides: [Side]) {
        self.record = record
        self.field = field
        self.kind = kind
        self.commune = commune
        self.detectedMs = detectedMs
        self.sides = sides
    }
}

/// The states of a quarantine entry: open until a person fixes or releases it.
public enum QuarantineStatus {
    /// Waiting for a person.
    public static let open = "open"
    /// Closed by writing a corrected value to the record.
    public static let fixed = "fixed"
    /// Closed without a write: the refusal stands, the value is kept here.
    public static let released = "released"
    public static let all = [open, fixed, released]
}

/// A value the hub refused to merge, kept with its reason.
public struct QuarantineEntry: Sendable, Codable, Equatable {
    public var id: Int64
    public var changeSet: String
    public var origin: String
    public var record: String
    public var field: String
    /// The refused value, with its JSON type kept.
    public var value: JSONValue
    public var valueType: String
    public var reason: String
    public var timeMs: UInt64
    /// ``QuarantineStatus``: open, fixed or released.
    public var status: String
    /// Who closed it and when, and the note they left.
    public var closedBy: String?
    public var closedMs: UInt64?
    public var note: String?
    public init(
        id: Int64, changeSet: String, origin: String, record: String, field: String, value: JSONValue,
        valueType: String, reason: String, timeMs: UInt64, status: String, closedBy: String? = nil,
        closedMs: UInt64? = nil, note: String? = nil
    ) {
        self.id = id
        self.changeSet = changeSet
        self.origin = origin
        self.record = record
        self.field = field
        self.value = value
        self.valueType = valueType
        self.reason = reason
        self.timeMs = timeMs
        self.status = status
        self.closedBy = closedBy
        self.closedMs = closedMs
        self.note = note
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
