import FerryCrypto
import Foundation

/// A replica's long-term keys: Ed25519 for signing, X25519 for crypto_kx.
public struct Identity: Sendable {
    public let signing: SigningKeyPair
    public let kx: KXKeyPair

    public init(signing: SigningKeyPair = SigningKeyPair(), kx: KXKeyPair = KXKeyPair()) {
        self.signing = signing
        self.kx = kx
    }

    /// Fingerprint pinned by enrollment tokens: BLAKE2b-64 of sign_pk ‖ kx_pk (SPEC §9).
    public var fingerprint: [UInt8] { Identity.fingerprint(sign: signing.publicKey.bytes, kx: kx.publicKey.bytes) }

    public static func fingerprint(sign: [UInt8], kx: [UInt8]) -> [UInt8] { keyID(of: sign + kx) }

    /// Reads a key file (JSON with hex `sign_seed` and `kx_secret`).
    /// - Throws: a message naming the file when it is missing or malformed.
    public static func load(path: String) throws -> Identity {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IdentityError("key file \(path) is missing: run the init or enroll command first")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: String],
            let s = obj["sign_seed"].flatMap(unhex), let k = obj["kx_secret"].flatMap(unhex)
        else { throw IdentityError("key file \(path) is malformed") }
        do {
            return Identity(signing: try SigningKeyPair(seed: s), kx: try KXKeyPair(secretKey: k))
        } catch {
            throw IdentityError("key file \(path) holds a bad key: \(error)")
        }
    }

    /// Writes the key file with mode 0600.
    public func save(path: String) throws {
        let obj = [
            "sign_seed": hex(signing.seed.exported), "kx_secret": hex(kx.secretKey.exported),
            "sign_public": hex(signing.publicKey.bytes), "kx_public": hex(kx.publicKey.bytes),
        ]
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted])
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
            let fh = FileHandle(forWritingAtPath: path)
        else { throw IdentityError("cannot write key file \(path): check the directory's permissions and free space") }
        try fh.write(contentsOf: data)
        try fh.synchronize()
        try fh.close()
    }
}

/// A key-file problem, with the path and what to do.
public struct IdentityError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A one-time enrollment token: `ferry1.<commune>.<secret hex>.<hub fingerprint hex>` (SPEC §9).
public struct EnrollmentToken: Sendable, Equatable, CustomStringConvertible {
    public var commune: String
    public var secret: [UInt8]
    public var hubFingerprint: [UInt8]

    public init(commune: String, secret: [UInt8], hubFingerprint: [UInt8]) {
        self.commune = commune
        self.secret = secret
        self.hubFingerprint = hubFingerprint
    }

    public init?(_ text: String) {
        let p = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").map(String.init)
        guard p.count == 4, p[0] == "ferry1", !p[1].isEmpty, let s = unhex(p[2]), s.count == 16, let f = unhex(p[3]),
            f.count == 8
        else { return nil }
        self.init(commune: p[1], secret: s, hubFingerprint: f)
    }

    public var description: String { "ferry1.\(commune).\(hex(secret)).\(hex(hubFingerprint))" }
}

/// The hub's signed acknowledgement of an upload (SPEC §9.3): an agent drops
/// queued writes only on an answer the hub's pinned key signed.
public enum AckAuth {
    public static func message(agent: String, changeSet: String, cursor: UInt64, status: String) -> [UInt8] {
        Array("ferry/ack/v1\n\(agent)\n\(changeSet)\n\(cursor)\n\(status)".utf8)
    }
}

/// The signed pull request (SPEC §9): what the agent signs to ask for changes.
public enum PullAuth {
    /// `maxBytes` is signed as the agent sent it, whatever bound the hub then applies.
    public static func message(agent: String, since: UInt64, maxBytes: UInt64, timeMs: UInt64) -> [UInt8] {
        Array("ferry/pull/v1\n\(agent)\n\(since)\n\(maxBytes)\n\(timeMs)".utf8)
    }

    public static func message(agent: String, since: UInt64, maxBytes: Int, timeMs: UInt64) -> [UInt8] {
        message(agent: agent, since: since, maxBytes: UInt64(clamping: maxBytes), timeMs: timeMs)
    }
}
