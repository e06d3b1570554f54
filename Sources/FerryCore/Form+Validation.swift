import Foundation

/// One problem in a form definition, found before it is published (a draft
/// or a version): typed, naming the field, with what to change.
public struct FormProblem: Error, Sendable, Equatable, Codable, CustomStringConvertible {
    /// What is wrong; the raw value is the code the hub answers.
    public enum Code: String, Sendable, Codable, CaseIterable {
        case missingID = "missing_id"
        case badVersion = "bad_version"
        case missingTitle = "missing_title"
        case noFields = "no_fields"
        case badFieldName = "bad_field_name"
        case duplicateField = "duplicate_field"
        case rangeInverted = "range_inverted"
        case badBound = "bad_bound"
        case lengthInverted = "length_inverted"
        case emptyChoices = "empty_choices"
        case duplicateChoice = "duplicate_choice"
        case constraintForOtherType = "constraint_for_other_type"
        case requiredHasNoWay = "required_unreachable"
    }
    public var code: Code
    /// The field at fault, when the problem is one field's.
    public var field: String?
    public var message: String

    public init(_ code: Code, field: String? = nil, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }
    public var description: String { message }
}

extension FormDefinition {
    /// The most fields a form version may have.
    public static let maxFields = 500

    /// Every problem of this definition (SPEC §9.6, publish): names, types'
    /// constraints, ranges, choices, required fields. Empty when it may be published.
    public func validate() -> [FormProblem] {
        var out: [FormProblem] = []
        if id.isEmpty || id.utf8.count > 64 || id.contains(where: { $0 == "@" || $0 == "/" || $0.isWhitespace }) {
            out.append(
                FormProblem(
                    .missingID, "the form id '\(id.prefix(80))' must be 1–64 bytes without '@', '/' or spaces"))
        }
        if version < 1 { out.append(FormProblem(.badVersion, "the form version must be 1 or more, got \(version)")) }
        if title.trimmingCharacters(in: .whitespaces).isEmpty {
            out.append(FormProblem(.missingTitle, "the form needs a title (shown to clerks)"))
        }
        if fields.isEmpty { out.append(FormProblem(.noFields, "the form has no fields")) }
        if fields.count > Self.maxFields {
            out.append(FormProblem(.noFields, "the form has \(fields.count) fields; at most \(Self.maxFields)"))
        }
        var seen = Set<String>()
        for f in fields {
            out += f.problems()
            if !seen.insert(f.name).inserted {
                out.append(FormProblem(.duplicateField, field: f.name, "field '\(f.name)' appears twice"))
            }
        }
        return out
    }
}

extension FieldSpec {
    func problems() -> [FormProblem] {
        var out: [FormProblem] = []
        let n = String(name.prefix(80))
        func add(_ c: FormProblem.Code, _ m: String) { out.append(FormProblem(c, field: name, m)) }
        if name.isEmpty || name.hasPrefix("_") {
            add(.badFieldName, "field name '\(n)' is empty or starts with '_' (reserved)")
        } else if name.utf8.count > Self.maxNameBytes || name != name.nfc
            || name.contains(where: { $0.isWhitespace || $0.isNewline })
        {
            add(.badFieldName, "field name '\(n)' must be NFC, without spaces, at most \(Self.maxNameBytes) bytes")
        }
        let numeric = type == .int || type == .double
        if min != nil || max != nil {
            if !numeric {
                add(.constraintForOtherType, "field '\(n)' is \(type.rawValue): min/max apply to int and double only")
            }
            for (k, b) in [("min", min), ("max", max)] {
                if let b, !b.isFinite { add(.badBound, "field '\(n)': \(k) must be a finite number") }
            }
            if let lo = min, let hi = max, lo > hi {
                add(
                    .rangeInverted,
                    "field '\(n)' has min \(Value.formatDouble(lo)) above max \(Value.formatDouble(hi)): no value could be entered"
                )
            }
        }
        if minDate != nil || maxDate != nil {
            if type != .date {
                add(.constraintForOtherType, "field '\(n)' is \(type.rawValue): minDate/maxDate apply to date only")
            }
            let lo = minDate.map { CivilDate(iso: $0) }
            let hi = maxDate.map { CivilDate(iso: $0) }
            if case .some(.none) = lo { add(.badBound, "field '\(n)': minDate must be YYYY-MM-DD") }
            if case .some(.none) = hi { add(.badBound, "field '\(n)': maxDate must be YYYY-MM-DD") }
            if let l = lo ?? nil, let h = hi ?? nil, l.daysSinceEpoch > h.daysSinceEpoch {
                add(.rangeInverted, "field '\(n)' has minDate \(l) after maxDate \(h)")
            }
        }
        if minLength != nil || maxLength != nil || digits != nil {
            if type != .string {
                add(
                    .constraintForOtherType,
                    "field '\(n)' is \(type.rawValue): minLength/maxLength/digits apply to string only")
            }
            if let lo = minLength, lo < 0 { add(.badBound, "field '\(n)': minLength must be 0 or more") }
            if let hi = maxLength, hi < 1 { add(.badBound, "field '\(n)': maxLength must be 1 or more") }
            if let d = digits, d < 1 || d > 64 { add(.badBound, "field '\(n)': digits must be 1…64") }
            if let lo = minLength, let hi = maxLength, lo > hi {
                add(.lengthInverted, "field '\(n)' has minLength \(lo) above maxLength \(hi)")
            }
        }
        if let choices {
            if type != .string {
                add(.constraintForOtherType, "field '\(n)' is \(type.rawValue): choices apply to string only")
            }
            if choices.isEmpty {
                add(
                    .emptyChoices,
                    "field '\(n)' has an empty choices list: no value could be entered; remove it or add choices")
            }
            var seen = Set<String>()
            for c in choices where !seen.insert(c.nfc).inserted {
                add(.duplicateChoice, "field '\(n)' lists the choice '\(c.prefix(80))' twice")
            }
            if let hi = maxLength, choices.contains(where: { $0.nfc.count > hi }) {
                add(.requiredHasNoWay, "field '\(n)' has a choice longer than its maxLength \(hi)")
            }
        }
        return out
    }
}
