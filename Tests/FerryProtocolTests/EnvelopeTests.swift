import FerryCore
import FerryCrypto
import FerryProtocol
import FerryTesting
import Foundation
import Testing

/// An agent-01 → hub change set with the vector keys, and the hub's side.
struct EnvelopeFixture {
    let p: VectorFixtures.Parties
    let stranger: SigningKeyPair
    let strangerKX: KXKeyPair
    var header: ChangeSetHeader
    var body: ChangeSetBody

    init(compression: Compression = .zstd) throws {
        p = try VectorFixtures.Parties()
        stranger = try SigningKeyPair(seed: VectorFixtures.strangerSigningSeed)
        strangerKX = try KXKeyPair(seed: VectorFixtures.strangerKXSeed)
        header = VectorFixtures.header(p, compression: compression)
        body = VectorFixtures.body
    }

    func seal(signer: SigningKeyPair? = nil) throws -> SealedChangeSet {
        try Envelope.seal(header: header, body: body, signer: signer ?? p.agentSigning, key: p.agentSession.transmit)
    }

    func open(_ bytes: [UInt8], limits: EnvelopeLimits = .standard) throws(ChangeSetError) -> OpenedChangeSet {
        try Envelope.open(
            bytes, recipientKeyID: p.hubKX.publicKey.id, author: p.agentSigning.publicKey, key: p.hubSession.receive,
            limits: limits)
    }

    /// The hub's checks, as in the vectors: applied up to 14, clock at creation time.
    func check(
        _ cs: OpenedChangeSet, applied: UInt64 = VectorFixtures.receiverApplied, alreadySeen: Bool = false,
        clockMillis: UInt64 = VectorFixtures.createdMillis
    ) throws(ChangeSetError) -> SequenceVerdict {
        try ReceiveChecks.check(
            cs, sequence: OriginSequence(applied: applied), alreadySeen: alreadySeen,
            clock: HybridLogicalClock(wall: ManualClock(millis: clockMillis)), authorWritesOnly: true)
    }
}

/// The error `body` throws, or nil when it returns. Any other error type is an issue.
func refusal<T>(_ body: () throws -> T) -> ChangeSetError? {
    do {
        _ = try body()
        return nil
    } catch let e as ChangeSetError {
        return e
    } catch {
        Issue.record("threw \(type(of: error)), not ChangeSetError: \(error)")
        return nil
    }
}

struct EnvelopeTests {
    @Test(arguments: Compression.allCases)
    func aSealedChangeSetOpensToItsHeaderAndBody(_ c: Compression) throws {
        let f = try EnvelopeFixture(compression: c)
        let sealed = try f.seal()
        let opened = try f.open(sealed.envelope)
        #expect(opened.header == sealed.header)
        #expect(opened.body == f.body)
        #expect(try Envelope.peek(sealed.envelope) == sealed.header)
        #expect(try f.check(opened) == .apply)
        #expect(Envelope.verifyAuditRecord(opened.signedRecord, author: f.p.agentSigning.publicKey))
        #expect(!Envelope.verifyAuditRecord(opened.signedRecord, author: f.stranger.publicKey))
    }

    @Test func sealingTwiceUsesFreshNonces() throws {
        let f = try EnvelopeFixture()
        let a = try f.seal()
        let b = try f.seal()
        #expect(a.nonce != b.nonce && a.envelope != b.envelope)
        #expect(try f.open(a.envelope).body == f.open(b.envelope).body)
    }

    // MARK: One refusal per code

    @Test func truncated() throws {
        let f = try EnvelopeFixture()
        let sealed = try f.seal()
        let env = sealed.envelope
        #expect(refusal { try f.open(Array(env.prefix(8))) }?.code == .truncated)
        #expect(refusal { try f.open([]) }?.code == .truncated)
        // Cut inside the nonce: the frame is short.
        let headerEnd = 9 + sealed.headerBytes.count
        #expect(refusal { try f.open(Array(env.prefix(headerEnd + 10))) }?.code == .truncated)
    }

    @Test func badMagic() throws {
        let f = try EnvelopeFixture()
        var env = try f.seal().envelope
        env[0] = UInt8(ascii: "G")
        #expect(refusal { try f.open(env) }?.code == .badMagic)
        #expect(refusal { try Envelope.peek(Array("GET / HTTP/1.1\r\n\r\n".utf8)) }?.code == .badMagic)
    }

