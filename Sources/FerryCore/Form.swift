import Foundation

/// The type of a form field.
public enum FieldType: String, Sendable, Codable, Hashable, CaseIterable {
    case string, int, double, bool, date, bytes
}

/// One field of a form version.
public struct FieldSpec: Sendable, Codable, Hashable {
    public var name: String
    public var type: FieldType
    public var label: String?
    public var required: Bool?
    /// Inclusive numeric bounds for int and double; for date, days are compared
    /// with `minDate` / `maxDate` instead.
    public var min: Double?
    public var max: Double?
    public var minDate: String?
    public var maxDate: String?
    /// Length bounds for strings, in Unicode characters (after NFC).
    public var minLength: Int?
    public var maxLength: Int?
    /// Allowed values for strings.
    public var choices: [String]?
    /// For strings: every character must be an ASCII digit, and the length exact.
    public var digits: Int?

    /// The longest field name, in UTF-8 bytes after NFC (SPEC §5.3).
    public static let maxNameBytes = 64

    public init(name: String, type: FieldType, label: String? = nil, required: Bool? = nil) {
        self.name = name
        self.type = type
        self.label = label
        self.required = required
    }
}

/// A form version: immutable once published (DESIGN §3).
public struct FormDefinition: Sendable, Codable, Hashable {
    public var id: String
    public var version: Int
    public var title: String
    public var fields: [FieldSpec]
    /// True once the operator retired this version (SPEC §9.6): its records
    /// are kept and still merge; new records take a newer version.
    public var retired: Bool?

    public init(id: String, version: Int, title: String, fields: [FieldSpec], retired: Bool? = nil) {
        self.id = id
        self.version = version
        self.title = title
        self.fields = fields
        self.retired = retired
    }

    /// The spec of a field, if the form has it.
    public func spec(_ name: String) -> FieldSpec? { fields.first { $0.name == name } }

    /// Every problem of the definition, in words (see ``validate()`` for the typed ones).
    public func problems() -> [String] { validate().map(\.message) }

    /// Why `value` is not acceptable for `field`, or nil when it is.
    public func violation(field: String, value: Value) -> String? {
        if field == deletedField {
            if case .bool = value { return nil }
            return "\(deletedField) must be true or false, got \(value.typeName)"
        }
        guard let spec = spec(field) else {
            return "field '\(field)' is not in form \(id) v\(version)"
        }
        if value.isNull {
            return spec.required == true ? "field '\(field)' is required" : nil
        }
        switch (spec.type, value) {
        case (.string, .text(let s)):
            switch s.checkedNFC() {
            case .failure(.tooLong(let n, let limit)):
                return "'\(field)' is longer than \(limit) bytes (\(n) after Unicode normalisation, NFC)"
            case .failure(let why): return "'\(field)' cannot be stored: \(why)"
            case .success: break
            }
            let n = s.count
            if let lo = spec.minLength, n < lo { return "'\(field)' must have at least \(lo) characters, has \(n)" }
            if let hi = spec.maxLength, n > hi { return "'\(field)' must have at most \(hi) characters, has \(n)" }
            if let choices = spec.choices, !choices.contains(s) {
                return "'\(field)' must be one of \(choices.joined(separator: ", ")), got '\(s)'"
            }
            if let d = spec.digits, n != d || !s.allSatisfy({ $0.isASCII && $0.isNumber }) {
                return "'\(field)' must be exactly \(d) digits"
            }
            return nil
        case (.int, .int(let i)):
            return Self.bounds(field, i, spec)
        case (.double, .double(let d)):
            guard d.isFinite else { return "'\(field)' must be a finite number" }
            return Self.bounds(field, d, spec)
        case (.bool, .bool):
            return nil
        case (.date, .date(let d)):
            if let lo = spec.minDate.flatMap(CivilDate.init(iso:)), d < lo.daysSinceEpoch {
                return "'\(field)' must be on or after \(lo)"
            }
            if let hi = spec.maxDate.flatMap(CivilDate.init(iso:)), d > hi.daysSinceEpoch {
                return "'\(field)' must be on or before \(hi)"
            }
            return nil
        case (.bytes, .bytes(let b)):
            return b.count > Value.maxBytes ? "'\(field)' is larger than \(Value.maxBytes) bytes" : nil
        default:
            return "'\(field)' must be \(spec.type.rawValue), got \(value.typeName)"
        }
    }

    /// Fields marked required that `values` lacks or sets to null.
    public func missingRequired(in values: [String: Value]) -> [String] {
        fields.filter { $0.required == true && (values[$0.name] ?? .null).isNull }.map(\.name)
    }

