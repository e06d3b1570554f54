import CSodium

/// Why a cryptographic operation refused its input. Never carries key material.
public struct CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Code: Sendable, Equatable {
        case badKeyLength(expected: Int, got: Int)
        case authenticationFailed
        case badNonceLength
        case keyExchangeFailed
    }
    let code: Code

    public static func badKeyLength(expected: Int, got: Int) -> CryptoError {
        .init(code: .badKeyLength(expected: expected, got: got))
    }
    public static let authenticationFailed = CryptoError(code: .authenticationFailed)
    public static let badNonceLength = CryptoError(code: .badNonceLength)
    public static let keyExchangeFailed = CryptoError(code: .keyExchangeFailed)

    public var description: String {
        switch code {
        case .badKeyLength(let e, let g): "a key must be \(e) bytes, got \(g)"
        case .authenticationFailed: "decryption failed: the data was altered or sealed under another key"
        case .badNonceLength: "the nonce has the wrong length"
        case .keyExchangeFailed: "the key exchange failed: the peer's public key is not a valid X25519 key"
        }
    }
}

/// An Ed25519 public key (32 bytes).
public struct SigningPublicKey: Sendable, Hashable {
    public let bytes: [UInt8]
    public init(bytes: [UInt8]) throws(CryptoError) {
        Sodium.ensure()
        let n = Int(crypto_sign_publickeybytes())
        guard bytes.count == n else { throw .badKeyLength(expected: n, got: bytes.count) }
        self.bytes = bytes
    }
    /// For buffers this module sized itself.
    init(checked bytes: [UInt8]) { self.bytes = bytes }

    /// 8-byte key id (``keyID(of:)``).
    public var id: [UInt8] { keyID(of: bytes) }

    /// False for a point that is not canonical, not on the curve, or of small order
    /// (libsodium's `crypto_core_ed25519_is_valid_point`): such a key proves nothing.
    public var isValidPoint: Bool { crypto_core_ed25519_is_valid_point(bytes) == 1 }

    /// True when `signature` is this key's Ed25519 signature of `message`.
    public func verify(signature: [UInt8], of message: [UInt8]) -> Bool {
        guard signature.count == Int(crypto_sign_bytes()) else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), bytes) == 0
    }
}

/// An Ed25519 key pair; the secret half is zeroed when dropped.
public struct SigningKeyPair: Sendable {
    public let publicKey: SigningPublicKey
    let secret: SecretBytes

    /// A fresh random key pair.
    public init() {
        Sodium.ensure()
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_publickeybytes()))
        let sk = SecretBytes(count: Int(crypto_sign_secretkeybytes())) { crypto_sign_keypair(&pk, $0) }
        secret = sk
        // The buffer has the exact length, so this cannot fail.
        publicKey = SigningPublicKey(checked: pk)
    }

    /// The key pair derived from a 32-byte seed (test vectors, key files).
    public init(seed: [UInt8]) throws(CryptoError) {
        Sodium.ensure()
        let n = Int(crypto_sign_seedbytes())
        guard seed.count == n else { throw .badKeyLength(expected: n, got: seed.count) }
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_publickeybytes()))
        secret = SecretBytes(count: Int(crypto_sign_secretkeybytes())) { crypto_sign_seed_keypair(&pk, $0, seed) }
        publicKey = try SigningPublicKey(bytes: pk)
    }

    /// The 32-byte seed, for the key file.
    public var seed: SecretBytes { SecretBytes(secret.exported.prefix(32)) }

    /// The detached Ed25519 signature (64 bytes) of `message`.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: Int(crypto_sign_bytes()))
        secret.withBytes { sk in _ = crypto_sign_detached(&sig, nil, message, UInt64(message.count), sk) }
        return sig
    }
}

/// An X25519 public key for crypto_kx (32 bytes).
public struct KXPublicKey: Sendable, Hashable {
    public let bytes: [UInt8]
    public init(bytes: [UInt8]) throws(CryptoError) {
        Sodium.ensure()
        let n = Int(crypto_kx_publickeybytes())
        guard bytes.count == n else { throw .badKeyLength(expected: n, got: bytes.count) }
        self.bytes = bytes
    }
    /// For buffers this module sized itself.
    init(checked bytes: [UInt8]) { self.bytes = bytes }
    /// 8-byte key id (``keyID(of:)``).
    public var id: [UInt8] { keyID(of: bytes) }
}

/// The two directional keys crypto_kx derives for one agent–hub pair.
public struct SessionKeys: Sendable {
    /// Opens what the peer sealed.
    public let receive: SecretBytes
    /// Seals what goes to the peer.
    public let transmit: SecretBytes
}

/// An X25519 key pair for crypto_kx; the secret half is zeroed when dropped.
public struct KXKeyPair: Sendable {
    public let publicKey: KXPublicKey
    let secret: SecretBytes

    /// A fresh random key pair.
    public init() {
        Sodium.ensure()
        var pk = [UInt8](repeating: 0, count: Int(crypto_kx_publickeybytes()))
        secret = SecretBytes(count: Int(crypto_kx_secretkeybytes())) { crypto_kx_keypair(&pk, $0) }
        publicKey = KXPublicKey(checked: pk)
    }

