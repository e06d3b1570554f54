import FerryCore
import FerryCrypto
import FerryProtocol
import FerryTesting
import Foundation
import Testing

/// The offline bundle parser (SPEC §12) against hostile input: the attacker
/// holds a valid agent key, so a file can say anything; every byte and number
/// gets a typed refusal or a bound, never a trap.
struct BundleTests {
    /// Three envelopes by agent-01 covering 1…3, 4…6, 7…9, and the bundle header for them.
    static func fixture(ranges: [(UInt64, UInt64)] = [(1, 3), (4, 6), (7, 9)], origin: OriginID? = nil) throws
        -> (header: OfflineBundleHeader, entries: [[UInt8]])
    {
        var f = try EnvelopeFixture()
        var entries: [[UInt8]] = []
        for (from, to) in ranges {
            f.header.id = randomBytes(16)
            f.header.seqFrom = from
            f.header.seqTo = to
            if let origin { f.header.origin = origin }
            entries.append(try f.seal().envelope)
        }
        let header = OfflineBundleHeader(
            kind: .changes,
            hubFingerprint: Identity.fingerprint(sign: f.p.hubSigning.publicKey.bytes, kx: f.p.hubKX.publicKey.bytes),
            recipientKeyID: f.p.hubKX.publicKey.id, agentID: VectorFixtures.origin.rawValue, serial: 7,
            seqFrom: ranges.first?.0 ?? 1, seqTo: ranges.last?.1 ?? 0, ack: 0, createdMs: 1_764_000_000_000,
            count: ranges.count)
        return (header, entries)
    }

    /// The code a parse was refused with, or nil when it was accepted (or threw something else).
    static func refusal(_ body: () throws -> Any) -> BundleError.Code? {
        do {
            _ = try body()
            return nil
        } catch {
            return (error as? BundleError)?.code
        }
    }

    @Test func aBundleRoundTripsWithItsHeaderAndEveryEnvelopeByteForByte() throws {
        let (h, entries) = try Self.fixture()
        let parsed = try OfflineBundle.parse(OfflineBundle.encode(h, entries: entries))
        #expect(parsed.header == h)
        #expect(parsed.entries == entries)
    }

