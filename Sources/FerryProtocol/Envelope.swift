import FerryCore
import FerryCrypto
import Foundation
import SwiftProtobuf

/// Size limits a receiver enforces before doing any work (SPEC §7).
public struct EnvelopeLimits: Sendable {
    /// Whole envelope, bytes.
    public var maxEnvelopeBytes: Int
    /// Body after decompression, bytes.
    public var maxBodyBytes: Int
    /// Header, bytes.
    public var maxHeaderBytes: Int

    public init(maxEnvelopeBytes: Int = 8 << 20, maxBodyBytes: Int = 64 << 20, maxHeaderBytes: Int = 1024) {
        self.maxEnvelopeBytes = maxEnvelopeBytes
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderBytes = maxHeaderBytes
    }
    public static let standard = EnvelopeLimits()
}

/// Every stage of sealing one change set, for the audit trail and test vectors.
public struct SealedChangeSet: Sendable {
    public var header: ChangeSetHeader
    /// Protobuf header bytes.
    public var headerBytes: [UInt8]
    /// Body before compression.
    public var bodyBytes: [UInt8]
    /// Body after compression.
    public var compressedBody: [UInt8]
    /// Ed25519 signature over ``Envelope/signedMessage(headerBytes:compressedBody:)``.
    public var signature: [UInt8]
    public var nonce: [UInt8]
    /// The bytes that go on the wire.
    public var envelope: [UInt8]
}

/// A change set that passed authentication and signature checks.
public struct OpenedChangeSet: Sendable {
    public var header: ChangeSetHeader
    public var body: ChangeSetBody
    /// Header ‖ signature ‖ compressed body: what the hub keeps as the signed audit record.
    public var signedRecord: [UInt8]
}

/// The envelope: encode → compress → sign → seal, and the reverse (SPEC §3–§6).
///
/// Wire layout: `"FRY1"` ‖ u8 envelope version (1) ‖ u32be header length H ‖
/// header (H bytes, protobuf) ‖ nonce (24) ‖ XChaCha20-Poly1305 ciphertext of
/// (signature (64) ‖ compressed body), with every byte before the nonce as
/// associated data.
public enum Envelope {
    public static let magic: [UInt8] = Array("FRY1".utf8)
    public static let envelopeVersion: UInt8 = 1
    static let signContext: [UInt8] = Array("ferry/changeset/v1".utf8) + [0]

    /// The message the author signs: context ‖ u32be(H) ‖ header ‖ compressed body.
    public static func signedMessage(headerBytes: [UInt8], compressedBody: [UInt8]) -> [UInt8] {
        signContext + be32(UInt32(headerBytes.count)) + headerBytes + compressedBody
    }

    /// Seals a change set.
    /// - Parameters:
    ///   - header: compression and body size are filled in here.
    ///   - signer: the author's Ed25519 key.
    ///   - key: the transmit key from crypto_kx with the recipient.
    ///   - nonce: 24 bytes; random when nil (tests and vectors pass one).
    public static func seal(
        header: ChangeSetHeader, body: ChangeSetBody, signer: SigningKeyPair, key: SecretBytes, nonce: [UInt8]? = nil,
        zstdLevel: Int32 = 3
    ) throws(CryptoError) -> SealedChangeSet {
        try seal(
            header: header, bodyBytes: BodyCodec.encode(body), signer: signer, key: key, nonce: nonce,
            zstdLevel: zstdLevel)
    }

