import FerryCrypto
import Testing

struct SmokeCryptoTests {
    @Test func signAndVerify() {
        let k = SigningKeyPair()
        let sig = k.sign([1, 2, 3])
        #expect(k.publicKey.verify(signature: sig, of: [1, 2, 3]))
        #expect(!k.publicKey.verify(signature: sig, of: [1, 2, 4]))
    }
}
