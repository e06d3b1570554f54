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

/// The record as the hub holds it: every field's leaves.
public struct HubRecordView: Sendable, Equatable {
    public var id: RecordID
    public var scope: RecordScope
    public var leaves: [String: LeafRegister]

    public var isDeleted: Bool { leaves[deletedField]?.winner?.value == .bool(true) }
    public var winners: [String: Value] { leaves.compactMapValues { $0.winner?.value } }
}