    /// Seals body bytes as they are, encoded or not: for fuzzing the receiver
    /// past the signature check with bytes no encoder would write.
    public static func seal(
        header: ChangeSetHeader, bodyBytes: [UInt8], signer: SigningKeyPair, key: SecretBytes, nonce: [UInt8]? = nil,
        zstdLevel: Int32 = 3
    ) throws(CryptoError) -> SealedChangeSet {
        var header = header
        let compressed = Compressor.compress(bodyBytes, header.compression, level: zstdLevel)
        header.bodySize = UInt32(clamping: bodyBytes.count)
        let headerBytes = encodeHeader(header)
        let signature = signer.sign(signedMessage(headerBytes: headerBytes, compressedBody: compressed))
        let nonce = nonce ?? randomBytes(AEAD.nonceBytes)
        let ad = magic + [envelopeVersion] + be32(UInt32(headerBytes.count)) + headerBytes
        let ct = try AEAD.seal(signature + compressed, associatedData: ad, nonce: nonce, key: key)
        return SealedChangeSet(
            header: header, headerBytes: headerBytes, bodyBytes: bodyBytes, compressedBody: compressed,
            signature: signature, nonce: nonce, envelope: ad + nonce + ct)
    }

    /// Reads the clear-text header without authenticating anything, so the
    /// receiver can find the author's keys. Nothing in it may be trusted yet.
    public static func peek(_ bytes: [UInt8], limits: EnvelopeLimits = .standard) throws(ChangeSetError)
        -> ChangeSetHeader
    {
        try frame(bytes, limits: limits).header
    }

    /// Authenticates, verifies and decodes an envelope.
    /// - Parameters:
    ///   - recipientKeyID: the id of the receiver's own X25519 key.
    ///   - author: the author's Ed25519 key, looked up from the header's origin.
    ///   - key: the receive key from crypto_kx with the author.
    ///   - normalize: NFC-normalise strings (bytes from agents).
    /// - Throws: ``ChangeSetError`` for truncated, foreign, oversized, tampered, forged or malformed input.
    public static func open(
        _ bytes: [UInt8], recipientKeyID: [UInt8], author: SigningPublicKey, key: SecretBytes,
        limits: EnvelopeLimits = .standard, normalize: Bool = true
    ) throws(ChangeSetError) -> OpenedChangeSet {
        let f = try frame(bytes, limits: limits)
        let header = f.header
        do {
            guard header.recipientKeyID == recipientKeyID else { throw ChangeSetError.wrongKey }
            guard header.senderKeyID == author.id else { throw ChangeSetError.unknownKey(hex(header.senderKeyID)) }
            let plain: [UInt8]
            do {
                plain = try AEAD.open(
                    Array(bytes[f.nonceEnd...]), associatedData: Array(bytes[..<f.headerEnd]),
                    nonce: Array(bytes[f.headerEnd..<f.nonceEnd]), key: key)
            } catch {
                throw ChangeSetError.tampered
            }
            guard plain.count >= 64 else { throw ChangeSetError.truncated("no signature") }
            let signature = Array(plain[..<64])
            let compressed = Array(plain[64...])
            let headerBytes = Array(bytes[(f.headerEnd - f.headerLength)..<f.headerEnd])
            guard
                author.verify(
                    signature: signature, of: signedMessage(headerBytes: headerBytes, compressedBody: compressed))
            else { throw ChangeSetError.badSignature }
            let raw = try Compressor.decompress(compressed, header.compression, size: Int(header.bodySize))
            let body = try BodyCodec.decode(raw, normalize: normalize)
            return OpenedChangeSet(
                header: header, body: body, signedRecord: be32(UInt32(headerBytes.count)) + headerBytes + plain)
        } catch {
            throw error.about(header)
        }
    }

    /// Verifies a stored audit record (``OpenedChangeSet/signedRecord``) against the author's key.
    public static func verifyAuditRecord(_ record: [UInt8], author: SigningPublicKey) -> Bool {
        guard record.count >= 4 else { return false }
        let h = Int(read32(record, 0))
        guard record.count >= 4 + h + 64 else { return false }
        let headerBytes = Array(record[4..<(4 + h)])
        let sig = Array(record[(4 + h)..<(4 + h + 64)])
        let body = Array(record[(4 + h + 64)...])
        return author.verify(signature: sig, of: signedMessage(headerBytes: headerBytes, compressedBody: body))
    }

    struct Frame {
        var header: ChangeSetHeader
        var headerLength: Int
        var headerEnd: Int
        var nonceEnd: Int
    }

