import Foundation

/// What changed between two form versions, field by field (`ferry forms diff`).
public struct FormDiff: Sendable, Equatable {
    public enum Change: Sendable, Equatable {
        case added(FieldSpec)
        case removed(FieldSpec)
        /// The field's spec before and after, and what differs, in words.
        case changed(before: FieldSpec, after: FieldSpec, what: [String])
    }
    public var changes: [Change]
    /// Title, id or version differences, in words.
    public var header: [String]

    /// The changes from `a` to `b`, in `b`'s field order (removed fields last).
    public init(from a: FormDefinition, to b: FormDefinition) {
        var header: [String] = []
        if a.id != b.id { header.append("id \(a.id) → \(b.id)") }
        if a.title != b.title { header.append("title '\(a.title)' → '\(b.title)'") }
        if a.retired != b.retired {
            header.append("retired \(a.retired == true ? "yes" : "no") → \(b.retired == true ? "yes" : "no")")
        }
        var changes: [Change] = []
        for f in b.fields {
            guard let old = a.spec(f.name) else {
                changes.append(.added(f))
                continue
            }
            let what = Self.differences(old, f)
            if !what.isEmpty { changes.append(.changed(before: old, after: f, what: what)) }
        }
        for f in a.fields where b.spec(f.name) == nil { changes.append(.removed(f)) }
        self.changes = changes
        self.header = header
    }

    static func differences(_ a: FieldSpec, _ b: FieldSpec) -> [String] {
        var out: [String] = []
        func show<T>(_ v: T?) -> String { v.map { "\($0)" } ?? "none" }
        func num(_ v: Double?) -> String { v.map { Value.double($0).display } ?? "none" }
        if a.type != b.type { out.append("type \(a.type.rawValue) → \(b.type.rawValue)") }
        if (a.required ?? false) != (b.required ?? false) {
            out.append((b.required ?? false) ? "now required" : "no longer required")
        }
        if a.label != b.label { out.append("label '\(a.label ?? "")' → '\(b.label ?? "")'") }
        if a.min != b.min { out.append("min \(num(a.min)) → \(num(b.min))") }
        if a.max != b.max { out.append("max \(num(a.max)) → \(num(b.max))") }
        if a.minDate != b.minDate { out.append("minDate \(show(a.minDate)) → \(show(b.minDate))") }
        if a.maxDate != b.maxDate { out.append("maxDate \(show(a.maxDate)) → \(show(b.maxDate))") }
        if a.minLength != b.minLength { out.append("minLength \(show(a.minLength)) → \(show(b.minLength))") }
        if a.maxLength != b.maxLength { out.append("maxLength \(show(a.maxLength)) → \(show(b.maxLength))") }
        if a.digits != b.digits { out.append("digits \(show(a.digits)) → \(show(b.digits))") }
        if a.choices != b.choices {
            let old = Set(a.choices ?? [])
            let new = Set(b.choices ?? [])
            let added = (b.choices ?? []).filter { !old.contains($0) }
            let removed = (a.choices ?? []).filter { !new.contains($0) }
            if a.choices == nil {
                out.append("choices now limited to \((b.choices ?? []).joined(separator: ", "))")
            } else if b.choices == nil {
                out.append("choices no longer limited")
            } else {
                if !added.isEmpty { out.append("choices added: \(added.joined(separator: ", "))") }
                if !removed.isEmpty { out.append("choices removed: \(removed.joined(separator: ", "))") }
                if added.isEmpty && removed.isEmpty { out.append("choices reordered") }
            }
        }
        return out
    }

    /// One line per change, as `ferry forms diff` prints them.
    public var lines: [String] {
        header.map { "  ~ \($0)" }
            + changes.map { c in
                switch c {
                case .added(let f): "  + \(f.name) (\(f.type.rawValue)\(f.required == true ? ", required" : ""))"
                case .removed(let f): "  - \(f.name) (\(f.type.rawValue)): its values stay on migrated records"
                case .changed(let b, _, let what): "  ~ \(b.name): \(what.joined(separator: "; "))"
                }
            }
    }
}
