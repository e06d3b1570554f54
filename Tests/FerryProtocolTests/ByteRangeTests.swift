import FerryProtocol
import Testing

/// Hostile `Range`, `If-Range` and `Content-Range` values on download pages
/// (SPEC §9.12): each is refused with a typed error or read as "not this",
/// never trapped on.
struct ByteRangeTests {
    static let tag = "\"" + String(repeating: "ab", count: 16) + "\""

    @Test func openAndClosedRangesParse() throws {
        #expect(try ByteRange.parse("bytes=0-") == ByteRange(first: 0))
        #expect(try ByteRange.parse("bytes=7700-") == ByteRange(first: 7700))
        #expect(try ByteRange.parse("Bytes=5-9") == ByteRange(first: 5, last: 9))
        #expect(try ByteRange.parse("bytes=9999999999999999999-") == ByteRange(first: 9_999_999_999_999_999_999))
    }

    @Test(arguments: [
        "", "bytes=", "bytes=-", "bytes=-500", "bytes=5", "bytes=9-5", "bytes=0-1,5-9", "bytes=0-,", "bytes= 5-",
        "bytes=5 -", "bytes=+5-", "bytes=-5-", "bytes=0x10-", "bytes=10000000000000000000-",
        "bytes=18446744073709551616-", "bytes=99999999999999999999999999-", "items=0-", "bytes:0-", "bytes=5--",
        "bytes=1-2-3", "bytes=٣-", String(repeating: "bytes=0-", count: 20), "bytes=\u{0}-",
    ])
    func hostileRangesAreRefusedAsBadRange(_ text: String) {
        do {
            let r = try ByteRange.parse(text)
            Issue.record("\(text) parsed as \(r)")
        } catch {
            #expect(error.code == .badRange && error.status == 400)
        }
    }

    @Test func rangesResolveAgainstThePageLengthOrAreNotSatisfiable() throws {
        #expect(try ByteRange(first: 0).resolve(length: 10) == 0..<10)
        #expect(try ByteRange(first: 4).resolve(length: 10) == 4..<10)
        #expect(try ByteRange(first: 4, last: 6).resolve(length: 10) == 4..<7)
        // A last byte past the end is clamped (RFC 9110 §14.1.2).
        #expect(try ByteRange(first: 4, last: 9_999_999_999_999_999_999).resolve(length: 10) == 4..<10)
        for bad in [ByteRange(first: 10), ByteRange(first: 11, last: 12), ByteRange(first: UInt64.max)] {
            do {
                _ = try bad.resolve(length: 10)
                Issue.record("\(bad) resolved against 10 bytes")
            } catch {
                #expect(error.code == .notSatisfiable && error.status == 416)
            }
        }
        #expect(throws: ByteRangeError.self) { _ = try ByteRange(first: 0).resolve(length: 0) }
        #expect(throws: ByteRangeError.self) { _ = try ByteRange(first: 0).resolve(length: -5) }
        #expect(ByteRange.contentRange(4..<10, length: 10) == "bytes 4-9/10")
        #expect(ByteRange.unsatisfied(length: 10) == "bytes */10")
    }

    @Test func theResumeHeadersNeedOneRangeAndAStrongETag() throws {
        let ok = try PageRange.parse(headers: ["range": "bytes=100-", "if-range": Self.tag])
        #expect(ok.range == ByteRange(first: 100) && ok.ifRange == Self.tag)
        let plain = try PageRange.parse(headers: ["if-range": Self.tag])
        #expect(plain.range == nil && plain.ifRange == nil, "If-Range alone is ignored")
        let refused: [([String: String], Int)] = [
            (["range": "bytes=100-"], 1),
            (["range": "bytes=100-", "if-range": "W/" + Self.tag], 1),
            (["range": "bytes=100-", "if-range": "Tue, 01 Dec 2026 15:00:00 GMT"], 1),
            (["range": "bytes=100-", "if-range": "\"\""], 1),
            (["range": "bytes=100-", "if-range": "\"a\"b\""], 1),
            (["range": "bytes=100-", "if-range": "\"" + String(repeating: "a", count: 80) + "\""], 1),
            (["range": "bytes=100-", "if-range": Self.tag], 2),
        ]
        for (headers, fields) in refused {
            #expect(throws: ByteRangeError.self, "\(headers) \(fields)") {
                _ = try PageRange.parse(headers: headers, rangeFields: fields)
            }
        }
    }

    @Test func theAgentReadsOnlyWellFormedContentRanges() {
        #expect(ByteRange.parseContentRange("bytes 100-999/1000")! == (100, 999, 1000))
        for bad in [
            "", "bytes */1000", "bytes 100-999/*", "bytes 100-1000/1000", "bytes 999-100/1000", "bytes -1-5/10",
            "bytes 1-5/99999999999999999999", "bytes 1-5", "items 1-5/10", "bytes 1 -5/10", "bytes 1-5/10/10",
        ] {
            #expect(ByteRange.parseContentRange(bad) == nil, "\(bad)")
        }
    }

    @Test func theETagIsStrongAndFollowsTheBytes() throws {
        let a = ByteRange.etag([1, 2, 3])
        #expect(a == ByteRange.etag([1, 2, 3]) && a != ByteRange.etag([1, 2, 4]))
        #expect(a.utf8.count == 34 && a.hasPrefix("\"") && a.hasSuffix("\""))
        #expect(try ByteRange.parseIfRange(a) == a)
    }
}
