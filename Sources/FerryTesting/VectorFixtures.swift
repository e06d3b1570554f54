import FerryCore
import FerryCrypto
import FerryProtocol

/// The fixed inputs of the change-set vectors (protocol/vectors), and the
/// helpers that build vectors and crafted bad envelopes from them.
public enum VectorFixtures {
    /// 32 bytes counting up from `first` (0x01, 0x02, …).
    public static func counting(from first: UInt8, count: Int = 32) -> [UInt8] {
        (0..<count).map { first &+ UInt8($0) }
    }

    public static let agentSigningSeed = counting(from: 0x01)
    public static let agentKXSeed = counting(from: 0x21)
    public static let hubSigningSeed = counting(from: 0x41)
    public static let hubKXSeed = counting(from: 0x61)
    /// Keys of a stranger: another agent or hub, for wrong-key cases.
    public static let strangerSigningSeed = counting(from: 0x81)
    public static let strangerKXSeed = counting(from: 0xa1)
    public static let changeSetID = counting(from: 0xc0, count: 16)
    public static let nonce = counting(from: 0xd0, count: 24)

    public static let origin = OriginID("agent-01")
    public static let commune = "26734"
    /// 2025-11-24T16:00:00Z.
    public static let createdMillis: UInt64 = 1_764_000_000_000
    /// The hub had applied the author's writes up to 14.
    public static let receiverApplied: UInt64 = 14

    /// The parties' keys, derived from the fixed seeds.
    public struct Parties: Sendable {
        public let agentSigning: SigningKeyPair
        public let agentKX: KXKeyPair
        public let hubSigning: SigningKeyPair
        public let hubKX: KXKeyPair
        public let agentSession: SessionKeys
        public let hubSession: SessionKeys

        public init() throws {
            agentSigning = try SigningKeyPair(seed: agentSigningSeed)
            agentKX = try KXKeyPair(seed: agentKXSeed)
            hubSigning = try SigningKeyPair(seed: hubSigningSeed)
            hubKX = try KXKeyPair(seed: hubKXSeed)
            agentSession = try agentKX.clientSessionKeys(server: hubKX.publicKey)
            hubSession = try hubKX.serverSessionKeys(client: agentKX.publicKey)
        }
    }

    static func hlc(_ millisBefore: UInt64, _ counter: UInt16 = 0) -> HLC {
        HLC(millis: createdMillis - millisBefore, counter: counter)
    }

    static func rid(_ s: String) -> RecordID {
        // The literals below are valid; a typo shows up as the zero id in the vectors.
        RecordID(s) ?? RecordID(high: 0, low: 0)
    }

    public static let newRecord = rid("0193a5f2-7c1d-7e4b-9a3f-2b6c8d0e1f42")
    public static let updatedRecord = rid("0193a5f3-0a4e-7abc-8def-0123456789ab")
    public static let deletedRecord = rid("0193a5f4-1b5f-7222-b333-444455556666")

    /// The plaintext change set: a new land record (string, int, double, date,
    /// Vietnamese text), an update with prev and alive, a delete with covers.
    public static var body: ChangeSetBody {
        let me = origin
        func id(_ before: UInt64, _ c: UInt16 = 0, _ o: OriginID = origin) -> WriteID {
            WriteID(hlc: hlc(before, c), origin: o)
        }
        let writes = [
            FieldWrite(record: newRecord, field: "owner", id: id(60_000, 0), value: .string("Nguyễn Văn An")),
            FieldWrite(record: newRecord, field: "parcel_no", id: id(60_000, 1), value: .int(412)),
            FieldWrite(record: newRecord, field: "area_m2", id: id(60_000, 2), value: .double(356.4)),
            FieldWrite(
                record: newRecord, field: "issued_on", id: id(60_000, 3),
                value: .date(CivilDate(year: 2019, month: 6, day: 3).daysSinceEpoch)),
            FieldWrite(record: newRecord, field: "village", id: id(60_000, 4), value: .string("Thôn Đông, xã Yên Sở")),
            FieldWrite(
                record: updatedRecord, field: "owner", id: id(30_000), prev: [id(86_400_000, 0, .hub)],
                value: .string("Trần Thị Bích Ngọc"), alive: id(3_600_000, 0, .hub)),
            FieldWrite(
                record: deletedRecord, field: deletedField, id: id(10_000), prev: [id(200_000, 0, me)],
                value: .bool(true),
                covers: [id(500_000, 0, me), id(400_000, 0, .hub)]),
        ]
        let scope = RecordScope(formID: "land-parcel", formVersion: 1, commune: commune)
        return ChangeSetBody(writes: writes, scopes: [newRecord: scope, updatedRecord: scope, deletedRecord: scope])
    }

