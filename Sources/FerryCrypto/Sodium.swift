import CSodium

/// One-time libsodium initialisation; every entry point of this module calls it.
enum Sodium {
    static let ready: Bool = sodium_init() >= 0

    static func ensure() {
        // sodium_init is idempotent and thread-safe; reading `ready` runs it once.
        _ = ready
    }
}

/// Secret key material: one heap buffer, zeroed when the last reference goes.
public final class SecretBytes: @unchecked Sendable {
    // @unchecked: the buffer is written only in init and read-only afterwards.
    private let buffer: UnsafeMutableRawBufferPointer

    /// Copies `bytes` into a fresh buffer.
    public init(_ bytes: some Collection<UInt8>) {
        buffer = .allocate(byteCount: max(bytes.count, 1), alignment: 16)
        buffer.copyBytes(from: bytes)
        count = bytes.count
    }

    /// Fills a fresh buffer of `count` bytes by calling `fill`.
    init(count: Int, fill: (UnsafeMutablePointer<UInt8>) -> Void) {
        buffer = .allocate(byteCount: max(count, 1), alignment: 16)
        fill(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self))
        self.count = count
    }

    /// Length in bytes.
    public let count: Int

    /// Gives `body` read access to the secret.
    public func withBytes<R>(_ body: (UnsafePointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafePointer(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)))
    }

    /// A copy of the bytes, for writing the key to its 0600 file.
    public var exported: [UInt8] { withBytes { Array(UnsafeBufferPointer(start: $0, count: count)) } }

    deinit {
        sodium_memzero(buffer.baseAddress, buffer.count)
        buffer.deallocate()
    }
}

/// Random bytes from libsodium's CSPRNG.
public func randomBytes(_ count: Int) -> [UInt8] {
    Sodium.ensure()
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { buf in
        if let base = buf.baseAddress { randombytes_buf(base, count) }
    }
    return out
}

/// A short, stable id for a public key: the first 8 bytes of its BLAKE2b hash.
public func keyID(of publicKey: [UInt8]) -> [UInt8] {
    Sodium.ensure()
    var out = [UInt8](repeating: 0, count: 8)
    _ = crypto_generichash(&out, 8, publicKey, UInt64(publicKey.count), nil, 0)
    return out
}

/// A 32-byte BLAKE2b digest of `bytes`.
public func digest(_ bytes: [UInt8]) -> [UInt8] {
    Sodium.ensure()
    var out = [UInt8](repeating: 0, count: 32)
    _ = crypto_generichash(&out, 32, bytes, UInt64(bytes.count), nil, 0)
    return out
}

/// Constant-time equality of two byte strings of equal length.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    Sodium.ensure()
    guard a.count == b.count else { return false }
    return sodium_memcmp(a, b, a.count) == 0
}

/// Lower-case hex.
public func hex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// Parses hex (either case); nil when malformed.
public func unhex(_ text: String) -> [UInt8]? {
    let u = Array(text.utf8)
    guard u.count % 2 == 0 else { return nil }
    func n(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(u.count / 2)
    var i = 0
    while i < u.count {
        guard let a = n(u[i]), let b = n(u[i + 1]) else { return nil }
        out.append(a << 4 | b)
        i += 2
    }
    return out
}
