import FerryCore
import Foundation

/// A form definition turned into what the entry page shows and checks: one
/// input per field with its rules in words, and typed values parsed from what
/// a clerk typed, with problems in plain Vietnamese and English. Everything
/// comes from the ``FormDefinition`` (types, choices, ranges, required), so a
/// new form version needs no new code. The store validates again when saving
/// (``FerryStore/AgentStore/create(form:commune:values:id:)``); this layer only
/// words the refusals and keeps the input.
struct EntryForm: Sendable {
    let form: FormDefinition

    /// A message in both languages: Vietnamese first, then English.
    struct Words: Error, Sendable, Equatable {
        var vi: String
        var en: String
        var text: String { "\(vi) / \(en)" }
    }

    /// The rules of a field as short phrases, shown next to the input before saving.
    func rules(_ f: FieldSpec) -> [Words] {
        var out: [Words] = []
        if f.required == true { out.append(Words(vi: "bắt buộc", en: "required")) }
        switch f.type {
        case .string:
            if let d = f.digits { out.append(Words(vi: "đúng \(d) chữ số", en: "exactly \(d) digits")) }
            switch (f.minLength, f.maxLength) {
            case (let lo?, let hi?): out.append(Words(vi: "\(lo)–\(hi) ký tự", en: "\(lo)–\(hi) characters"))
            case (let lo?, nil): out.append(Words(vi: "ít nhất \(lo) ký tự", en: "at least \(lo) characters"))
            case (nil, let hi?): out.append(Words(vi: "tối đa \(hi) ký tự", en: "at most \(hi) characters"))
            case (nil, nil): break
            }
            if let c = f.choices {
                out.append(
                    Words(vi: "chọn một: \(c.joined(separator: ", "))", en: "one of: \(c.joined(separator: ", "))"))
            }
        case .int, .double:
            let kind = f.type == .int ? Words(vi: "số nguyên", en: "whole number") : Words(vi: "số", en: "number")
            out.append(kind)
            switch (f.min, f.max) {
            case (let lo?, let hi?):
                out.append(Words(vi: "từ \(num(lo)) đến \(num(hi))", en: "from \(num(lo)) to \(num(hi))"))
            case (let lo?, nil): out.append(Words(vi: "từ \(num(lo)) trở lên", en: "at least \(num(lo))"))
            case (nil, let hi?): out.append(Words(vi: "tối đa \(num(hi))", en: "at most \(num(hi))"))
            case (nil, nil): break
            }
        case .date:
            out.append(Words(vi: "ngày (năm-tháng-ngày)", en: "date (YYYY-MM-DD)"))
            if let lo = f.minDate { out.append(Words(vi: "từ \(lo)", en: "from \(lo)")) }
            if let hi = f.maxDate { out.append(Words(vi: "đến \(hi)", en: "until \(hi)")) }
        case .bool: out.append(Words(vi: "có hoặc không", en: "yes or no"))
        case .bytes: out.append(Words(vi: "mã hex", en: "hex bytes"))
        }
        return out
    }

    private func num(_ d: Double) -> String {
        if let i = Int64(exactly: d) { return String(i) }
        return Value.double(d).display
    }

    /// Parses the typed text of every field. Empty text is null (the field is
    /// left out of a new record, or cleared on an edit).
    /// - Returns: the values, and per field the problem in both languages.
    func parse(_ input: [String: String]) -> (values: [String: Value], problems: [String: Words]) {
        var values: [String: Value] = [:]
        var problems: [String: Words] = [:]
        for f in form.fields {
            let text = (input[f.name] ?? "").trimmingCharacters(in: .whitespacesAndNewlines).nfc
            switch parse(f, text) {
            case .success(let v):
                if v.isNull && f.required == true {
                    problems[f.name] = Words(vi: "Chưa nhập: trường này bắt buộc.", en: "Required: please fill it in.")
                } else if let why = form.violation(field: f.name, value: v) {
                    problems[f.name] = words(f, v, fallback: why)
                } else {
                    values[f.name] = v
                }
            case .failure(let w): problems[f.name] = w
            }
        }
        return (values, problems)
    }

