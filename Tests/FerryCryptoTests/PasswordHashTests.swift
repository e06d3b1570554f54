import FerryCrypto
import Testing

struct PasswordHashTests {
    @Test func aHashVerifiesOnlyItsPasswordAndIsSaltedArgon2id() throws {
        let h = try #require(PasswordHash.hash("mật khẩu của Lan", cost: .test))
        #expect(h.hasPrefix("$argon2id$"), "\(h)")
        #expect(PasswordHash.verify("mật khẩu của Lan", against: h))
        #expect(!PasswordHash.verify("mật khẩu của lan", against: h))
        #expect(!PasswordHash.verify("", against: h))
        let again = try #require(PasswordHash.hash("mật khẩu của Lan", cost: .test))
        #expect(again != h, "each hash has its own salt")
        #expect(!PasswordHash.verify("x", against: "not a hash"))
        #expect(!PasswordHash.verify("x", against: String(repeating: "$", count: 500)))
    }

    @Test func overlongPasswordsAreRefusedBeforeHashing() {
        let long = String(repeating: "a", count: PasswordHash.maxPasswordBytes + 1)
        #expect(PasswordHash.hash(long, cost: .test) == nil)
        #expect(!PasswordHash.verify(long, against: PasswordHash.hash("a", cost: .test) ?? ""))
    }
}
