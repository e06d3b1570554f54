import FerryCore

/// Why a change set was refused (SPEC §7). Each case says what a person can do.
public struct ChangeSetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The refusal kinds; stable strings for the JSON error `code`.
    public enum Code: String, Sendable, Equatable, CaseIterable {
        case truncated, badMagic = "bad_magic", unsupportedVersion = "unsupported_version", oversized
        case wrongKey = "wrong_key", unknownKey = "unknown_key", tampered, badSignature = "bad_signature"
        case malformed, replayed, outOfSequence = "out_of_sequence", futureTimestamp = "future_timestamp"
        case causality, scope, clonedReplica = "cloned_replica"
    }

    public let code: Code
    /// What happened, for a person.
    public let message: String
    /// The change set concerned, when known (hex).
    public var changeSetID: String?
    /// The author, when known.
    public var origin: String?
    /// For out-of-sequence refusals: the sequence number the receiver expects.
    public var expectedSeq: UInt64?

    init(_ code: Code, _ message: String, expected: UInt64? = nil) {
        self.code = code
        self.message = message
        self.expectedSeq = expected
    }

    public var description: String {
        var s = message
        if let id = changeSetID { s += " [change set \(id)" + (origin.map { " from \($0)" } ?? "") + "]" }
        return s
    }

    /// This error, naming the change set and its author.
    public func about(_ header: ChangeSetHeader) -> ChangeSetError {
        var e = self
        e.changeSetID = header.idHex
        e.origin = header.origin.rawValue
        return e
    }

    public static func truncated(_ what: String) -> ChangeSetError {
        .init(.truncated, "the change set is truncated (\(what)): the transfer was cut; send it again")
    }
    public static let badMagic = ChangeSetError(.badMagic, "this is not a Ferry change set (bad magic bytes)")
    public static func unsupportedVersion(_ v: UInt32) -> ChangeSetError {
        .init(
            .unsupportedVersion,
            "protocol version \(v) is not supported (this side speaks \(protocolVersion)): upgrade the older side")
    }
    public static func oversized(_ size: Int, limit: Int, unit: String = "bytes") -> ChangeSetError {
        .init(
            .oversized,
            "the change set is \(size) \(unit), over the limit of \(limit): split it into smaller change sets")
    }
    public static let wrongKey = ChangeSetError(
        .wrongKey, "the change set was sealed for another key: the agent pinned a different hub key; re-enroll it")
    public static func unknownKey(_ id: String) -> ChangeSetError {
        .init(
            .unknownKey,
            "the signing key \(id) is not registered here (unknown or revoked agent): enroll the agent again")
    }
    public static let tampered = ChangeSetError(
        .tampered, "the change set failed authentication: it was altered in transit or sealed under another key")
    public static let badSignature = ChangeSetError(
        .badSignature, "the signature does not match the author's key: the change set is forged or corrupted")
    public static func malformed(_ why: String) -> ChangeSetError {
        .init(.malformed, "the change set is malformed: \(why)")
    }
    public static func replayed(_ id: String) -> ChangeSetError {
        .init(.replayed, "change set \(id) was already received; nothing was applied twice")
    }
    public static func outOfSequence(expected: UInt64, from: UInt64, to: UInt64) -> ChangeSetError {
        .init(
            .outOfSequence,
            "the change set covers \(from)...\(to) but \(expected) is expected next: resend from \(expected)",
            expected: expected)
    }
    public static func futureTimestamp(_ e: ClockError) -> ChangeSetError {
        .init(.futureTimestamp, e.description)
    }
    /// SPEC §5.1, §7.3: a record without a scope, or outside the author's commune.
    public static func scope(_ why: String) -> ChangeSetError {
        .init(.scope, "\(why): an agent writes only records of its own commune, each with its form and commune")
    }
    /// SPEC §3.3: a header number outside the range the receiver can hold.
    public static func outOfRange(_ what: String, _ value: UInt64, limit: UInt64) -> ChangeSetError {
        .init(.malformed, "the change set is malformed: \(what) is \(value), above the largest allowed \(limit)")
    }
    /// SPEC §7.2: another change set with other content already holds these
    /// sequence numbers of the origin: two PCs run copies of one agent directory.
    public static func clonedReplica(_ h: ChangeSetHeader) -> ChangeSetError {
        ChangeSetError(
            .clonedReplica,
            "the hub already holds changes \(h.seqFrom)...\(h.seqTo) of agent \(h.origin.rawValue) with other content: this agent directory was copied to another PC, and both copies now write as one agent. Nothing of this change set was applied and nothing is lost: this PC keeps all its data. To fix it, ask the hub operator for a new enrollment token for this commune and enroll this copy as its own agent: `ferry agent enroll HUB_URL NEW_TOKEN --dir THIS_DIRECTORY` (it keeps and re-sends every change made here)"
        ).about(h)
    }
    public static func causality(_ why: String) -> ChangeSetError {
        .init(.causality, "a write claims to follow a later write (\(why)): the author's clock is broken")
    }
}
