import FerryCrypto
import Testing

struct SigningTests {
    @Test func aSignatureVerifiesOnlyForItsMessageAndKey() {
        let k = SigningKeyPair()
        let other = SigningKeyPair()
        let message = Array("Nguyễn Văn An, thửa 412".utf8)
        let sig = k.sign(message)
        #expect(sig.count == 64)
        #expect(k.publicKey.verify(signature: sig, of: message))
        #expect(!k.publicKey.verify(signature: sig, of: message + [0]))
        #expect(!other.publicKey.verify(signature: sig, of: message))
        var flipped = sig
        flipped[10] ^= 0x01
        #expect(!k.publicKey.verify(signature: flipped, of: message))
        #expect(!k.publicKey.verify(signature: Array(sig.prefix(63)), of: message))
        #expect(!k.publicKey.verify(signature: [], of: message))
    }

    @Test func aSeedGivesTheSameKeysEveryTime() throws {
        let seed = [UInt8](1...32)
        let a = try SigningKeyPair(seed: seed)
        let b = try SigningKeyPair(seed: seed)
        #expect(a.publicKey == b.publicKey)
        #expect(a.seed.exported == seed)
        // Ed25519 signatures are deterministic.
        #expect(a.sign([1, 2, 3]) == b.sign([1, 2, 3]))
        #expect(a.publicKey.id == keyID(of: a.publicKey.bytes) && a.publicKey.id.count == 8)
        #expect(try SigningPublicKey(bytes: a.publicKey.bytes) == a.publicKey)
    }

    @Test func theEmptyMessageCanBeSigned() {
        let k = SigningKeyPair()
        #expect(k.publicKey.verify(signature: k.sign([]), of: []))
    }
}

struct KeyExchangeTests {
    @Test func clientAndServerDeriveMatchingDirectionalKeys() throws {
        let agent = KXKeyPair()
        let hub = KXKeyPair()
        let a = try agent.clientSessionKeys(server: hub.publicKey)
        let h = try hub.serverSessionKeys(client: agent.publicKey)
        #expect(a.transmit.exported == h.receive.exported)
        #expect(a.receive.exported == h.transmit.exported)
        #expect(a.transmit.exported != a.receive.exported)
        #expect(a.transmit.count == 32)
    }

    @Test func aDifferentPeerGivesDifferentKeys() throws {
        let agent = KXKeyPair()
        let k1 = try agent.clientSessionKeys(server: KXKeyPair().publicKey)
        let k2 = try agent.clientSessionKeys(server: KXKeyPair().publicKey)
        #expect(k1.transmit.exported != k2.transmit.exported)
    }

    @Test func seedsAndSecretKeysRebuildTheSameKeyPair() throws {
        let seed = [UInt8](0x41...0x60)
        let a = try KXKeyPair(seed: seed)
        let b = try KXKeyPair(seed: seed)
        #expect(a.publicKey == b.publicKey)
        let c = try KXKeyPair(secretKey: a.secretKey.exported)
        #expect(c.publicKey == a.publicKey)
        #expect(a.publicKey.id.count == 8)
    }

    @Test func aLowOrderPeerKeyIsRefusedNotTrapped() throws {
        let agent = KXKeyPair()
        let zero = try KXPublicKey(bytes: [UInt8](repeating: 0, count: 32))
        #expect(throws: CryptoError.keyExchangeFailed) { try agent.clientSessionKeys(server: zero) }
        #expect(throws: CryptoError.keyExchangeFailed) { try agent.serverSessionKeys(client: zero) }
    }
}

struct AEADTests {
    static let key = SecretBytes([UInt8](repeating: 7, count: 32))
    static let nonce = [UInt8](repeating: 9, count: 24)
    static let ad = Array("FRY1 header".utf8)
    static let plain = Array("Thửa đất số 412, Thôn Đông".utf8)

    @Test func sealedBytesOpenToThePlaintext() throws {
        let ct = try AEAD.seal(Self.plain, associatedData: Self.ad, nonce: Self.nonce, key: Self.key)
        #expect(ct.count == Self.plain.count + AEAD.tagBytes)
        #expect(try AEAD.open(ct, associatedData: Self.ad, nonce: Self.nonce, key: Self.key) == Self.plain)
        let empty = try AEAD.seal([], associatedData: [], nonce: Self.nonce, key: Self.key)
        #expect(try AEAD.open(empty, associatedData: [], nonce: Self.nonce, key: Self.key) == [])
    }

