import FerryCore
import FerryCrypto

/// An offline bundle (SPEC §12): the sealed change sets an agent would upload,
/// or the sealed pages the hub would send it, carried in one file (a USB stick)
/// for a commune with no link. The bundle adds only framing: every entry is an
/// envelope of §3, exactly the bytes the wire carries, and the receiver checks
/// each one as it checks the wire (§7). The header is a guide and a guard
/// against the wrong file; it authorises nothing.
public struct OfflineBundleHeader: Sendable, Equatable {
    /// Which way the bundle goes.
    public enum Kind: UInt8, Sendable {
        /// An agent's change sets for the hub (`ferry agent export-bundle`).
        case changes = 1
        /// The hub's pages (and with them its acknowledgements) for one agent (`ferry hub export-bundle`).
        case hubPages = 2
    }

    public var kind: Kind
    /// keyid(hub_sign_pk ‖ hub_kx_pk) of the hub the bundle goes to or comes from (§6.2).
    public var hubFingerprint: [UInt8]
    /// Key id of the recipient's X25519 key: the hub's for `changes`, the agent's for `hubPages`.
    public var recipientKeyID: [UInt8]
    /// The agent that wrote the change sets, or the one the pages are sealed for.
    public var agentID: String
    /// The bundle's number: per agent, counted by the side that made it (1, 2, 3, …).
    public var serial: UInt64
    /// `changes`: the agent's sequence numbers covered; `hubPages`: the hub-stream positions.
    public var seqFrom: UInt64
    public var seqTo: UInt64
    /// `changes`: the agent's last number the hub had confirmed when it was made;
    /// `hubPages`: the agent's last number the hub had applied.
    public var ack: UInt64
    /// When it was made (maker's Unix ms; informational).
    public var createdMs: UInt64
    /// How many envelopes follow.
    public var count: Int

    public init(
        kind: Kind, hubFingerprint: [UInt8], recipientKeyID: [UInt8], agentID: String, serial: UInt64, seqFrom: UInt64,
        seqTo: UInt64, ack: UInt64, createdMs: UInt64, count: Int
    ) {
        self.kind = kind
        self.hubFingerprint = hubFingerprint
        self.recipientKeyID = recipientKeyID
        self.agentID = agentID
        self.serial = serial
        self.seqFrom = seqFrom
        self.seqTo = seqTo
        self.ack = ack
        self.createdMs = createdMs
        self.count = count
    }
}

/// Bounds on what a bundle reader accepts, checked before the bytes they guard are read.
public struct OfflineBundleLimits: Sendable {
    /// The whole file.
    public var maxBytes: Int
    /// Envelopes in one bundle.
    public var maxEntries: Int
    /// One envelope (SPEC §3.2).
    public var maxEnvelopeBytes: Int

    public init(maxBytes: Int = 256 << 20, maxEntries: Int = 10_000, maxEnvelopeBytes: Int = 8 << 20) {
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
        self.maxEnvelopeBytes = maxEnvelopeBytes
    }

    public static let standard = OfflineBundleLimits()
}

/// Why a bundle file was refused. Each message says what the clerk or the operator can do.
public struct BundleError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable codes (printed in brackets, and in `--json`).
    public enum Code: String, Sendable, Equatable, CaseIterable {
        case notABundle = "not_a_bundle", unsupportedVersion = "unsupported_version", truncated, corrupted
        case oversized, malformed, wrongKind = "wrong_kind", wrongHub = "wrong_hub", wrongAgent = "wrong_agent"
        case outOfOrder = "out_of_order", alreadyImported = "already_imported", nothingPending = "nothing_pending"
        case unreadable, refused
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(message) [\(code.rawValue)]" }
}

