import FerryCrypto
import FerryProtocol
import Testing

/// Hostile headers on `/v1/uploads/{id}` (SPEC §9.10): every offset, length
/// and flag from outside is checked, refused with a typed error, never trapped on.
struct ResumableUploadTests {
    static let id = String(repeating: "ab", count: 16)
    static func headers(_ extra: [String: String] = [:]) -> [String: String] {
        [
            "x-ferry-agent": "agent-1", "x-ferry-time": "1700000000000",
            "x-ferry-signature": String(repeating: "00", count: 64),
            "upload-length": "1000", "x-ferry-digest": String(repeating: "cd", count: 32),
        ].merging(extra) { _, b in b }
    }

    @Test func aWellFormedRequestParses() throws {
        let r = try UploadRequestV1.parse(
            upload: Self.id, headers: Self.headers(["upload-offset": "400", "upload-complete": "?1"]), maxLength: 8192)
        #expect(r.length == 1000 && r.offset == 400 && r.complete)
        #expect(
            r.signedMessage
                == UploadAuth.message(
                    agent: "agent-1", upload: Self.id, length: 1000, digest: r.digest, timeMs: 1_700_000_000_000))
    }

    @Test(arguments: [
        ["upload-offset": "1001"], ["upload-offset": "-1"], ["upload-offset": "18446744073709551616"],
        ["upload-offset": " 1"], ["upload-length": "0"], ["upload-length": "8193"],
        ["upload-length": "99999999999999999999999"], ["upload-complete": "?2"], ["upload-complete": "true"],
        ["x-ferry-digest": "zz"], ["x-ferry-digest": String(repeating: "CD", count: 32)], ["x-ferry-time": "soon"],
        ["x-ferry-signature": "00"], ["x-ferry-agent": ""],
    ])
    func hostileHeadersAreRefusedAsBadRequests(_ bad: [String: String]) {
        #expect(throws: RequestError.self) {
            _ = try UploadRequestV1.parse(upload: Self.id, headers: Self.headers(bad), maxLength: 8192)
        }
    }

    @Test(arguments: [
        "", "AB", String(repeating: "ab", count: 17), String(repeating: "g", count: 32),
        "../" + String(repeating: "a", count: 29),
    ])
    func anUploadIdOtherThan32LowerHexDigitsIsRefused(_ id: String) {
        #expect(throws: RequestError.self) {
            _ = try UploadRequestV1.parse(upload: id, headers: Self.headers(), maxLength: 8192)
        }
    }
}
