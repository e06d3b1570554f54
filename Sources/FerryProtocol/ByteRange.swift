import FerryCrypto

/// Why a `Range` or `If-Range` header was refused (SPEC §9.12).
public struct ByteRangeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable strings for the JSON error `code`.
    public enum Code: String, Sendable, Equatable, CaseIterable {
        /// 400: the header is not one `bytes=` range Ferry serves.
        case badRange = "bad_range"
        /// 416: the range starts at or past the page's end.
        case notSatisfiable = "range_not_satisfiable"
    }

    public let code: Code
    /// What is wrong, for a person.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The HTTP status of the refusal.
    public var status: Int { code == .badRange ? 400 : 416 }

    public var description: String { message }
}

/// One byte range of a download page, `Range: bytes=N-` or `bytes=N-M`
/// (RFC 9110 §14.1.2, SPEC §9.12), parsed and bounded. Ferry serves a single
/// range from a known start: suffix ranges (`bytes=-N`) and lists are refused.
public struct ByteRange: Sendable, Equatable {
    /// First byte asked for, from 0.
    public var first: UInt64
    /// Last byte asked for (inclusive); nil for "to the end".
    public var last: UInt64?

    /// Longest `Range` or `If-Range` value read; real ones are far shorter.
    public static let maxHeaderBytes = 64

    public init(first: UInt64, last: UInt64? = nil) {
        self.first = first
        self.last = last
    }

    /// Parses a `Range` header value.
    /// - Throws: ``ByteRangeError`` `bad_range` naming what is wrong.
    public static func parse(_ text: String) throws(ByteRangeError) -> ByteRange {
        let bytes = Array(text.utf8)
        guard bytes.count <= maxHeaderBytes else {
            throw ByteRangeError(.badRange, "the Range header is over \(maxHeaderBytes) bytes")
        }
        let unit = Array("bytes=".utf8)
        // The range unit is case-insensitive (RFC 9110 §14.1).
        guard bytes.count > unit.count, zip(bytes, unit).allSatisfy({ a, b in a | 0x20 == b || a == b }) else {
            throw ByteRangeError(.badRange, "Range must be 'bytes=N-' or 'bytes=N-M'")
        }
        let spec = bytes[unit.count...]
        guard !spec.contains(UInt8(ascii: ",")) else {
            throw ByteRangeError(.badRange, "Range must name one range: the hub does not serve lists")
        }
        guard let dash = spec.firstIndex(of: UInt8(ascii: "-")) else {
            throw ByteRangeError(.badRange, "Range must be 'bytes=N-' or 'bytes=N-M'")
        }
        guard let first = number(spec[spec.startIndex..<dash]) else {
            throw ByteRangeError(
                .badRange, "Range must start at a whole number of at most 19 digits (no suffix ranges 'bytes=-N')")
        }
        let tail = spec[spec.index(after: dash)...]
        if tail.isEmpty { return ByteRange(first: first) }
        guard let last = number(tail) else {
            throw ByteRangeError(.badRange, "Range must end at a whole number of at most 19 digits")
        }
        guard first <= last else {
            throw ByteRangeError(.badRange, "Range's first byte (\(first)) is after its last (\(last))")
        }
        return ByteRange(first: first, last: last)
    }

    /// At most 19 decimal digits (always below 2^63), nothing else.
    static func number(_ digits: ArraySlice<UInt8>) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 19, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        var n: UInt64 = 0
        for d in digits { n = n * 10 + UInt64(d - 0x30) }
        return n
    }

    /// The bytes of a representation of `length` bytes this range selects.
    /// - Throws: ``ByteRangeError`` `range_not_satisfiable` when it starts at or past the end.
    public func resolve(length: Int) throws(ByteRangeError) -> Range<Int> {
        let total = UInt64(max(0, length))
        guard first < total else {
            throw ByteRangeError(
                .notSatisfiable, "the range starts at byte \(first) but the page has \(total) bytes: ask for it whole")
        }
        let end = min(last ?? (total - 1), total - 1)
        // Both are below `length`, an Int.
        return Int(first)..<(Int(end) + 1)
    }

    /// `Content-Range` of a `206`: `bytes a-b/L`.
    public static func contentRange(_ r: Range<Int>, length: Int) -> String {
        "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(length)"
    }

    /// `Content-Range` of a `416`: `bytes */L`.
    public static func unsatisfied(length: Int) -> String { "bytes */\(length)" }

    /// A strong entity tag for `bytes`: the first 16 bytes of their BLAKE2b-256, quoted.
    public static func etag(_ bytes: [UInt8]) -> String { "\"" + hex(digest(bytes).prefix(16)) + "\"" }

    /// Checks an `If-Range` value: one strong entity tag (`"` + 1…62 visible
    /// characters + `"`), as the hub issues them. Dates and weak tags are refused.
    /// - Throws: ``ByteRangeError`` `bad_range`.
    public static func parseIfRange(_ text: String) throws(ByteRangeError) -> String {
        let b = Array(text.utf8)
        guard b.count >= 3, b.count <= maxHeaderBytes, b.first == UInt8(ascii: "\""), b.last == UInt8(ascii: "\""),
            b.dropFirst().dropLast().allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") })
        else {
            throw ByteRangeError(
                .badRange, "If-Range must be the page's strong ETag (a quoted tag of at most \(maxHeaderBytes) bytes)")
        }
        return text
    }

    /// Parses a `206`'s `Content-Range: bytes a-b/L` as an agent reads it
    /// (bounded; nil when it is anything else).
    public static func parseContentRange(_ text: String) -> (first: Int, last: Int, length: Int)? {
        let b = Array(text.utf8)
        let unit = Array("bytes ".utf8)
        guard b.count <= maxHeaderBytes, b.count > unit.count, Array(b[0..<unit.count]) == unit else { return nil }
        let spec = b[unit.count...]
        guard let dash = spec.firstIndex(of: UInt8(ascii: "-")), let slash = spec.firstIndex(of: UInt8(ascii: "/")),
            dash < slash, let first = number(spec[spec.startIndex..<dash]),
            let last = number(spec[spec.index(after: dash)..<slash]),
            let length = number(spec[spec.index(after: slash)...]),
            first <= last, last < length, let f = Int(exactly: first), let l = Int(exactly: last),
            let n = Int(exactly: length)
        else { return nil }
        return (f, l, n)
    }
}

/// The resume headers of a pull (SPEC §9.12): `Range` with its `If-Range`.
public enum PageRange {
    /// Parses `range` and `if-range` from headers by lower-case name.
    /// - Parameter rangeFields: how many `Range` fields the request had (more than one is refused).
    /// - Returns: both nil for a plain pull (an `If-Range` alone is ignored, RFC 9110 §13.1.5).
    /// - Throws: ``ByteRangeError`` `bad_range`.
    public static func parse(headers: [String: String], rangeFields: Int = 1) throws(ByteRangeError) -> (
        range: ByteRange?, ifRange: String?
    ) {
        guard let text = headers["range"] else { return (nil, nil) }
        guard rangeFields <= 1 else { throw ByteRangeError(.badRange, "a pull may carry one Range header") }
        let range = try ByteRange.parse(text)
        guard let tag = headers["if-range"] else {
            throw ByteRangeError(.badRange, "a Range on a download page needs If-Range with the page's ETag")
        }
        return (range, try ByteRange.parseIfRange(tag))
    }
}
