import Foundation

/// A typed field value (DESIGN §3): null, bool, int64, double, NFC string, date, small bytes.
///
/// Strings are normalised to Unicode NFC when the value is made, so equality,
/// search and conflicts never depend on which keyboard typed a Vietnamese name.
public enum Value: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    /// Always NFC; build it with ``Value/string(_:)`` to normalise.
    case text(String)
    /// Days since 1970-01-01 (proleptic Gregorian, UTC).
    case date(Int32)
    case bytes([UInt8])

    /// The largest byte value a field may hold ("small bytes").
    public static let maxBytes = 4096
    /// The largest string a field may hold, in UTF-8 bytes.
    public static let maxStringBytes = 4096

    /// Makes a string value, normalised to NFC.
    public static func string(_ s: String) -> Value {
        .text(s.nfc)
    }

    /// The name of the value's type as forms spell it.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .int: "int"
        case .double: "double"
        case .text: "string"
        case .date: "date"
        case .bytes: "bytes"
        }
    }

    /// True for ``Value/null``.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// A short human-readable rendering (dates as YYYY-MM-DD, bytes as hex).
    public var display: String {
        switch self {
        case .null: return "∅"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return Value.formatDouble(d)
        case .text(let s): return s
        case .date(let d): return CivilDate(daysSinceEpoch: d).description
        case .bytes(let b): return "0x" + b.map { String(format: "%02x", $0) }.joined()
        }
    }

    static func formatDouble(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e15 { return String(format: "%.1f", d) }
        return "\(d)"
    }
}

extension String {
    /// The longest run of non-starters (combining marks) text may hold: the limit of
    /// Unicode's Stream-Safe Text Format (UAX #15 §13). Longer runs are refused, because
    /// normalisers cut them (Foundation here keeps 64 scalars of a run and drops the rest).
    public static let maxCombiningRun = 30

    /// The longest run of consecutive non-starters (canonical combining class ≠ 0).
    public var longestCombiningRun: Int {
        var run = 0
        var longest = 0
        for u in unicodeScalars {
            if u.properties.canonicalCombiningClass.rawValue == 0 {
                run = 0
            } else {
                run += 1
                longest = Swift.max(longest, run)
            }
        }
        return longest
    }

    /// This string in NFC, or why it cannot be stored exactly as the NFC of what was
    /// given (SPEC §5.3): a run of combining marks over ``maxCombiningRun`` (before or
    /// after normalising), or more than `maxBytes` UTF-8 bytes after normalising.
    public func checkedNFC(maxBytes: Int = Value.maxStringBytes) -> Result<String, TextError> {
        if longestCombiningRun > Self.maxCombiningRun { return .failure(.combiningRun(longestCombiningRun)) }
        let n = nfc
        if n.utf8.count > maxBytes { return .failure(.tooLong(n.utf8.count, limit: maxBytes)) }
        if n.longestCombiningRun > Self.maxCombiningRun { return .failure(.combiningRun(n.longestCombiningRun)) }
        return .success(n)
    }

    /// This string in Unicode Normalization Form C.
    ///
    /// Fast path: a string made only of U+0000–U+02FF and U+1E00–U+1EFF
    /// (ASCII, Latin-1, Latin Extended, precomposed Vietnamese) is already NFC:
    /// each of those is its own NFC form with combining class 0, and none
    /// composes with another. Anything else goes through Foundation.
    public var nfc: String {
        if unicodeScalars.allSatisfy({ $0.value < 0x300 || (0x1E00...0x1EFF).contains($0.value) }) { return self }
        return precomposedStringWithCanonicalMapping
    }
}

/// A calendar date without time zone, stored as days since 1970-01-01.
public struct CivilDate: Sendable, Hashable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int

    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// Parses `YYYY-MM-DD`; nil when malformed or not a real day.
    public init?(iso: String) {
        // Digits only: Int() would also take a sign ("+202-01-01").
        guard iso.utf8.count == 10,
            iso.utf8.enumerated().allSatisfy({ i, c in
                i == 4 || i == 7 ? c == UInt8(ascii: "-") : (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
            })
        else { return nil }
        let parts = iso.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
            (1...12).contains(m), d >= 1, d <= CivilDate.daysIn(month: m, year: y)
        else { return nil }
        self.init(year: y, month: m, day: d)
    }

    /// Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    public var daysSinceEpoch: Int32 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return Int32(truncatingIfNeeded: era * 146097 + doe - 719468)
    }

    /// The date `days` after 1970-01-01.
    public init(daysSinceEpoch days: Int32) {
        let z = Int(days) + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        self.init(year: yoe + era * 400 + (m <= 2 ? 1 : 0), month: m, day: d)
    }

    public var description: String {
        String(format: "%04d-%02d-%02d", year, month, day)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

/// Why a text cannot be stored as given (``String/checkedNFC(maxBytes:)``).
public enum TextError: Error, Sendable, Equatable, CustomStringConvertible {
    case combiningRun(Int)
    case tooLong(Int, limit: Int)

    public var description: String {
        switch self {
        case .combiningRun(let n):
            "it has \(n) combining marks in a row (at most \(String.maxCombiningRun) are allowed)"
        case .tooLong(let n, let limit): "it is longer than \(limit) bytes (\(n) after Unicode normalisation, NFC)"
        }
    }
}

/// The one numbering of value types, on the wire (SPEC §5.3 `write_type`) and
/// in every store (the agent's record blobs, the hub's `t` columns).
public enum ValueTag: UInt8, Sendable, CaseIterable {
    case null = 0, falseValue = 1, trueValue = 2, int = 3, double = 4, string = 5, date = 6, bytes = 7

    public init(of v: Value) {
        switch v {
        case .null: self = .null
        case .bool(let b): self = b ? .trueValue : .falseValue
        case .int: self = .int
        case .double: self = .double
        case .text: self = .string
        case .date: self = .date
        case .bytes: self = .bytes
        }
    }
}