    /// The header the agent seals (body size is filled in by sealing).
    public static func header(_ p: Parties, compression: Compression) -> ChangeSetHeader {
        ChangeSetHeader(
            id: changeSetID, origin: origin, seqFrom: receiverApplied + 1, seqTo: receiverApplied + 7, ack: 42,
            senderKeyID: p.agentSigning.publicKey.id, recipientKeyID: p.hubKX.publicKey.id,
            createdHLC: HLC(millis: createdMillis, counter: 0), compression: compression, commune: commune)
    }

    /// The vector for `compression`, every stage computed here.
    public static func vector(compression: Compression) throws -> ChangeSetVector {
        let p = try Parties()
        let sealed = try Envelope.seal(
            header: header(p, compression: compression), body: body, signer: p.agentSigning,
            key: p.agentSession.transmit,
            nonce: nonce)
        let ad = associatedData(headerBytes: sealed.headerBytes)
        func party(_ s: SigningKeyPair, _ sSeed: [UInt8], _ k: KXKeyPair, _ kSeed: [UInt8]) -> ChangeSetVector.Party {
            .init(
                ed25519Seed: hex(sSeed), ed25519Public: hex(s.publicKey.bytes), signingKeyID: hex(s.publicKey.id),
                x25519Seed: hex(kSeed), x25519Public: hex(k.publicKey.bytes), kxKeyID: hex(k.publicKey.id))
        }
        let plaintext = sealed.signature + sealed.compressedBody
        return ChangeSetVector(
            description: "Ferry change set v1, agent -> hub, compression \(ChangeSetVector.name(of: compression)). "
                + "Rebuild every stage from the inputs and compare byte for byte; then open the envelope with the hub's keys.",
            keys: .init(
                agent: party(p.agentSigning, agentSigningSeed, p.agentKX, agentKXSeed),
                hub: party(p.hubSigning, hubSigningSeed, p.hubKX, hubKXSeed)),
            session: .init(
                agentTx: hex(p.agentSession.transmit.exported), agentRx: hex(p.agentSession.receive.exported),
                hubTx: hex(p.hubSession.transmit.exported), hubRx: hex(p.hubSession.receive.exported)),
            header: .init(sealed.header), body: .init(body), nonce: hex(nonce), receiverApplied: receiverApplied,
            stages: .init(
                body: hex(sealed.bodyBytes), compressedBody: hex(sealed.compressedBody),
                header: hex(sealed.headerBytes),
                signedMessage: hex(
                    Envelope.signedMessage(headerBytes: sealed.headerBytes, compressedBody: sealed.compressedBody)),
                signature: hex(sealed.signature), associatedData: hex(ad), plaintext: hex(plaintext),
                ciphertext: hex(Array(sealed.envelope[(ad.count + nonce.count)...])), envelope: hex(sealed.envelope)))
    }

    // MARK: Raw envelopes

    /// u32 big-endian.
    public static func be32(_ x: UInt32) -> [UInt8] {
        [
            UInt8(x >> 24), UInt8(truncatingIfNeeded: x >> 16), UInt8(truncatingIfNeeded: x >> 8),
            UInt8(truncatingIfNeeded: x),
        ]
    }

    /// "FRY1" ‖ version ‖ u32be(header length) ‖ header (SPEC §3).
    public static func associatedData(headerBytes: [UInt8], version: UInt8 = Envelope.envelopeVersion) -> [UInt8] {
        Envelope.magic + [version] + be32(UInt32(headerBytes.count)) + headerBytes
    }

    /// Seals arbitrary header and body bytes following the wire layout, so a
    /// test can make envelopes ``Envelope/seal(header:body:signer:key:nonce:)`` never would.
    public static func sealRaw(
        headerBytes: [UInt8], compressedBody: [UInt8], signer: SigningKeyPair, key: SecretBytes, nonce: [UInt8] = nonce
    ) throws -> [UInt8] {
        let signature = signer.sign(Envelope.signedMessage(headerBytes: headerBytes, compressedBody: compressedBody))
        let ad = associatedData(headerBytes: headerBytes)
        return ad + nonce + (try AEAD.seal(signature + compressedBody, associatedData: ad, nonce: nonce, key: key))
    }

    /// A receiver in the state the vectors assume: the hub, having applied the
    /// author's writes up to ``receiverApplied``, its clock at the vector's
    /// creation time. Opens, then runs ``ReceiveChecks``.
    public static func receive(_ bytes: [UInt8], parties p: Parties) throws(ChangeSetError) -> OpenedChangeSet {
        let opened = try Envelope.open(
            bytes, recipientKeyID: p.hubKX.publicKey.id, author: p.agentSigning.publicKey, key: p.hubSession.receive)
        let clock = HybridLogicalClock(wall: ManualClock(millis: createdMillis))
        _ = try ReceiveChecks.check(
            opened, sequence: OriginSequence(applied: receiverApplied), alreadySeen: false, clock: clock,
            authorWritesOnly: true)
        return opened
    }

    /// A crafted bad envelope and the code a receiver must refuse it with.
    public struct BadEnvelope: Sendable {
        public var file: String
        public var code: ChangeSetError.Code
        public var why: String
        public var bytes: [UInt8]
    }