/// Encodes and parses offline bundles (SPEC §12). Pure: no file I/O.
public enum OfflineBundle {
    public static let magic: [UInt8] = Array("FRYB".utf8)
    public static let formatVersion: UInt8 = 1
    /// The format of a hub-pages bundle: its pages, then the sealed extras
    /// (the commune's conflicts, the hub's quarantine notices; SPEC §12.1).
    public static let extrasFormatVersion: UInt8 = 2
    /// Longest agent id a header carries (SPEC §9.4 bounds ids to 128 bytes).
    public static let maxAgentIDBytes = 128
    /// Bytes of the header after the agent id, the digest included.
    static let fixedTail = 8 * 5 + 4 + 8 + 32

    /// The bundle file: header, digest, then `u32be(|e|) ‖ e` for each envelope.
    /// The digest is BLAKE2b-256 over every byte before it and the content after it.
    /// With `extras` (hub pages only: sealed ``BundleExtrasV1``), format 2 and
    /// `u32be(|X|) ‖ X` after the envelopes.
    public static func encode(_ header: OfflineBundleHeader, entries: [[UInt8]], extras: [UInt8]? = nil) -> [UInt8] {
        var content: [UInt8] = []
        content.reserveCapacity(entries.reduce(0) { $0 + 4 + $1.count } + 4 + (extras?.count ?? 0))
        for e in entries {
            content += be32(UInt32(clamping: e.count))
            content += e
        }
        let withExtras = extras != nil && header.kind == .hubPages
        if withExtras, let extras {
            content += be32(UInt32(clamping: extras.count))
            content += extras
        }
        var h = magic + [withExtras ? extrasFormatVersion : formatVersion, header.kind.rawValue]
        h += header.hubFingerprint.prefix(8) + [UInt8](repeating: 0, count: max(0, 8 - header.hubFingerprint.count))
        h += header.recipientKeyID.prefix(8) + [UInt8](repeating: 0, count: max(0, 8 - header.recipientKeyID.count))
        let id = Array(header.agentID.utf8.prefix(maxAgentIDBytes))
        h.append(UInt8(id.count))
        h += id
        for v in [header.serial, header.seqFrom, header.seqTo, header.ack, header.createdMs] { h += be64(v) }
        h += be32(UInt32(clamping: entries.count))
        h += be64(UInt64(content.count))
        return h + digest(h + content) + content
    }

    /// Parses a bundle and checks its framing: magic, version, the bounds of
    /// `limits`, the digest, and that the envelopes' clear headers (§3, not yet
    /// authenticated) tile the header's range in order and name the right author.
    /// Nothing in the result is authenticated: each envelope still goes through §7.
    /// - Throws: ``BundleError`` (`not_a_bundle`, `unsupported_version`,
    ///   `truncated`, `oversized`, `corrupted`, `malformed`); never traps.
    public static func parse(_ bytes: [UInt8], limits: OfflineBundleLimits = .standard) throws(BundleError) -> (
        header: OfflineBundleHeader, entries: [[UInt8]]
    ) {
        let p = try parseWithExtras(bytes, limits: limits)
        return (p.header, p.entries)
    }