    @Test func unsupportedVersion() throws {
        var f = try EnvelopeFixture()
        var env = try f.seal().envelope
        env[4] = 2
        #expect(refusal { try f.open(env) }?.code == .unsupportedVersion)
        f.header.protocolVersion = 2
        let v2 = try f.seal().envelope
        let e = refusal { try f.open(v2) }
        #expect(e?.code == .unsupportedVersion)
        #expect(e?.changeSetID == hex(VectorFixtures.changeSetID))
    }

    @Test func oversizedEnvelopeHeaderAndBody() throws {
        let f = try EnvelopeFixture()
        let sealed = try f.seal()
        let env = sealed.envelope
        #expect(
            refusal { try f.open(env, limits: EnvelopeLimits(maxEnvelopeBytes: env.count - 1)) }?.code == .oversized)
        #expect(
            refusal { try f.open(env, limits: EnvelopeLimits(maxHeaderBytes: sealed.headerBytes.count - 1)) }?.code
                == .oversized)
        #expect(
            refusal { try f.open(env, limits: EnvelopeLimits(maxBodyBytes: Int(sealed.header.bodySize) - 1)) }?.code
                == .oversized)
        #expect(throws: Never.self) {
            try f.open(
                env,
                limits: EnvelopeLimits(
                    maxEnvelopeBytes: env.count, maxBodyBytes: Int(sealed.header.bodySize),
                    maxHeaderBytes: sealed.headerBytes.count))
        }
        // A header length of 4 GiB - 1 is refused before anything is read.
        var huge = env
        huge.replaceSubrange(5..<9, with: [0xff, 0xff, 0xff, 0xff])
        #expect(refusal { try f.open(huge) }?.code == .oversized)
    }

    @Test func wrongKey() throws {
        let f = try EnvelopeFixture()
        let env = try f.seal().envelope
        // A hub whose X25519 key is not the one the agent sealed for.
        let e = refusal {
            try Envelope.open(
                env, recipientKeyID: f.strangerKX.publicKey.id, author: f.p.agentSigning.publicKey,
                key: f.p.hubSession.receive)
        }
        #expect(e?.code == .wrongKey)
        #expect(e?.origin == "agent-01")
    }

    @Test func unknownKey() throws {
        let f = try EnvelopeFixture()
        let env = try f.seal().envelope
        let e = refusal {
            try Envelope.open(
                env, recipientKeyID: f.p.hubKX.publicKey.id, author: f.stranger.publicKey, key: f.p.hubSession.receive)
        }
        #expect(e?.code == .unknownKey)
        #expect(e?.message.contains(hex(f.p.agentSigning.publicKey.id)) == true)
    }

    @Test func tamperedHeaderCiphertextNonceOrSessionKey() throws {
        let f = try EnvelopeFixture()
        let sealed = try f.seal()
        let env = sealed.envelope
        // A header byte: the origin "agent-01" becomes "agent-02", still a valid header.
        let at = try #require(VectorFixtures.indexOf(Array("agent-01".utf8), in: env))
        var header = env
        header[at + 7] = UInt8(ascii: "2")
        #expect(try Envelope.peek(header).origin == OriginID("agent-02"))
        #expect(refusal { try f.open(header) }?.code == .tampered)
        // The ack (a varint in the header).
        var ack = sealed.header
        ack.ack += 1
        let swapped =
            VectorFixtures.associatedData(headerBytes: Envelope.encodeHeader(ack))
            + Array(env[(9 + sealed.headerBytes.count)...])
        #expect(refusal { try f.open(swapped) }?.code == .tampered)
        // A ciphertext byte, the tag, the nonce.
        for i in [env.count - 1, env.count - 17, env.count - 40, 9 + sealed.headerBytes.count] {
            var bad = env
            bad[i] ^= 0x40
            #expect(refusal { try f.open(bad) }?.code == .tampered, "byte \(i)")
        }
        // Sealed under the hub's transmit key instead of the agent's.
        #expect(
            refusal {
                try Envelope.open(
                    env, recipientKeyID: f.p.hubKX.publicKey.id, author: f.p.agentSigning.publicKey,
                    key: f.p.hubSession.transmit)
            }?.code == .tampered)
    }

    @Test func badSignature() throws {
        let f = try EnvelopeFixture()
        // Sealed correctly for the hub, the header names agent-01's key, but another key signed.
        let env = try f.seal(signer: f.stranger).envelope
        #expect(refusal { try f.open(env) }?.code == .badSignature)
    }

    @Test func malformedBodyOrHeader() throws {
        let f = try EnvelopeFixture()
        let p = f.p
        func raw(_ h: ChangeSetHeader, _ body: [UInt8]) throws -> [UInt8] {
            try VectorFixtures.sealRaw(
                headerBytes: Envelope.encodeHeader(h), compressedBody: body, signer: p.agentSigning,
                key: p.agentSession.transmit)
        }
        var h = VectorFixtures.header(p, compression: .none)
        h.bodySize = 2
        let cut = try raw(h, [0x0a, 0x09])  // protobuf cut short
        #expect(refusal { try f.open(cut) }?.code == .malformed)
        h.bodySize = 5
        let sizeDiffers = try raw(h, [0x0a, 0x09])
        #expect(refusal { try f.open(sizeDiffers) }?.code == .malformed)
        h.compression = .zstd
        h.bodySize = 10
        let zstd = try raw(h, [0x28, 0xb5, 0x2f, 0xfd, 0, 0])
        #expect(refusal { try f.open(zstd) }?.code == .malformed)
        h.compression = .zlib
        let zlib = try raw(h, [0x78, 0x9c, 1, 2, 3])
        #expect(refusal { try f.open(zlib) }?.code == .malformed)
        // Headers that are not valid: garbage, a short id, an unknown compression.
        let garbageHeader: [UInt8] = [0xff, 0xff, 0xff]
        let frame = Envelope.magic + [1] + VectorFixtures.be32(3) + garbageHeader + [UInt8](repeating: 0, count: 40)
        #expect(refusal { try f.open(frame) }?.code == .malformed)
        var short = VectorFixtures.header(p, compression: .zstd)
        short.id = [1, 2, 3]
        let shortID =
            VectorFixtures.associatedData(headerBytes: Envelope.encodeHeader(short)) + [UInt8](repeating: 0, count: 40)
        #expect(refusal { try f.open(shortID) }?.code == .malformed)
        var m = try Ferry_V1_ChangeSetHeaderV1(
            serializedBytes: Envelope.encodeHeader(VectorFixtures.header(p, compression: .zstd)))
        m.compression = Ferry_V1_CompressionV1(rawValue: 7) ?? .compressionNone
        let unknownCompression =
            VectorFixtures.associatedData(headerBytes: try m.serializedBytes()) + [UInt8](repeating: 0, count: 40)
        #expect(refusal { try f.open(unknownCompression) }?.code == .malformed)
    }

    // MARK: Receive checks

    @Test func replayed() throws {
        let f = try EnvelopeFixture()
        let opened = try f.open(try f.seal().envelope)
        let e = refusal { try f.check(opened, alreadySeen: true) }
        #expect(e?.code == .replayed)
        #expect(e?.changeSetID == hex(VectorFixtures.changeSetID))
    }

    @Test func duplicateReDeliveryIsAcknowledgedAndAppliesNothing() throws {
        let f = try EnvelopeFixture()
        let opened = try f.open(try f.seal().envelope)
        // The hub applied 15...21 already (for example, the acknowledgement was lost).
        #expect(try f.check(opened, applied: 21) == .duplicate)
        #expect(try f.check(opened, applied: 30) == .duplicate)
    }

    @Test func outOfSequenceGapAndOverlap() throws {
        let f = try EnvelopeFixture()
        let opened = try f.open(try f.seal().envelope)  // covers 15...21
        let gap = refusal { try f.check(opened, applied: 10) }
        #expect(gap?.code == .outOfSequence && gap?.expectedSeq == 11)
        let overlap = refusal { try f.check(opened, applied: 17) }
        #expect(overlap?.code == .outOfSequence && overlap?.expectedSeq == 18)
        #expect(overlap?.origin == "agent-01")
    }

    @Test func futureTimestamp() throws {
        var f = try EnvelopeFixture()
        let opened = try f.open(try f.seal().envelope)
        // The receiver's clock is 11 minutes behind the change set.
        #expect(
            refusal { try f.check(opened, clockMillis: VectorFixtures.createdMillis - 11 * 60_000) }?.code
                == .futureTimestamp)
        #expect(try f.check(opened, clockMillis: VectorFixtures.createdMillis - 9 * 60_000) == .apply)
        // A write stamped in 2099, in a change set created now.
        f.body.writes[0].id.hlc = HLC(millis: 4_070_908_800_000, counter: 0)
        let far = try f.open(try f.seal().envelope)
        let e = refusal { try f.check(far) }
        #expect(e?.code == .futureTimestamp)
    }

    @Test func causality() throws {
        for broken in 0..<3 {
            var f = try EnvelopeFixture()
            var w = f.body.writes[5]
            let later = WriteID(hlc: HLC(raw: w.id.hlc.raw + 1), origin: .hub)
            switch broken {
            case 0: w.prev = [later]
            case 1: w.alive = later
            default: w.covers = [later]
            }
            f.body.writes[5] = w
            let opened = try f.open(try f.seal().envelope)
            #expect(refusal { try f.check(opened) }?.code == .causality, "case \(broken)")
        }
    }

    @Test func malformedByTheReceiveChecks() throws {
        // A record without a scope.
        var f = try EnvelopeFixture()
        f.body.scopes[VectorFixtures.deletedRecord] = nil
        let noScope = try f.open(try f.seal().envelope)
        #expect(noScope.body.scopes[VectorFixtures.deletedRecord] == nil)
        // SPEC §5.1: the empty scope is refused with `scope`, not `malformed`.
        #expect(refusal { try f.check(noScope) }?.code == .scope)
        // A write by another origin in an agent's change set.
        f = try EnvelopeFixture()
        f.body.writes[2].id.origin = OriginID("agent-02")
        let foreign = try f.open(try f.seal().envelope)
        #expect(refusal { try f.check(foreign) }?.code == .malformed)
        // A range that does not count the writes.
        f = try EnvelopeFixture()
        f.header.seqTo += 1
        let miscounted = try f.open(try f.seal().envelope)
        #expect(refusal { try f.check(miscounted) }?.code == .malformed)
        // A range starting at 0.
        f = try EnvelopeFixture()
        f.header.seqFrom = 0
        let zero = try f.open(try f.seal().envelope)
        #expect(refusal { try f.check(zero, applied: 0) }?.code == .malformed)
    }

    // MARK: Never trap

    @Test func everyPrefixOfAnEnvelopeIsRefusedNeverTrapped() throws {
        let f = try EnvelopeFixture()
        let env = try f.seal().envelope
        var codes = Set<ChangeSetError.Code>()
        for n in 0..<env.count {
            let prefix = Array(env.prefix(n))
            if let e = refusal({ try f.open(prefix) }) {
                codes.insert(e.code)
            } else {
                Issue.record("prefix of \(n) bytes opened")
            }
            _ = try? Envelope.peek(prefix)
        }
        #expect(codes.isSubset(of: [.truncated, .malformed, .tampered]))
    }

    @Test func everySingleByteFlipIsRefused() throws {
        let f = try EnvelopeFixture()
        let env = try f.seal().envelope
        for i in env.indices {
            for bit in [0x01, 0x80] as [UInt8] {
                var bad = env
                bad[i] ^= bit
                #expect(refusal { try f.open(bad) } != nil, "byte \(i) bit \(bit)")
            }
        }
    }

    @Test func randomGarbageAndGarbageAfterAValidFrameAreRefused() throws {
        let f = try EnvelopeFixture()
        let env = try f.seal().envelope
        var rng = SeededGenerator(seed: 2024)
        for _ in 0..<500 {
            let n = Int.random(in: 0...300, using: &rng)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if Bool.random(using: &rng) { bytes = Array(env.prefix(9 + Int.random(in: 0...40, using: &rng))) + bytes }
            #expect(refusal { try f.open(bytes) } != nil)
        }
        #expect(refusal { try f.open(env + [0]) }?.code == .tampered)
    }
}