    /// SPEC §12.1: a hub-pages bundle with its sealed extras is format 2, carries
    /// them byte for byte after the pages, and is bounded and checked like the rest.
    @Test func aHubBundleCarriesItsExtrasInFormatTwoAndEveryCutIsRefused() throws {
        var (h, entries) = try Self.fixture(ranges: [(1, 2), (3, 3)], origin: .hub)
        h.kind = .hubPages
        let extras = randomBytes(5_000)
        let bytes = OfflineBundle.encode(h, entries: entries, extras: extras)
        #expect(bytes[4] == OfflineBundle.extrasFormatVersion)
        let parsed = try OfflineBundle.parseWithExtras(bytes)
        #expect(parsed.header == h && parsed.entries == entries && parsed.extras == extras)
        #expect(try OfflineBundle.parse(bytes).entries == entries)
        // Without extras: format 1.
        let plain = OfflineBundle.encode(h, entries: entries)
        #expect(plain[4] == OfflineBundle.formatVersion)
        #expect(try OfflineBundle.parseWithExtras(plain).extras == nil)
        // A bundle for the hub never carries extras.
        let (ch, ce) = try Self.fixture(ranges: [(1, 2), (3, 3)])
        #expect(OfflineBundle.encode(ch, entries: ce, extras: extras)[4] == OfflineBundle.formatVersion)
        // Extras over the entry bound are refused before they are read.
        let largest = entries.map(\.count).max() ?? 0
        #expect(
            Self.refusal {
                try OfflineBundle.parseWithExtras(bytes, limits: OfflineBundleLimits(maxEnvelopeBytes: largest))
            } == .oversized)
        for n in stride(from: 0, to: bytes.count, by: 7) {
            #expect(Self.refusal { try OfflineBundle.parseWithExtras(Array(bytes.prefix(n))) } != nil, "cut at \(n)")
        }
        for i in stride(from: 0, to: bytes.count, by: 11) {
            var b = bytes
            b[i] ^= 0x20
            #expect(Self.refusal { try OfflineBundle.parseWithExtras(b) } != nil, "byte \(i) flipped")
        }
    }

    @Test func everyTruncationIsRefusedWithATypedError() throws {
        let (h, entries) = try Self.fixture()
        let bytes = OfflineBundle.encode(h, entries: entries)
        for n in 0..<bytes.count {
            #expect(throws: BundleError.self, "a bundle cut at \(n) of \(bytes.count) bytes") {
                try OfflineBundle.parse(Array(bytes.prefix(n)))
            }
        }
        // A cut inside the content says so in words a clerk can act on.
        let cut = #expect(throws: BundleError.self) { try OfflineBundle.parse(Array(bytes.prefix(bytes.count - 10))) }
        #expect(cut?.code == .truncated)
        #expect(cut?.message.contains("cut short") == true)
    }

    @Test func everyFlippedByteIsRefusedNeverAccepted() throws {
        let (h, entries) = try Self.fixture()
        let bytes = OfflineBundle.encode(h, entries: entries)
        var codes: Set<BundleError.Code> = []
        for i in 0..<bytes.count {
            var b = bytes
            b[i] ^= 0x41
            let e = #expect(throws: BundleError.self, "byte \(i) flipped") { try OfflineBundle.parse(b) }
            if let e { codes.insert(e.code) }
        }
        // The content and the header's numbers are covered by the digest.
        #expect(codes.contains(.corrupted))
        #expect(codes.contains(.notABundle))
        #expect(codes.contains(.unsupportedVersion))
    }

    /// The fixed header with arbitrary numbers and no content (digest over what is there).
    static func rawHeader(
        kind: UInt8 = 1, idLength: UInt8 = 8, id: [UInt8] = Array("agent-01".utf8), count: UInt32 = 1,
        contentLength: UInt64 = 0, numbers: [UInt64] = [1, 1, 1, 0, 0], content: [UInt8] = []
    ) -> [UInt8] {
        var h = Array("FRYB".utf8) + [1, kind] + [UInt8](repeating: 1, count: 16) + [idLength] + id
        for v in numbers { h += (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }
        h += (0..<4).map { UInt8(truncatingIfNeeded: count >> (24 - 8 * $0)) }
        h += (0..<8).map { UInt8(truncatingIfNeeded: contentLength >> (56 - 8 * $0)) }
        return h + digest(h + content) + content
    }

    @Test func aHeaderWithAbsurdNumbersIsRefusedBeforeAnythingIsSizedByThem() throws {
        let cases: [(String, [UInt8], BundleError.Code)] = [
            ("count 2^32-1", Self.rawHeader(count: UInt32.max), .oversized),
            ("count 0", Self.rawHeader(count: 0), .oversized),
            ("content 2^64-1", Self.rawHeader(contentLength: UInt64.max), .oversized),
            ("content past the file", Self.rawHeader(contentLength: 1 << 20), .truncated),
            ("agent id 0 bytes", Self.rawHeader(idLength: 0, id: []), .malformed),
            ("agent id 255 bytes", Self.rawHeader(idLength: 255, id: [UInt8](repeating: 0x61, count: 255)), .malformed),
            ("agent id not UTF-8", Self.rawHeader(id: [0xff, 0xfe, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61]), .malformed),
            ("kind 3", Self.rawHeader(kind: 3), .malformed),
            ("ranges at 2^64-1", Self.rawHeader(numbers: [1, .max, .max, .max, .max]), .truncated),
        ]
        for (what, bytes, code) in cases {
            let e = #expect(throws: BundleError.self, "\(what)") { try OfflineBundle.parse(bytes) }
            #expect(e?.code == code, "\(what): \(String(describing: e))")
        }
    }

    @Test func entryLengthsAreBoundedBeforeTheyAreRead() throws {
        // One entry that claims 2^32−1 bytes; the digest is right, so only the bound refuses it.
        let content: [UInt8] = [0xff, 0xff, 0xff, 0xff, 1, 2, 3]
        let bytes = Self.rawHeader(contentLength: UInt64(content.count), content: content)
        #expect(Self.refusal { try OfflineBundle.parse(bytes) } == .oversized)
    }

    @Test func aFileOverTheSizeBoundIsRefusedUnread() throws {
        let (h, entries) = try Self.fixture()
        let bytes = OfflineBundle.encode(h, entries: entries)
        #expect(
            Self.refusal { try OfflineBundle.parse(bytes, limits: OfflineBundleLimits(maxBytes: bytes.count - 1)) }
                == .oversized)
        #expect(
            Self.refusal { try OfflineBundle.parse(bytes, limits: OfflineBundleLimits(maxEntries: 2)) } == .oversized)
    }

    @Test func entriesMustTileTheHeadersRangeAndBeByTheNamedAgent() throws {
        var (h, entries) = try Self.fixture(ranges: [(1, 3), (5, 6)])
        h.seqTo = 6
        #expect(Self.refusal { try OfflineBundle.parse(OfflineBundle.encode(h, entries: entries)) } == .malformed)
        (h, entries) = try Self.fixture()
        h.seqTo = 12
        #expect(Self.refusal { try OfflineBundle.parse(OfflineBundle.encode(h, entries: entries)) } == .malformed)
        (h, entries) = try Self.fixture(origin: OriginID("a-other-00000000"))
        #expect(Self.refusal { try OfflineBundle.parse(OfflineBundle.encode(h, entries: entries)) } == .wrongAgent)
        // An entry that is not an envelope at all.
        (h, entries) = try Self.fixture(ranges: [(1, 3)])
        #expect(
            Self.refusal { try OfflineBundle.parse(OfflineBundle.encode(h, entries: [Array("not an envelope".utf8)])) }
                == .malformed)
    }

    @Test func randomBytesAfterAValidPrefixNeverTrap() throws {
        var rng = SeededGenerator(seed: 0xB0D1E5)
        let prefix = Array("FRYB".utf8) + [1]
        for round in 0..<3000 {
            let n = Int(rng.next() % 300)
            let bytes = prefix + (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(throws: BundleError.self, "seed 0xB0D1E5 round \(round)") { try OfflineBundle.parse(bytes) }
        }
    }
}
