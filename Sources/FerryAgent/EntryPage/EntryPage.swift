import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

/// The local data-entry page's logic, without HTTP: what each request shows
/// and does. Records are written through the same ``AgentStore`` calls as
/// `ferry records add` / `edit`, into the agent's own replica; the sync loop
/// sends them like any other write.
final class EntryPage: Sendable {
    let home: AgentHome
    let store: AgentStore
    let config: AgentConfig
    let views: EntryPageViews
    /// The per-run token every POST must carry (CSRF): a page of another site
    /// open in the same browser cannot read it, so cannot post as the clerk.
    let csrf: String

    /// What a request gets back.
    struct Reply: Sendable {
        var status: Int
        var html: String
        var location: String?
    }

    init(home: AgentHome, store: AgentStore, config: AgentConfig) throws {
        self.home = home
        self.store = store
        self.config = config
        views = try EntryPageViews()
        csrf = hex(randomBytes(24))
    }

    private var communeTitle: String {
        let name = (try? store.catalog(.commune, as: Commune.self))?.first { $0.code == config.commune }?.name
        return "\(name ?? config.commune) [\(config.commune)]"
    }

    private func sync() -> [String: Any] {
        let now = SystemClock().nowMillis()
        guard let s = try? AgentStatus.read(home, config: config, store: store, now: now) else { return [:] }
        return EntryPageViews.syncContext(s, now: now)
    }

    private func message(_ status: Int, _ text: String) -> Reply {
        Reply(
            status: status,
            html: views.page("message", title: "Ferry", commune: communeTitle, ["message": text]))
    }

    /// The newest form version of each form id.
    private func latestForms() throws -> [FormDefinition] {
        var newest: [String: FormDefinition] = [:]
        for f in try store.forms() where (newest[f.id]?.version ?? 0) < f.version { newest[f.id] = f }
        return newest.values.sorted { $0.id < $1.id }
    }

    // MARK: pages

    /// Records listed per page on the home page.
    static let pageSize = 200

    /// `GET /[?before=ID]`: sync state, forms to fill, this commune's records (a page, newest first).
    func homePage(before: String? = nil) -> Reply {
        do {
            let forms = try latestForms()
            let all = try store.forms()
            // A page at a time, with the count of the rest: a list never stops silently.
            let cursor = before.flatMap(RecordID.init)
            let records = try store.records(before: cursor, limit: Self.pageSize)
            let total = try store.recordCount(before: nil)
            let older = try records.last.map { try store.recordCount(before: $0.id) } ?? 0
            // Records newer than the cursor, the cursor's own included: the ones on earlier pages.
            let skipped = try cursor.map { total - (try store.recordCount(before: $0)) } ?? 0
            // Columns: the first three fields of the newest form, by label.
            let shown = Array((forms.first?.fields ?? []).prefix(4))
            let rows: [[String: Any]] = records.map { r in
                let f = all.first { $0.id == r.scope.formID && $0.version == r.scope.formVersion }
                return [
                    "id": r.id.description, "short": String(r.id.description.prefix(13)),
                    "form": "\(f?.title ?? r.scope.formID) v\(r.scope.formVersion)",
                    "cells": shown.map { EntryForm.text(r.values[$0.name]) }, "deleted": r.isDeleted,
                ]
            }
            var ctx: [String: Any] = [
                "sync": sync(),
                "forms": forms.map {
                    ["id": $0.id, "title": $0.title, "version": $0.version, "fieldCount": $0.fields.count]
                },
                "records": rows, "count": String(total), "shown": String(records.count),
                "from": String(skipped + 1), "to": String(skipped + records.count),
                "columns": shown.map { $0.label ?? $0.name },
            ]
            if older > 0, let last = records.last {
                ctx["older"] = ["count": String(older), "href": "/?before=\(last.id)"]
            }
            if cursor != nil { ctx["paged"] = true }
            return Reply(status: 200, html: views.page("home", title: "Trang chính / Home", commune: communeTitle, ctx))
        } catch {
            return message(500, "Không đọc được dữ liệu / Cannot read the replica: \(error)")
        }
    }

    /// `GET /new?form=ID`: an empty form.
    func newRecordPage(form id: String?) -> Reply {
        guard let f = try? latestForms().first(where: { $0.id == id }) else {
            return message(404, "Không có biểu mẫu này / No such form: \(id ?? "(none)")")
        }
        return recordPage(form: f, id: nil, input: [:], problems: [:], saved: false, general: nil)
    }

