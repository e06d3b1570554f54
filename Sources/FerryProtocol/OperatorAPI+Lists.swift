import FerryCore
import Foundation

/// A field value in operator JSON, keeping its JSON type: a number stays a
/// number and a bool a bool (dates are `YYYY-MM-DD` strings, bytes `0x…` hex).
public enum JSONValue: Codable, Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)

    /// The JSON form of a stored value.
    public init(_ v: Value) {
        switch v {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .text(let s): self = .string(s)
        case .date, .bytes: self = .string(v.display)
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else {
            self = .string(try c.decode(String.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        }
    }

    /// The value as a person reads it (∅ for null), the way `ferry records show` prints it.
    public var description: String {
        switch self {
        case .null: "∅"
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .double(let d): Value.double(d).display
        case .string(let s): s
        }
    }

    /// The text a person would type for this value (empty for null), as `ferry records edit` and CSV take it.
    public var text: String {
        if case .null = self { return "" }
        return description
    }
}

/// One page of an operator list (SPEC §9.6): records, conflicts, quarantine,
/// audit and agents all answer this way, so no list stops silently.
public struct PageV1<Item: Codable & Sendable>: Codable, Sendable {
    /// At most `limit` items, in the list's order.
    public var items: [Item]
    /// Pass as `?cursor=` for the next page; absent on the last page.
    public var nextCursor: String?
    /// How many matching items come after this page.
    public var remaining: Int

    public init(items: [Item], nextCursor: String?, remaining: Int) {
        self.items = items
        self.nextCursor = nextCursor
        self.remaining = remaining
    }
}

/// The page size bounds of every operator list (SPEC §9.6).
public enum PageLimit {
    /// Items per page when the request names no `limit`.
    public static let standard = 100
    /// The most items one page holds, so an answer stays small on a poor link.
    public static let maximum = 1000

    /// `limit` from a query, clamped to 1…``maximum``; nil when it is not a number.
    public static func parse(_ text: String?) -> Int? {
        guard let text else { return standard }
        guard let n = Int(text) else { return nil }
        return Swift.min(Swift.max(n, 1), maximum)
    }
}
