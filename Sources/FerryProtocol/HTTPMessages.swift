import FerryCore
import Foundation

/// JSON messages of the sync exchange over HTTP (SPEC §9).
/// The JSON error body every refusal uses.
public struct ErrorBody: Codable, Sendable {
    public struct Detail: Codable, Sendable {
        public var code: String
        public var message: String
        public var expectedSeq: UInt64?
        public var changeSet: String?
        /// Every problem found, when a definition (form, campaign, CSV) was refused (SPEC §9.6).
        public var problems: [ProblemV1]?
        public init(
            code: String, message: String, expectedSeq: UInt64? = nil, changeSet: String? = nil,
            problems: [ProblemV1]? = nil
        ) {
            self.code = code
            self.message = message
            self.expectedSeq = expectedSeq
            self.changeSet = changeSet
            self.problems = problems
        }
    }
    public var error: Detail
    public init(error: Detail) { self.error = error }
}

/// One problem of a refused definition: a typed code, where it is, and what to change.
public struct ProblemV1: Codable, Sendable, Equatable {
    public var code: String
    /// The field, commune or CSV row concerned, when there is one.
    public var at: String?
    public var message: String
    public init(code: String, at: String? = nil, message: String) {
        self.code = code
        self.at = at
        self.message = message
    }
}

/// JSON coding shared by the hub and its clients: snake_case keys.
public enum HubJSON {
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        return e
    }
    public static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }
}

/// Enrollment request and answer (SPEC §9).
public struct EnrollRequest: Codable, Sendable {
    public var token: String
    public var signPublicKey: String
    public var kxPublicKey: String
    public var hostname: String
    public init(token: String, signPublicKey: String, kxPublicKey: String, hostname: String) {
        self.token = token
        self.signPublicKey = signPublicKey
        self.kxPublicKey = kxPublicKey
        self.hostname = hostname
    }
}

public struct EnrollResponse: Codable, Sendable {
    public var agentId: String
    public var commune: String
    public var hubSignPublicKey: String
    public var hubKxPublicKey: String
    public var hubTimeMs: UInt64
    public init(agentId: String, commune: String, hubSignPublicKey: String, hubKxPublicKey: String, hubTimeMs: UInt64) {
        self.agentId = agentId
        self.commune = commune
        self.hubSignPublicKey = hubSignPublicKey
        self.hubKxPublicKey = hubKxPublicKey
        self.hubTimeMs = hubTimeMs
    }
}

/// An upload's acknowledgement (SPEC §9.3), signed by the hub over
/// ``AckAuth/message(agent:changeSet:cursor:status:)``; defined once for both sides.
public struct AckV1: Codable, Sendable, Equatable {
    /// "applied" or "duplicate".
    public var status: String
    /// The agent's sequence the hub has applied.
    public var cursor: UInt64
    public var merged: Int
    public var quarantined: Int
    public var conflictsOpen: Int
    /// Hex Ed25519 signature by the hub.
    public var signature: String
    /// What the hub quarantined from this change set, when anything (SPEC §8.9).
    public var notices: QuarantineNoticesV1?

    public init(
        status: String, cursor: UInt64, merged: Int, quarantined: Int, conflictsOpen: Int, signature: String,
        notices: QuarantineNoticesV1? = nil
    ) {
        self.status = status
        self.cursor = cursor
        self.merged = merged
        self.quarantined = quarantined
        self.conflictsOpen = conflictsOpen
        self.signature = signature
        self.notices = notices
    }
}

/// The quarantined writes of one change set and, for each field, the value the
/// hub holds instead (SPEC §8.9), signed by the hub over ``QuarantineAuth``.
public struct QuarantineNoticesV1: Codable, Sendable, Equatable {
    public struct Refused: Codable, Sendable, Equatable {
        public var record: String
        public var field: String
        /// The refused write's id: hlc as 16 hex digits, "@", origin.
        public var write: String
        public var reason: String
        public init(record: String, field: String, write: String, reason: String) {
            self.record = record
            self.field = field
            self.write = write
            self.reason = reason
        }
    }
    public var refused: [Refused]
    /// Hex of a ``BodyCodec`` body holding the accepted winners of the refused fields (none for a field the hub holds no value of).
    public var accepted: String
    public var signature: String

    public init(refused: [Refused], accepted: String, signature: String) {
        self.refused = refused
        self.accepted = accepted
        self.signature = signature
    }
}

/// What the hub signs for quarantine notices (SPEC §8.9).
public enum QuarantineAuth {
    public static func message(agent: String, changeSet: String, notices: QuarantineNoticesV1) -> [UInt8] {
        var s = "ferry/quarantine/v1\n\(agent)\n\(changeSet)\n\(notices.accepted)\n"
        for r in notices.refused { s += "\(r.record)\t\(r.field)\t\(r.write)\t\(r.reason)\n" }
        return Array(s.utf8)
    }

    /// A write id as notices spell it.
    public static func text(_ id: WriteID) -> String {
        let h = String(id.hlc.raw, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h + "@" + id.origin.rawValue
    }

    /// Parses ``text(_:)``; nil when malformed.
    public static func writeID(_ s: String) -> WriteID? {
        guard let at = s.firstIndex(of: "@"), s.distance(from: s.startIndex, to: at) == 16,
            let raw = UInt64(s[..<at], radix: 16)
        else { return nil }
        return WriteID(hlc: HLC(raw: raw), origin: OriginID(String(s[s.index(after: at)...])))
    }
}