    /// `GET /records/ID`: a record's fields, ready to edit.
    func editPage(_ idText: String, saved: Bool) -> Reply {
        guard let rid = RecordID(idText), let r = try? store.record(rid) else {
            return message(404, "Không có hồ sơ này trên máy / No such record here: \(idText)")
        }
        guard let f = try? store.form(r.scope.formID, version: r.scope.formVersion) else {
            return message(
                404, "Máy chưa có biểu mẫu \(r.scope.formID) v\(r.scope.formVersion) / Form not known here yet")
        }
        let input = r.values.mapValues { EntryForm.text($0) }
        return recordPage(form: f, id: rid, input: input, problems: [:], saved: saved, general: nil)
    }

    private func recordPage(
        form f: FormDefinition, id: RecordID?, input: [String: String], problems: [String: EntryForm.Words],
        saved: Bool, general: String?
    ) -> Reply {
        let entry = EntryForm(form: f)
        // Issue 11 item 7: the reason the hub refused a value stands next to that field.
        var refused: [String: LocalQuarantine] = [:]
        for q in (id.flatMap { try? store.quarantined(record: $0) } ?? []) where refused[q.field] == nil {
            refused[q.field] = q
        }
        // SPEC §9.13: a conflict the hub holds on a field stands next to it, with the values.
        var conflicted: [String: LocalConflict] = [:]
        for k in (id.flatMap { try? store.hubConflicts(record: $0) } ?? []) where conflicted[k.field] == nil {
            conflicted[k.field] = k
        }
        let fields: [[String: Any]] = f.fields.map { spec in
            let value = input[spec.name] ?? ""
            var c: [String: Any] = [
                "name": spec.name, "label": spec.label ?? spec.name, "required": spec.required == true,
                "value": value, "rules": entry.rules(spec).map(\.text).joined(separator: " · "),
            ]
            if let p = problems[spec.name] { c["error"] = p.text }
            if let q = refused[spec.name] {
                c["refused"] =
                    "Máy chủ tỉnh đã từ chối giá trị “\(q.value)” / The hub refused “\(q.value)”: \(q.reason). "
                    + "Hãy nhập lại giá trị đúng, hoặc chờ cán bộ tỉnh sửa / Enter the right value, or wait for the hub operator's fix."
            }
            if let k = conflicted[spec.name] {
                let values = k.sides.filter { $0.field == spec.name }.map { "“\($0.value)”" }.joined(separator: ", ")
                c["conflict"] =
                    "Xung đột / Conflict: \(values.isEmpty ? "hồ sơ bị xoá ở nơi khác / the record was deleted elsewhere" : values). "
                    + "Cán bộ tỉnh sẽ chọn giá trị / The hub operator will choose the value."
            }
            let choices: [String]? =
                spec.choices ?? (spec.type == .bool ? ["true", "false"] : nil)
            if let choices {
                c["isSelect"] = true
                let blank: [String: Any] = ["value": "", "text": "—", "selected": value.isEmpty]
                c["options"] =
                    [blank]
                    + choices.map { ch -> [String: Any] in
                        let text = spec.type == .bool ? (ch == "true" ? "có / yes" : "không / no") : ch
                        return ["value": ch, "text": text, "selected": ch == value]
                    }
            } else {
                var attrs: [[String: String]] = []
                let type: String
                switch spec.type {
                case .int:
                    type = "number"
                    attrs.append(["k": "step", "v": "1"])
                case .double:
                    type = "text"
                    attrs.append(["k": "inputmode", "v": "decimal"])
                case .date:
                    type = "date"
                    if let lo = spec.minDate { attrs.append(["k": "min", "v": lo]) }
                    if let hi = spec.maxDate { attrs.append(["k": "max", "v": hi]) }
                default:
                    type = "text"
                    if let hi = spec.maxLength { attrs.append(["k": "maxlength", "v": String(hi)]) }
                    if spec.digits != nil { attrs.append(["k": "inputmode", "v": "numeric"]) }
                }
                if spec.type == .int {
                    if let lo = spec.min { attrs.append(["k": "min", "v": Value.double(lo).display]) }
                    if let hi = spec.max { attrs.append(["k": "max", "v": Value.double(hi).display]) }
                }
                c["inputType"] = type
                c["attrs"] = attrs
            }
            return c
        }
        let heading =
            id == nil
            ? "\(f.title) — hồ sơ mới / new record" : "\(f.title) — sửa hồ sơ / edit record \(id?.description ?? "")"
        var ctx: [String: Any] = [
            "sync": sync(), "heading": heading, "csrf": csrf, "formId": f.id, "fields": fields,
            "action": id.map { "/records/\($0)" } ?? "/records", "saved": saved, "id": id?.description ?? "",
            "failed": !problems.isEmpty || general != nil,
        ]
        if let general { ctx["general"] = general }
        let failed = !problems.isEmpty || general != nil
        return Reply(
            status: failed ? 422 : 200,
            html: views.page("record", title: f.title, commune: communeTitle, ctx))
    }