    /// The key pair derived from a 32-byte seed.
    public init(seed: [UInt8]) throws(CryptoError) {
        Sodium.ensure()
        let n = Int(crypto_kx_seedbytes())
        guard seed.count == n else { throw .badKeyLength(expected: n, got: seed.count) }
        var pk = [UInt8](repeating: 0, count: Int(crypto_kx_publickeybytes()))
        secret = SecretBytes(count: Int(crypto_kx_secretkeybytes())) { crypto_kx_seed_keypair(&pk, $0, seed) }
        publicKey = try KXPublicKey(bytes: pk)
    }

    /// The 32-byte secret key, for the key file.
    public var secretKey: SecretBytes { secret }

    /// The key pair whose secret key is `secretKey` (32 bytes).
    public init(secretKey: [UInt8]) throws(CryptoError) {
        Sodium.ensure()
        let n = Int(crypto_kx_secretkeybytes())
        guard secretKey.count == n else { throw .badKeyLength(expected: n, got: secretKey.count) }
        var pk = [UInt8](repeating: 0, count: Int(crypto_kx_publickeybytes()))
        _ = crypto_scalarmult_base(&pk, secretKey)
        secret = SecretBytes(secretKey)
        publicKey = try KXPublicKey(bytes: pk)
    }

    /// Session keys when this side is the client (an agent) talking to `server` (the hub).
    public func clientSessionKeys(server: KXPublicKey) throws(CryptoError) -> SessionKeys {
        try session(peer: server, client: true)
    }

    /// Session keys when this side is the server (the hub) talking to `client` (an agent).
    public func serverSessionKeys(client: KXPublicKey) throws(CryptoError) -> SessionKeys {
        try session(peer: client, client: false)
    }

    private func session(peer: KXPublicKey, client: Bool) throws(CryptoError) -> SessionKeys {
        let n = Int(crypto_kx_sessionkeybytes())
        var rc: Int32 = 0
        var tx = [UInt8](repeating: 0, count: n)
        let rx = SecretBytes(count: n) { rxp in
            secret.withBytes { sk in
                rc =
                    client
                    ? crypto_kx_client_session_keys(rxp, &tx, publicKey.bytes, sk, peer.bytes)
                    : crypto_kx_server_session_keys(rxp, &tx, publicKey.bytes, sk, peer.bytes)
            }
        }
        let txs = SecretBytes(tx)
        tx.withUnsafeMutableBytes { buf in if let b = buf.baseAddress { sodium_memzero(b, buf.count) } }
        guard rc == 0 else { throw .keyExchangeFailed }
        return SessionKeys(receive: rx, transmit: txs)
    }
}

/// XChaCha20-Poly1305 (IETF) authenticated encryption.
public enum AEAD {
    /// Nonce length: 24 bytes.
    public static var nonceBytes: Int { Int(crypto_aead_xchacha20poly1305_ietf_npubbytes()) }
    /// Tag length: 16 bytes.
    public static var tagBytes: Int { Int(crypto_aead_xchacha20poly1305_ietf_abytes()) }
    /// Key length: 32 bytes.
    public static var keyBytes: Int { Int(crypto_aead_xchacha20poly1305_ietf_keybytes()) }

    /// Encrypts `plaintext`, binding `associatedData`. Output: ciphertext ‖ tag.
    public static func seal(_ plaintext: [UInt8], associatedData: [UInt8], nonce: [UInt8], key: SecretBytes)
        throws(CryptoError) -> [UInt8]
    {
        Sodium.ensure()
        guard nonce.count == nonceBytes else { throw .badNonceLength }
        guard key.count == keyBytes else { throw .badKeyLength(expected: keyBytes, got: key.count) }
        var out = [UInt8](repeating: 0, count: plaintext.count + tagBytes)
        var outLen: UInt64 = 0
        key.withBytes { k in
            _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                &out, &outLen, plaintext, UInt64(plaintext.count), associatedData, UInt64(associatedData.count), nil,
                nonce, k)
        }
        return out
    }

    /// Decrypts and authenticates.
    /// - Throws: ``CryptoError/authenticationFailed`` when anything was altered or the key is wrong.
    public static func open(_ ciphertext: [UInt8], associatedData: [UInt8], nonce: [UInt8], key: SecretBytes)
        throws(CryptoError) -> [UInt8]
    {
        Sodium.ensure()
        guard nonce.count == nonceBytes else { throw .badNonceLength }
        guard key.count == keyBytes else { throw .badKeyLength(expected: keyBytes, got: key.count) }
        guard ciphertext.count >= tagBytes else { throw .authenticationFailed }
        var out = [UInt8](repeating: 0, count: ciphertext.count - tagBytes)
        var outLen: UInt64 = 0
        let rc = key.withBytes { k in
            crypto_aead_xchacha20poly1305_ietf_decrypt(
                &out, &outLen, nil, ciphertext, UInt64(ciphertext.count), associatedData, UInt64(associatedData.count),
                nonce, k)
        }
        guard rc == 0 else { throw .authenticationFailed }
        return Array(out.prefix(Int(outLen)))
    }
}
