import FerryCrypto
import Foundation

/// The open conflicts on one commune's records, as the hub tells that
/// commune's agent (`GET /v1/conflicts`, SPEC §9.13): the commune PC shows
/// them to its staff; the hub operator resolves them.
public struct CommuneConflictsV1: Codable, Sendable, Equatable {
    public var commune: String
    /// Every open conflict on the commune's records, listed or not.
    public var open: Int
    /// The first ``CommuneConflictsV1/maxListed`` in the hub's key order, each
    /// with its competing values (at most ``maxSides``).
    public var conflicts: [ConflictReport]
    /// The hub's clock when it answered, Unix ms.
    public var hubTimeMs: UInt64

    public init(commune: String, open: Int, conflicts: [ConflictReport], hubTimeMs: UInt64) {
        self.commune = commune
        self.open = open
        self.conflicts = conflicts
        self.hubTimeMs = hubTimeMs
    }

    /// Refuses a list for another commune or outside the bounds (counts, sides, lengths).
    public func check(commune expected: String) throws(ConflictsAuth.OpenError) {
        guard commune == expected else {
            throw .malformed("it is for commune '\(commune.prefix(40))', this PC is in \(expected)")
        }
        guard open >= conflicts.count, conflicts.count <= Self.maxListed else {
            throw .malformed("\(conflicts.count) conflicts listed, \(open) open")
        }
        for c in conflicts {
            guard c.commune == expected, c.sides.count <= Self.maxSides, c.field.utf8.count <= 256,
                c.kind.utf8.count <= 64, c.record.utf8.count <= 64
            else { throw .malformed("a conflict on record '\(c.record.prefix(40))' is out of bounds") }
        }
    }

    /// Conflicts listed in one answer.
    public static let maxListed = 50
    /// Competing values listed per conflict.
    public static let maxSides = 8
    /// Longest plaintext the hub seals; the agent refuses a larger answer.
    public static let maxPlaintextBytes = 512 * 1024
}

/// How `GET /v1/conflicts` is authenticated both ways (SPEC §9.13): the agent
/// signs its request like a pull; the hub seals its answer for that agent
/// alone with the session key of §6.3, binding the request.
public enum ConflictsAuth {
    /// What the agent signs: `"ferry/conflicts/v1\n" ‖ agent ‖ "\n" ‖ dec(time)`.
    public static func message(agent: String, timeMs: UInt64) -> [UInt8] {
        Array("ferry/conflicts/v1\n\(agent)\n\(timeMs)".utf8)
    }

    /// Seals `answer` for the agent: 24-byte random nonce ‖ XChaCha20-Poly1305
    /// ciphertext, with the signed request message as associated data.
    public static func seal(_ answer: CommuneConflictsV1, agent: String, timeMs: UInt64, key: SecretBytes)
        throws -> [UInt8]
    {
        let plain = Array(try HubJSON.encoder.encode(answer))
        let nonce = randomBytes(AEAD.nonceBytes)
        return nonce
            + (try AEAD.seal(plain, associatedData: message(agent: agent, timeMs: timeMs), nonce: nonce, key: key))
    }

    /// Why an answer was refused by the agent.
    public enum OpenError: Error, Equatable, CustomStringConvertible {
        case tooLarge(Int)
        case notSealedForThisRequest
        case malformed(String)

        public var description: String {
            switch self {
            case .tooLarge(let n):
                "the hub's conflict list is \(n) bytes, over \(CommuneConflictsV1.maxPlaintextBytes + 64)"
            case .notSealedForThisRequest:
                "the conflict list was not sealed by the pinned hub for this request (altered, replayed, or another hub)"
            case .malformed(let why): "the conflict list does not parse: \(why)"
            }
        }
    }

    /// Opens and checks an answer to the request signed at `timeMs` by `agent`:
    /// within size, sealed with `key`, for `commune`, and within the bounds of
    /// ``CommuneConflictsV1`` (counts, record ids).
    public static func open(_ bytes: [UInt8], agent: String, commune: String, timeMs: UInt64, key: SecretBytes)
        throws(OpenError) -> CommuneConflictsV1
    {
        let n = AEAD.nonceBytes
        guard bytes.count <= CommuneConflictsV1.maxPlaintextBytes + n + AEAD.tagBytes else {
            throw .tooLarge(bytes.count)
        }
        guard bytes.count > n,
            let plain = try? AEAD.open(
                Array(bytes[n...]), associatedData: message(agent: agent, timeMs: timeMs), nonce: Array(bytes[..<n]),
                key: key)
        else { throw .notSealedForThisRequest }
        let answer: CommuneConflictsV1
        do {
            answer = try HubJSON.decoder.decode(CommuneConflictsV1.self, from: Data(plain))
        } catch {
            throw .malformed("\(error)".prefix(200).description)
        }
        try answer.check(commune: commune)
        return answer
    }
}

/// What a hub-pages bundle carries besides its pages (SPEC §12.4): the
/// commune's conflict list and the hub's signed quarantine notices for the
/// agent, sealed for it, since a USB stick is easily lost.
public struct BundleExtrasV1: Codable, Sendable, Equatable {
    public var conflicts: CommuneConflictsV1?
    public var notices: QuarantineNoticesV1?

    public init(conflicts: CommuneConflictsV1?, notices: QuarantineNoticesV1?) {
        self.conflicts = conflicts
        self.notices = notices
    }

    /// The associated data: `"ferry/bundle-extras/v1\n" ‖ agent ‖ "\n" ‖ dec(serial)`.
    public static func associatedData(agent: String, serial: UInt64) -> [UInt8] {
        Array("ferry/bundle-extras/v1\n\(agent)\n\(serial)".utf8)
    }

    /// 24-byte random nonce ‖ XChaCha20-Poly1305 of the JSON, under the hub → agent session key.
    public func sealed(agent: String, serial: UInt64, key: SecretBytes) throws -> [UInt8] {
        let nonce = randomBytes(AEAD.nonceBytes)
        return nonce
            + (try AEAD.seal(
                Array(try HubJSON.encoder.encode(self)),
                associatedData: Self.associatedData(agent: agent, serial: serial),
                nonce: nonce, key: key))
    }

    /// Opens extras sealed for `agent` under the bundle's `serial`; nil when they
    /// do not open or do not parse (altered, or made for another agent or bundle).
    public static func open(_ bytes: [UInt8], agent: String, serial: UInt64, key: SecretBytes) -> BundleExtrasV1? {
        let n = AEAD.nonceBytes
        guard bytes.count > n,
            let plain = try? AEAD.open(
                Array(bytes[n...]), associatedData: associatedData(agent: agent, serial: serial),
                nonce: Array(bytes[..<n]), key: key)
        else { return nil }
        return try? HubJSON.decoder.decode(BundleExtrasV1.self, from: Data(plain))
    }
}