    private func parse(_ f: FieldSpec, _ text: String) -> Result<Value, Words> {
        if text.isEmpty { return .success(.null) }
        switch f.type {
        case .string: return .success(.string(text))
        case .int:
            guard let i = Int64(text) else {
                return .failure(
                    Words(vi: "Phải là số nguyên, ví dụ 4 (đã nhập “\(text)”).", en: "Must be a whole number, e.g. 4."))
            }
            return .success(.int(i))
        case .double:
            // A Vietnamese keyboard writes the decimal comma: "120,5".
            guard let d = Double(text.replacingOccurrences(of: ",", with: ".")), d.isFinite else {
                return .failure(
                    Words(vi: "Phải là số, ví dụ 120,5 (đã nhập “\(text)”).", en: "Must be a number, e.g. 120.5."))
            }
            return .success(.double(d))
        case .bool:
            switch text.lowercased() {
            case "true", "có", "co", "yes", "1": return .success(.bool(true))
            case "false", "không", "khong", "no", "0": return .success(.bool(false))
            default: return .failure(Words(vi: "Chọn có hoặc không.", en: "Choose yes or no."))
            }
        case .date:
            guard let d = CivilDate(iso: text) else {
                return .failure(
                    Words(vi: "Phải là ngày dạng năm-tháng-ngày, ví dụ 2024-03-15.", en: "Must be a date YYYY-MM-DD."))
            }
            return .success(.date(d.daysSinceEpoch))
        case .bytes:
            switch Result(catching: { () throws(FormError) -> Value in try form.parse(field: f.name, text: text) }) {
            case .success(let v): return .success(v)
            case .failure: return .failure(Words(vi: "Phải là mã hex.", en: "Must be hex bytes."))
            }
        }
    }

    /// The rule a value broke, in words (the store's English text as a fallback).
    private func words(_ f: FieldSpec, _ v: Value, fallback: String) -> Words {
        switch v {
        case .text(let s):
            let n = s.count
            if let d = f.digits, n != d || !s.allSatisfy({ $0.isASCII && $0.isNumber }) {
                return Words(vi: "Phải có đúng \(d) chữ số (đã nhập \(n) ký tự).", en: "Must be exactly \(d) digits.")
            }
            if let lo = f.minLength, n < lo {
                return Words(
                    vi: "Quá ngắn: cần ít nhất \(lo) ký tự, mới có \(n).", en: "Too short: at least \(lo) characters.")
            }
            if let hi = f.maxLength, n > hi {
                return Words(
                    vi: "Quá dài: tối đa \(hi) ký tự, đang có \(n).", en: "Too long: at most \(hi) characters.")
            }
            if let c = f.choices, !c.contains(s) {
                return Words(
                    vi: "Phải chọn một trong: \(c.joined(separator: ", ")).",
                    en: "Must be one of: \(c.joined(separator: ", ")).")
            }
        case .int(let i):
            if let lo = f.min, Double(i) < lo || (f.max.map { Double(i) > $0 } ?? false) {
                return range(f, lo, f.max)
            }
            if let hi = f.max, Double(i) > hi { return range(f, f.min, hi) }
        case .double(let d):
            if let lo = f.min, d < lo { return range(f, lo, f.max) }
            if let hi = f.max, d > hi { return range(f, f.min, hi) }
        case .date:
            return Words(
                vi: "Ngày phải trong khoảng \(f.minDate ?? "…") đến \(f.maxDate ?? "…").",
                en: "The date must be between \(f.minDate ?? "…") and \(f.maxDate ?? "…").")
        default: break
        }
        return Words(vi: "Giá trị không hợp lệ.", en: fallback)
    }

    private func range(_ f: FieldSpec, _ lo: Double?, _ hi: Double?) -> Words {
        let a = lo.map(num) ?? "…"
        let b = hi.map(num) ?? "…"
        return Words(vi: "Phải trong khoảng \(a) đến \(b).", en: "Must be between \(a) and \(b).")
    }

    /// The text to put back in a field's input for a stored value.
    static func text(_ v: Value?) -> String {
        guard let v, !v.isNull else { return "" }
        return v.display
    }
}