    static func frame(_ bytes: [UInt8], limits: EnvelopeLimits) throws(ChangeSetError) -> Frame {
        guard bytes.count <= limits.maxEnvelopeBytes else {
            throw .oversized(bytes.count, limit: limits.maxEnvelopeBytes)
        }
        guard bytes.count >= 9 else { throw .truncated("\(bytes.count) bytes, no header") }
        guard Array(bytes[0..<4]) == magic else { throw .badMagic }
        guard bytes[4] == envelopeVersion else { throw .unsupportedVersion(UInt32(bytes[4])) }
        let h = Int(read32(bytes, 5))
        guard h <= limits.maxHeaderBytes else { throw .oversized(h, limit: limits.maxHeaderBytes) }
        let headerEnd = 9 + h
        let nonceEnd = headerEnd + AEAD.nonceBytes
        guard bytes.count >= nonceEnd + AEAD.tagBytes else {
            throw .truncated("\(bytes.count) bytes, header says \(h)")
        }
        let header = try decodeHeader(Array(bytes[9..<headerEnd]))
        guard header.protocolVersion == protocolVersion else {
            throw ChangeSetError.unsupportedVersion(header.protocolVersion).about(header)
        }
        guard Int(header.bodySize) <= limits.maxBodyBytes else {
            throw ChangeSetError.oversized(Int(header.bodySize), limit: limits.maxBodyBytes).about(header)
        }
        return Frame(header: header, headerLength: h, headerEnd: headerEnd, nonceEnd: nonceEnd)
    }

    /// Protobuf bytes of a header.
    public static func encodeHeader(_ h: ChangeSetHeader) -> [UInt8] {
        var m = Ferry_V1_ChangeSetHeaderV1()
        m.protocolVersion = h.protocolVersion
        m.changeSetID = Data(h.id)
        m.origin = h.origin.rawValue
        m.seqFrom = h.seqFrom
        m.seqTo = h.seqTo
        m.ack = h.ack
        m.senderKeyID = Data(h.senderKeyID)
        m.recipientKeyID = Data(h.recipientKeyID)
        m.createdHlc = h.createdHLC.raw
        m.compression = Ferry_V1_CompressionV1(rawValue: h.compression.rawValue) ?? .compressionNone
        m.bodySize = h.bodySize
        m.commune = h.commune
        m.more = h.more
        return ((try? m.serializedBytes() as [UInt8]) ?? [])
    }

    /// Decodes untrusted header bytes.
    public static func decodeHeader(_ bytes: [UInt8]) throws(ChangeSetError) -> ChangeSetHeader {
        let m: Ferry_V1_ChangeSetHeaderV1
        do {
            m = try Ferry_V1_ChangeSetHeaderV1(serializedBytes: bytes)
        } catch {
            throw .malformed("the header is not valid protobuf")
        }
        guard m.changeSetID.count == 16 else { throw .malformed("the change-set id must be 16 bytes") }
        guard let compression = Compression(rawValue: m.compression.rawValue) else {
            throw .malformed("unknown compression \(m.compression.rawValue)")
        }
        return ChangeSetHeader(
            id: [UInt8](m.changeSetID), origin: OriginID(m.origin), seqFrom: m.seqFrom, seqTo: m.seqTo, ack: m.ack,
            senderKeyID: [UInt8](m.senderKeyID), recipientKeyID: [UInt8](m.recipientKeyID),
            createdHLC: HLC(raw: m.createdHlc), compression: compression, commune: m.commune, more: m.more,
            protocolVersion: m.protocolVersion, bodySize: m.bodySize)
    }

    static func be32(_ x: UInt32) -> [UInt8] {
        [
            UInt8(x >> 24), UInt8(truncatingIfNeeded: x >> 16), UInt8(truncatingIfNeeded: x >> 8),
            UInt8(truncatingIfNeeded: x),
        ]
    }

    static func read32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }
}

extension Error {
    func about(_ header: ChangeSetHeader) -> ChangeSetError {
        (self as? ChangeSetError ?? .malformed("\(self)")).about(header)
    }
}