    /// The crafted bad envelopes of protocol/vectors/malformed.
    public static func badEnvelopes() throws -> [BadEnvelope] {
        let p = try Parties()
        let stranger = try SigningKeyPair(seed: strangerSigningSeed)
        let strangerKX = try KXKeyPair(seed: strangerKXSeed)
        let good = try Envelope.seal(
            header: header(p, compression: .zstd), body: body, signer: p.agentSigning, key: p.agentSession.transmit,
            nonce: nonce)
        let env = good.envelope
        var out: [BadEnvelope] = []
        func add(_ file: String, _ code: ChangeSetError.Code, _ why: String, _ bytes: [UInt8]) {
            out.append(BadEnvelope(file: file, code: code, why: why, bytes: bytes))
        }
        func sealed(_ h: ChangeSetHeader, _ b: ChangeSetBody = body, signer: SigningKeyPair? = nil) throws -> [UInt8] {
            try Envelope.seal(
                header: h, body: b, signer: signer ?? p.agentSigning, key: p.agentSession.transmit, nonce: nonce
            ).envelope
        }
        add(
            "01-truncated.bin", .truncated, "the first 8 bytes of a valid envelope: no room for a header",
            Array(env.prefix(8)))
        var magic = env
        magic[3] = UInt8(ascii: "2")
        add("02-bad-magic.bin", .badMagic, "a valid envelope whose magic reads FRY2", magic)
        var version = env
        version[4] = 2
        add(
            "03-unsupported-version.bin", .unsupportedVersion, "a valid envelope whose envelope-version byte is 2",
            version)
        var long = env
        long.replaceSubrange(5..<9, with: be32(1 << 20))
        add(
            "04-oversized-header.bin", .oversized, "header length field says 1 MiB, over the 1024-byte header limit",
            long)
        var h = header(p, compression: .zstd)
        h.recipientKeyID = strangerKX.publicKey.id
        add(
            "05-wrong-key.bin", .wrongKey, "sealed for another hub's X25519 key (recipient key id of the stranger)",
            try sealed(h))
        h = header(p, compression: .zstd)
        h.senderKeyID = stranger.publicKey.id
        add(
            "06-unknown-key.bin", .unknownKey, "sender key id of a key the hub has not registered for agent-01",
            try sealed(h, signer: stranger))
        var headerFlip = env
        // The origin "agent-01" sits in the header; "agent-02" still decodes but fails authentication.
        if let at = indexOf(Array(origin.rawValue.utf8), in: env) { headerFlip[at + 7] ^= 0x03 }
        add(
            "07-tampered-header.bin", .tampered, "a header byte changed in transit (origin agent-01 -> agent-02)",
            headerFlip)
        var ctFlip = env
        ctFlip[ctFlip.count - 20] ^= 0x01
        add("08-tampered-ciphertext.bin", .tampered, "one ciphertext bit flipped", ctFlip)
        add(
            "09-bad-signature.bin", .badSignature,
            "sealed correctly for the hub, header names agent-01's key, but signed by another key",
            try sealed(header(p, compression: .zstd), signer: stranger))
        var raw = header(p, compression: .none)
        raw.bodySize = 3
        add(
            "10-malformed-body.bin", .malformed, "authentic and signed, but the body is not valid protobuf",
            try sealRaw(
                headerBytes: Envelope.encodeHeader(raw), compressedBody: [0x0a, 0xff, 0xff], signer: p.agentSigning,
                key: p.agentSession.transmit))
        h = header(p, compression: .zstd)
        h.createdHLC = HLC(millis: createdMillis + 86_400_000, counter: 0)
        add("11-future-timestamp.bin", .futureTimestamp, "created one day after the receiver's clock", try sealed(h))
        var causal = body
        causal.writes[5].prev = [WriteID(hlc: causal.writes[5].id.hlc, origin: .hub)]
        add(
            "12-causality.bin", .causality, "a write whose prev has the same hlc as the write itself",
            try sealed(header(p, compression: .zstd), causal))
        h = header(p, compression: .zstd)
        h.seqFrom = 30
        h.seqTo = 36
        add("13-out-of-sequence.bin", .outOfSequence, "covers 30...36 while the hub expects 15 (a gap)", try sealed(h))
        var foreign = body
        foreign.writes[0].id.origin = .hub
        add(
            "14-foreign-write.bin", .malformed, "an agent change set carrying a write stamped with origin hub",
            try sealed(header(p, compression: .zstd), foreign))
        h = header(p, compression: .zstd)
        h.protocolVersion = 2
        add(
            "15-protocol-version-2.bin", .unsupportedVersion,
            "an authentic envelope whose header says protocol version 2", try sealed(h))
        return out
    }

    /// The first index of `needle` in `hay`.
    public static func indexOf(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard needle.count <= hay.count else { return nil }
        return (0...(hay.count - needle.count)).first { Array(hay[$0..<($0 + needle.count)]) == needle }
    }
}