    /// Parses text typed by a person (CLI, CSV) into the field's type.
    /// - Throws: ``FormError`` naming the field and what was expected.
    public func parse(field: String, text: String) throws(FormError) -> Value {
        if field == deletedField {
            guard let b = Bool(text.lowercased()) else { throw FormError("\(deletedField) must be true or false") }
            return .bool(b)
        }
        guard let spec = spec(field) else {
            throw FormError(
                "form \(id) v\(version) has no field '\(field)'; its fields are \(fields.map(\.name).joined(separator: ", "))"
            )
        }
        if text.isEmpty { return .null }
        switch spec.type {
        case .string: return .string(text)
        case .int:
            guard let i = Int64(text) else { throw FormError("'\(field)' must be a whole number, got '\(text)'") }
            return .int(i)
        case .double:
            guard let d = Double(text), d.isFinite else {
                throw FormError("'\(field)' must be a number, got '\(text)'")
            }
            return .double(d)
        case .bool:
            guard let b = Bool(text.lowercased()) else {
                throw FormError("'\(field)' must be true or false, got '\(text)'")
            }
            return .bool(b)
        case .date:
            guard let d = CivilDate(iso: text) else {
                throw FormError("'\(field)' must be a date YYYY-MM-DD, got '\(text)'")
            }
            return .date(d.daysSinceEpoch)
        case .bytes:
            guard let b = Self.hex(text) else { throw FormError("'\(field)' must be hex bytes, got '\(text)'") }
            return .bytes(b)
        }
    }

    private static func bounds(_ field: String, _ x: Double, _ spec: FieldSpec) -> String? {
        if let lo = spec.min, x < lo {
            return "'\(field)' must be at least \(Value.formatDouble(lo)), got \(Value.formatDouble(x))"
        }
        if let hi = spec.max, x > hi {
            return "'\(field)' must be at most \(Value.formatDouble(hi)), got \(Value.formatDouble(x))"
        }
        return nil
    }

    /// Integer bounds, compared exactly: a bound given as a double is rounded
    /// inward, and any Int64 (even one Double cannot hold) is formatted as itself.
    private static func bounds(_ field: String, _ x: Int64, _ spec: FieldSpec) -> String? {
        if let lo = spec.min, !Self.atLeast(x, lo) {
            return "'\(field)' must be at least \(Self.integerText(lo)), got \(x)"
        }
        if let hi = spec.max, !Self.atMost(x, hi) {
            return "'\(field)' must be at most \(Self.integerText(hi)), got \(x)"
        }
        return nil
    }

    static func atLeast(_ x: Int64, _ lo: Double) -> Bool {
        guard lo.isFinite else { return lo < 0 }
        // 2^63 and beyond is above every Int64; below -2^63 is under every Int64.
        if lo >= 9_223_372_036_854_775_808.0 { return false }
        if lo < -9_223_372_036_854_775_808.0 { return true }
        return x >= Int64(lo.rounded(.up))
    }

    static func atMost(_ x: Int64, _ hi: Double) -> Bool {
        guard hi.isFinite else { return hi > 0 }
        if hi >= 9_223_372_036_854_775_808.0 { return true }
        if hi < -9_223_372_036_854_775_808.0 { return false }
        return x <= Int64(hi.rounded(.down))
    }

    static func integerText(_ d: Double) -> String {
        Int64(exactly: d).map { String($0) } ?? Value.formatDouble(d)
    }

    private static func hex(_ s: String) -> [UInt8]? {
        // Byte-wise: stepping by Characters past a multi-byte one (e.g. "é",
        // two UTF-8 bytes, one Character) ran beyond the end and trapped.
        var u = Array(s.utf8)
        if u.starts(with: Array("0x".utf8)) { u.removeFirst(2) }
        guard u.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i + 1 < u.count {
            guard let hi = nibble(u[i]), let lo = nibble(u[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// A value or form that a person must fix; the message says how.
public struct FormError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A data campaign: a form, a period and per-commune targets (DESIGN §3).
public struct CampaignDefinition: Sendable, Codable, Hashable {
    public var id: String
    public var title: String
    public var formID: String
    public var starts: String
    public var ends: String
    /// Records wanted per commune code.
    public var targets: [String: Int]
    public var status: String

    // "form" reads the same in camelCase and snake_case JSON.
    enum CodingKeys: String, CodingKey {
        case id, title, formID = "form", starts, ends, targets, status
    }

    public init(
        id: String, title: String, formID: String, starts: String, ends: String, targets: [String: Int], status: String
    ) {
        self.id = id
        self.title = title
        self.formID = formID
        self.starts = starts
        self.ends = ends
        self.targets = targets
        self.status = status
    }
}

/// A commune-level unit: the id of a commune is its official code.
public struct Commune: Sendable, Codable, Hashable {
    public var code: String
    public var name: String
    public var kind: String
    public init(code: String, name: String, kind: String) {
        self.code = code
        self.name = name.nfc
        self.kind = kind.nfc
    }
}
