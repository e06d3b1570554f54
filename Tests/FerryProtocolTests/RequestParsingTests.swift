import FerryCrypto
import FerryProtocol
import Foundation
import Testing

struct PullRequestParsingTests {
    static let sig = String(repeating: "ab", count: 64)
    static let headers = [
        "x-ferry-agent": "a-24781-0011aabb", "x-ferry-time": "1764000000000", "x-ferry-signature": sig,
    ]

    func refusal(_ query: [String: String], _ headers: [String: String] = headers) -> RequestError? {
        do {
            _ = try PullRequestV1.parse(query: query, headers: headers)
            return nil
        } catch {
            return error
        }
    }

    @Test func aWellFormedPullParsesToItsValues() throws {
        let p = try PullRequestV1.parse(query: ["since": "41", "max_bytes": "262144"], headers: Self.headers)
        #expect(p.agentID == "a-24781-0011aabb")
        #expect(p.since == 41 && p.maxBytes == 262_144 && p.timeMs == 1_764_000_000_000)
        #expect(p.signature == [UInt8](repeating: 0xab, count: 64))
        let noMax = try PullRequestV1.parse(query: ["since": "18446744073709551615"], headers: Self.headers)
        #expect(noMax.maxBytes == nil && noMax.since == UInt64.max)
    }

    @Test func aMaxBytesAtUInt64MaxIsReadAsSentAndANonNumberIsABadRequest() throws {
        // Before: the number failed to parse, a default was signed instead, and the hub answered 401.
        let p = try PullRequestV1.parse(
            query: ["since": "0", "max_bytes": "18446744073709551615"], headers: Self.headers)
        #expect(p.maxBytes == UInt64.max)
        let e = refusal(["since": "0", "max_bytes": "18446744073709551616"])
        #expect(e?.code == .badRequest)
        #expect(e?.message.contains("max_bytes") == true)
    }

    @Test(arguments: ["", "-1", "+5", " 5", "5 ", "1e3", "0x10", "18446744073709551616", "٣"])
    func aSinceThatIsNotADecimalUInt64IsRefused(_ text: String) {
        let e = refusal(["since": text])
        #expect(e?.code == .badRequest, "since=\(text)")
        #expect(e?.message.contains("since") == true)
    }

    @Test func missingOrMalformedHeadersAreRefusedWithTheirName() {
        #expect(refusal([:])?.message.contains("a pull needs since") == true)
        var h = Self.headers
        h["x-ferry-time"] = "yesterday"
        #expect(refusal(["since": "1"], h)?.message.contains("X-Ferry-Time") == true)
        h = Self.headers
        h["x-ferry-signature"] = "abc"
        #expect(refusal(["since": "1"], h)?.message.contains("X-Ferry-Signature") == true)
        h["x-ferry-signature"] = String(repeating: "ab", count: 63)
        #expect(refusal(["since": "1"], h)?.message.contains("X-Ferry-Signature") == true)
        h = Self.headers
        h["x-ferry-agent"] = String(repeating: "a", count: PullRequestV1.maxAgentIDBytes + 1)
        #expect(refusal(["since": "1"], h)?.message.contains("X-Ferry-Agent") == true)
    }
}

struct EnrollRequestParsingTests {
    func body(_ fields: [String: String]) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: fields)) ?? Data())
    }

    @Test func aWellFormedEnrollmentParses() throws {
        let id = Identity()
        let token = EnrollmentToken(commune: "24781", secret: randomBytes(16), hubFingerprint: randomBytes(8))
        let p = try EnrollRequest.parse(
            body([
                "token": token.description, "sign_public_key": hex(id.signing.publicKey.bytes),
                "kx_public_key": hex(id.kx.publicKey.bytes), "hostname": String(repeating: "h", count: 300),
            ]))
        #expect(p.token == token)
        #expect(p.signKey == id.signing.publicKey && p.kxKey == id.kx.publicKey)
        #expect(p.hostname.count == 128)
    }

    @Test func badJSONTokensAndKeysGetTheirCodes() throws {
        let id = Identity()
        let token = EnrollmentToken(commune: "24781", secret: randomBytes(16), hubFingerprint: randomBytes(8))
        let good = [
            "token": token.description, "sign_public_key": hex(id.signing.publicKey.bytes),
            "kx_public_key": hex(id.kx.publicKey.bytes), "hostname": "pc",
        ]
        func code(_ b: [UInt8]) -> RequestError.Code? {
            do {
                _ = try EnrollRequest.parse(b)
                return nil
            } catch {
                return error.code
            }
        }
        #expect(code(Array("{".utf8)) == .badRequest)
        #expect(code(body(good.filter { $0.key != "hostname" })) == .badRequest)
        #expect(code(body(good.merging(["token": "ferry1.x.y.z"]) { $1 })) == .badToken)
        #expect(code(body(good.merging(["sign_public_key": "zz"]) { $1 })) == .badRequest)
        #expect(code(body(good.merging(["kx_public_key": "abcd"]) { $1 })) == .badRequest)
    }
}
