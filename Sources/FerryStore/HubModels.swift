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
        /// `conflicts resolve` named a field with no open conflict.
        case noConflict = "no_conflict"
        /// A form or campaign definition failed validation; the problems are listed.
        case invalidForm = "invalid_form", invalidCampaign = "invalid_campaign"
        /// The request names a state the item is not in (a closed quarantine entry, a published draft).
        case wrongState = "wrong_state"
        /// The feature is not available on this hub's store backend (yet).
        case unavailable
    }

    /// The HTTP status an operator endpoint answers this refusal with.
    public var httpStatus: Int {
        switch code {
        case .notFound: 404
        case .noConflict, .wrongState, .conflict, .formImmutable: 409
        case .invalidForm, .invalidCampaign: 422
        case .badToken: 401
        case .revoked: 403
        case .unavailable: 501
        default: 400
        }
    }
    public let code: Code
    public let message: String
    /// Each problem found, for `invalid_form` and `invalid_campaign`.
    public let problems: [ProblemV1]
    public init(_ code: Code, _ message: String, problems: [ProblemV1] = []) {
        self.code = code
        self.message = message
        self.problems = problems
    }
    public var description: String { message }
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