    @Test func everyFlippedCiphertextByteIsRefused() throws {
        let ct = try AEAD.seal(Self.plain, associatedData: Self.ad, nonce: Self.nonce, key: Self.key)
        for i in ct.indices {
            var bad = ct
            bad[i] ^= 0x80
            #expect(throws: CryptoError.authenticationFailed) {
                try AEAD.open(bad, associatedData: Self.ad, nonce: Self.nonce, key: Self.key)
            }
        }
    }

    @Test func alteredAssociatedDataNonceOrLengthIsRefused() throws {
        let ct = try AEAD.seal(Self.plain, associatedData: Self.ad, nonce: Self.nonce, key: Self.key)
        var ad = Self.ad
        ad[0] ^= 1
        #expect(throws: CryptoError.authenticationFailed) {
            try AEAD.open(ct, associatedData: ad, nonce: Self.nonce, key: Self.key)
        }
        #expect(throws: CryptoError.authenticationFailed) {
            try AEAD.open(ct, associatedData: [], nonce: Self.nonce, key: Self.key)
        }
        var nonce = Self.nonce
        nonce[23] ^= 1
        #expect(throws: CryptoError.authenticationFailed) {
            try AEAD.open(ct, associatedData: Self.ad, nonce: nonce, key: Self.key)
        }
        #expect(throws: CryptoError.authenticationFailed) {
            try AEAD.open(Array(ct.dropLast()), associatedData: Self.ad, nonce: Self.nonce, key: Self.key)
        }
        for n in 0..<AEAD.tagBytes {
            #expect(throws: CryptoError.authenticationFailed) {
                try AEAD.open(
                    [UInt8](repeating: 0, count: n), associatedData: Self.ad, nonce: Self.nonce, key: Self.key)
            }
        }
    }

    @Test func theWrongKeyIsRefused() throws {
        let ct = try AEAD.seal(Self.plain, associatedData: Self.ad, nonce: Self.nonce, key: Self.key)
        let other = SecretBytes([UInt8](repeating: 8, count: 32))
        #expect(throws: CryptoError.authenticationFailed) {
            try AEAD.open(ct, associatedData: Self.ad, nonce: Self.nonce, key: other)
        }
        // And with session keys: what the agent sealed opens only with the hub's receive key.
        let agent = KXKeyPair()
        let hub = KXKeyPair()
        let a = try agent.clientSessionKeys(server: hub.publicKey)
        let h = try hub.serverSessionKeys(client: agent.publicKey)
        let sealed = try AEAD.seal(Self.plain, associatedData: Self.ad, nonce: Self.nonce, key: a.transmit)
        #expect(try AEAD.open(sealed, associatedData: Self.ad, nonce: Self.nonce, key: h.receive) == Self.plain)
        #expect(throws: CryptoError.authenticationFailed) {
            try AEAD.open(sealed, associatedData: Self.ad, nonce: Self.nonce, key: h.transmit)
        }
        #expect(throws: CryptoError.authenticationFailed) {
            try AEAD.open(sealed, associatedData: Self.ad, nonce: Self.nonce, key: a.receive)
        }
    }
}

struct KeyLengthTests {
    @Test(arguments: [0, 1, 16, 31, 33, 64])
    func wrongLengthKeysAndSeedsThrowInsteadOfTrapping(_ n: Int) {
        let bytes = [UInt8](repeating: 3, count: n)
        #expect(throws: CryptoError.badKeyLength(expected: 32, got: n)) { try SigningPublicKey(bytes: bytes) }
        #expect(throws: CryptoError.badKeyLength(expected: 32, got: n)) { try SigningKeyPair(seed: bytes) }
        #expect(throws: CryptoError.badKeyLength(expected: 32, got: n)) { try KXPublicKey(bytes: bytes) }
        #expect(throws: CryptoError.badKeyLength(expected: 32, got: n)) { try KXKeyPair(seed: bytes) }
        #expect(throws: CryptoError.badKeyLength(expected: 32, got: n)) { try KXKeyPair(secretKey: bytes) }
        let key = SecretBytes(bytes)
        let nonce = [UInt8](repeating: 0, count: 24)
        #expect(throws: CryptoError.badKeyLength(expected: 32, got: n)) {
            try AEAD.seal([1], associatedData: [], nonce: nonce, key: key)
        }
        #expect(throws: CryptoError.badKeyLength(expected: 32, got: n)) {
            try AEAD.open([UInt8](repeating: 0, count: 32), associatedData: [], nonce: nonce, key: key)
        }
    }

    @Test(arguments: [0, 12, 23, 25])
    func wrongLengthNoncesThrow(_ n: Int) {
        let key = SecretBytes([UInt8](repeating: 3, count: 32))
        let nonce = [UInt8](repeating: 0, count: n)
        #expect(throws: CryptoError.badNonceLength) { try AEAD.seal([1], associatedData: [], nonce: nonce, key: key) }
        #expect(throws: CryptoError.badNonceLength) {
            try AEAD.open([UInt8](repeating: 0, count: 32), associatedData: [], nonce: nonce, key: key)
        }
    }

    @Test func hexRoundTripsAndRefusesMalformedText() {
        let bytes: [UInt8] = [0, 1, 0x7f, 0x80, 0xfe, 0xff]
        #expect(hex(bytes) == "00017f80feff")
        #expect(unhex("00017F80FEFF") == bytes)
        #expect(unhex("abc") == nil)
        #expect(unhex("zz") == nil)
        #expect(unhex("") == [])
        #expect(
            constantTimeEqual([1, 2], [1, 2]) && !constantTimeEqual([1, 2], [1, 3]) && !constantTimeEqual([1], [1, 2]))
    }
}