    // MARK: saving

    /// `POST /records` (create) or `POST /records/ID` (edit).
    /// - Parameter body: the urlencoded form, already bounded in size.
    func save(_ idText: String?, body: [UInt8]) -> Reply {
        guard let fields = Self.urlencoded(body) else {
            return message(400, "Dữ liệu gửi lên không đọc được / The form data could not be read.")
        }
        // Constant-time enough: the token is random per run and never reused across runs.
        guard let token = fields["_csrf"], token.utf8.count == csrf.utf8.count, token == csrf else {
            return message(
                403,
                "Trang đã cũ hoặc không phải từ máy này: hãy mở lại trang rồi nhập lại. / This page is out of date or did not come from this PC: reload it and try again."
            )
        }
        var input: [String: String] = [:]
        for (k, v) in fields where k.hasPrefix("f.") { input[String(k.dropFirst(2)).nfc] = v }
        if let idText {
            return saveEdit(idText, input)
        }
        guard let formID = fields["_form"], let f = try? latestForms().first(where: { $0.id == formID }) else {
            return message(404, "Không có biểu mẫu này / No such form")
        }
        let (values, problems) = EntryForm(form: f).parse(input)
        if !problems.isEmpty {
            return recordPage(form: f, id: nil, input: input, problems: problems, saved: false, general: nil)
        }
        do {
            // The same call as `ferry records add`.
            let rid = try store.create(form: f, commune: config.commune, values: values)
            return Reply(status: 303, html: "", location: "/records/\(rid)?saved=1")
        } catch {
            return recordPage(
                form: f, id: nil, input: input, problems: [:], saved: false, general: Self.words(error))
        }
    }

    private func saveEdit(_ idText: String, _ input: [String: String]) -> Reply {
        guard let rid = RecordID(idText), let r = try? store.record(rid),
            let f = try? store.form(r.scope.formID, version: r.scope.formVersion)
        else { return message(404, "Không có hồ sơ này trên máy / No such record here: \(idText)") }
        let (values, problems) = EntryForm(form: f).parse(input)
        if !problems.isEmpty {
            return recordPage(form: f, id: rid, input: input, problems: problems, saved: false, general: nil)
        }
        // Only fields that changed become writes: re-saving a record as it is
        // must not author new values (they would look like concurrent edits).
        var changes: [String: Value] = [:]
        for spec in f.fields {
            let new = values[spec.name] ?? .null
            let old = r.values[spec.name] ?? .null
            if new != old { changes[spec.name] = new }
        }
        if changes.isEmpty { return Reply(status: 303, html: "", location: "/records/\(rid)?saved=1") }
        do {
            // The same call as `ferry records edit`.
            try store.update(rid, values: changes)
            return Reply(status: 303, html: "", location: "/records/\(rid)?saved=1")
        } catch {
            return recordPage(
                form: f, id: rid, input: input, problems: [:], saved: false, general: Self.words(error))
        }
    }

    /// A store refusal in words (the store's messages are English).
    static func words(_ error: any Error) -> String {
        switch error {
        case let e as FormError: "Không lưu được / Not saved: \(e.message)"
        case let e as StoreError: "Không lưu được / Not saved: \(e.message)"
        default: "Không lưu được / Not saved: \(StoreFault.describe(error, path: "replica.sqlite"))"
        }
    }

    /// Parses `application/x-www-form-urlencoded`; nil when it is not valid.
    /// Bounded by the caller (the body is at most 64 KiB).
    static func urlencoded(_ body: [UInt8]) -> [String: String]? {
        var out: [String: String] = [:]
        let text = String(decoding: body, as: UTF8.self)
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String? {
                s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
            guard let k = kv.first.flatMap(decode), let v = (kv.count > 1 ? decode(kv[1]) : "") else { return nil }
            if out[k] == nil { out[k] = v }
        }
        return out
    }
}
