import CSodium

/// Operator passwords, hashed with libsodium's `crypto_pwhash_str` (Argon2id):
/// the result is a self-describing string (algorithm, cost, salt, hash), so a
/// hash made at one cost still verifies after the default changes.
public enum PasswordHash {
    /// How much work one hash costs.
    public enum Cost: String, Sendable, CaseIterable {
        /// libsodium's interactive limits (~64 MiB, a fraction of a second): the hub's default.
        case interactive
        /// libsodium's minimum limits. Only for tests, where hundreds of hashes must stay fast;
        /// chosen explicitly (`ferry hub serve --password-cost test`), never by default.
        case test

        var limits: (ops: UInt64, mem: Int) {
            switch self {
            case .interactive: (UInt64(crypto_pwhash_opslimit_interactive()), crypto_pwhash_memlimit_interactive())
            case .test: (UInt64(crypto_pwhash_opslimit_min()), crypto_pwhash_memlimit_min())
            }
        }
    }

    /// Passwords longer than this are refused before hashing (bounds the work one request can ask for).
    public static let maxPasswordBytes = 1024

    /// The hash string of `password`; nil when libsodium fails (out of memory) or the password is too long.
    public static func hash(_ password: String, cost: Cost = .interactive) -> String? {
        Sodium.ensure()
        let pw = Array(password.utf8)
        guard pw.count <= maxPasswordBytes else { return nil }
        let size = crypto_pwhash_strbytes()
        var out = [CChar](repeating: 0, count: size)
        let (ops, mem) = cost.limits
        // A C string is never empty (its NUL), so its pointer exists even for "".
        let c = Array(password.utf8CString)
        let rc = crypto_pwhash_str(&out, c, UInt64(pw.count), ops, mem)
        guard rc == 0 else { return nil }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// True when `password` matches `stored` (a string from ``hash(_:cost:)``).
    public static func verify(_ password: String, against stored: String) -> Bool {
        Sodium.ensure()
        let pw = Array(password.utf8)
        var s = Array(stored.utf8).map { CChar(bitPattern: $0) }
        guard pw.count <= maxPasswordBytes, s.count < crypto_pwhash_strbytes() else { return false }
        s.append(0)
        return crypto_pwhash_str_verify(s, Array(password.utf8CString), UInt64(pw.count)) == 0
    }
}