    /// As ``parse(_:limits:)``, with the sealed extras a format-2 hub-pages
    /// bundle carries (unopened: the agent opens them with its session key).
    public static func parseWithExtras(_ bytes: [UInt8], limits: OfflineBundleLimits = .standard)
        throws(BundleError) -> (header: OfflineBundleHeader, entries: [[UInt8]], extras: [UInt8]?)
    {
        guard bytes.count <= limits.maxBytes else {
            throw BundleError(
                .oversized,
                "the file is \(bytes.count) bytes, over the \(limits.maxBytes)-byte limit for a bundle: it is not a Ferry bundle, or it must be split (export bundles more often)"
            )
        }
        guard bytes.count >= 6 else { throw truncatedFile }
        guard Array(bytes[0..<4]) == magic else {
            throw BundleError(
                .notABundle,
                "this file is not a Ferry bundle (it does not start with FRYB): check that you picked the file written by `ferry agent export-bundle` or `ferry hub export-bundle`"
            )
        }
        guard bytes[4] == formatVersion || bytes[4] == extrasFormatVersion else {
            throw BundleError(
                .unsupportedVersion,
                "the bundle has format version \(bytes[4]); this ferry reads versions \(formatVersion) and \(extrasFormatVersion): update the older side's software"
            )
        }
        let withExtras = bytes[4] == extrasFormatVersion
        var r = Reader(bytes: bytes, at: 5)
        guard let kindByte = r.u8() else { throw truncatedFile }
        guard let kind = OfflineBundleHeader.Kind(rawValue: kindByte) else {
            throw BundleError(
                .malformed, "the bundle's kind byte is \(kindByte), neither 1 (changes) nor 2 (hub pages)")
        }
        guard let fingerprint = r.bytes(8), let recipient = r.bytes(8), let idLength = r.u8() else {
            throw truncatedFile
        }
        guard idLength >= 1, Int(idLength) <= maxAgentIDBytes else {
            throw BundleError(.malformed, "the bundle's agent id is \(idLength) bytes long (1…\(maxAgentIDBytes))")
        }
        guard let idBytes = r.bytes(Int(idLength)) else { throw truncatedFile }
        guard let agentID = String(validating: idBytes, as: UTF8.self) else {
            throw BundleError(.malformed, "the bundle's agent id is not UTF-8 text")
        }
        guard let serial = r.u64(), let seqFrom = r.u64(), let seqTo = r.u64(), let ack = r.u64(),
            let created = r.u64(), let count32 = r.u32(), let contentLength = r.u64()
        else { throw truncatedFile }
        let headerEnd = r.at
        guard let sum = r.bytes(32) else { throw truncatedFile }
        // Bounds on the header's numbers before any of them sizes anything.
        guard count32 >= 1, Int(exactly: count32).map({ $0 <= limits.maxEntries }) == true else {
            throw BundleError(
                .oversized, "the bundle says it holds \(count32) change sets; a bundle holds 1…\(limits.maxEntries)")
        }
        let count = Int(count32)
        let remaining = bytes.count - r.at
        guard let length = Int(exactly: contentLength), length <= limits.maxBytes else {
            throw BundleError(
                .oversized,
                "the bundle says its content is \(contentLength) bytes, over the \(limits.maxBytes)-byte limit"
            )
        }
        guard length <= remaining else {
            throw BundleError(
                .truncated,
                "the bundle is cut short: it should hold \(length) bytes of change sets, the file has \(remaining) (the copy to the USB stick did not finish): copy or export it again"
            )
        }
        guard length == remaining else {
            throw BundleError(
                .corrupted,
                "the file has \(remaining - length) bytes after the bundle's end: it is damaged; export it again")
        }
        guard digest(Array(bytes[0..<headerEnd]) + Array(bytes[r.at...])) == sum else {
            throw BundleError(
                .corrupted,
                "the bundle's content does not match its digest: the file is damaged (a failing USB stick, or an interrupted copy); nothing was imported, export it again"
            )
        }
        var entries: [[UInt8]] = []
        entries.reserveCapacity(count)
        for i in 0..<count {
            guard let n32 = r.u32() else { throw truncatedFile }
            guard let n = Int(exactly: n32), n <= limits.maxEnvelopeBytes else {
                throw BundleError(
                    .oversized, "change set \(i + 1) of the bundle is \(n32) bytes, over \(limits.maxEnvelopeBytes)")
            }
            guard let e = r.bytes(n) else { throw truncatedFile }
            entries.append(e)
        }
        var extras: [UInt8]?
        if withExtras {
            guard kind == .hubPages else {
                throw BundleError(.malformed, "a bundle of change sets for the hub cannot carry the hub's extras")
            }
            guard let n32 = r.u32() else { throw truncatedFile }
            guard let n = Int(exactly: n32), n <= limits.maxEnvelopeBytes else {
                throw BundleError(
                    .oversized, "the bundle's conflicts and notices are \(n32) bytes, over \(limits.maxEnvelopeBytes)")
            }
            guard let b = r.bytes(n) else { throw truncatedFile }
            extras = b
        }
        guard r.at == bytes.count else {
            throw BundleError(.malformed, "the bundle has bytes after its \(count) change sets")
        }
        let header = OfflineBundleHeader(
            kind: kind, hubFingerprint: fingerprint, recipientKeyID: recipient, agentID: agentID, serial: serial,
            seqFrom: seqFrom, seqTo: seqTo, ack: ack, createdMs: created, count: count)
        try checkTiling(header, entries)
        return (header, entries, extras)
    }

    /// The string a bundle's quarantine notices are signed under in place of a
    /// change-set id (SPEC §12.4): `"bundle-" ‖ dec(serial)`.
    public static func noticesContext(serial: UInt64) -> String { "bundle-\(serial)" }

    /// The entries' clear headers must run from `seqFrom` to `seqTo` without a
    /// gap or an overlap and name the right author (SPEC §12.2).
    static func checkTiling(_ h: OfflineBundleHeader, _ entries: [[UInt8]]) throws(BundleError) {
        var next = h.seqFrom
        for (i, e) in entries.enumerated() {
            let eh: ChangeSetHeader
            do {
                eh = try Envelope.peek(e)
            } catch {
                throw BundleError(.malformed, "change set \(i + 1) of the bundle is not a Ferry envelope: \(error)")
            }
            switch h.kind {
            case .changes:
                guard eh.origin.rawValue == h.agentID else {
                    throw BundleError(
                        .wrongAgent,
                        "change set \(i + 1) of the bundle was written by \(eh.origin), not by agent \(h.agentID) named in the bundle"
                    )
                }
                guard eh.seqFrom == next, eh.seqFrom >= 1, eh.seqTo >= eh.seqFrom else {
                    throw BundleError(
                        .malformed,
                        "change set \(i + 1) covers \(eh.seqFrom)…\(eh.seqTo) where the bundle's range continues at \(next)"
                    )
                }
            case .hubPages:
                // A page with nothing new has the empty range seq_to = seq_from − 1 (§9.4).
                guard eh.origin == .hub, eh.seqFrom == next, eh.seqFrom >= 1, eh.seqTo >= eh.seqFrom - 1 else {
                    throw BundleError(
                        .malformed,
                        "page \(i + 1) of the bundle covers \(eh.seqFrom)…\(eh.seqTo) from \(eh.origin) where the bundle's range continues at \(next) from the hub"
                    )
                }
            }
            guard eh.seqTo < UInt64.max else { throw BundleError(.malformed, "a range ends at 2^64−1") }
            next = eh.seqTo + 1
        }
        guard next == h.seqTo &+ 1 else {
            throw BundleError(
                .malformed, "the bundle's change sets end at \(next &- 1), its header says \(h.seqTo)")
        }
    }

    static var truncatedFile: BundleError {
        BundleError(
            .truncated,
            "the bundle is cut short (the copy to the USB stick did not finish, or the stick was pulled out early): copy or export it again"
        )
    }

    static func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
    static func be64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

    /// A bounds-checked cursor over untrusted bytes: every read returns nil past the end.
    struct Reader {
        let bytes: [UInt8]
        var at: Int

        mutating func bytes(_ n: Int) -> [UInt8]? {
            guard n >= 0, n <= bytes.count - at else { return nil }
            defer { at += n }
            return Array(bytes[at..<(at + n)])
        }
        mutating func u8() -> UInt8? { bytes(1)?.first }
        mutating func u32() -> UInt32? { bytes(4).map { $0.reduce(0) { $0 << 8 | UInt32($1) } } }
        mutating func u64() -> UInt64? { bytes(8).map { $0.reduce(0) { $0 << 8 | UInt64($1) } } }
    }
}
